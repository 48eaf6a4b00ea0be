"""An OpenAI-compatible stand-in for the verification benchmark: every answer is the block the
prompt asks to rewrite with its tag lines replaced by a no-op statement of the language (so it
passes the gates and every check, and what is measured is the check, not the model).
Run: python3 resolving_llm.py PORT"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TAGS = ("TODO", "FIXME", "HACK", "XXX", "BUG")


NOOP = {"rust": "let _ = 0;", "python": "_ = 0", "go": "_ = 0", "javascript": "void 0;",
        "typescript": "void 0;", "shell": ":"}


def answer(body):
    user = json.loads(body)["messages"][-1]["content"]
    fence, rest = user.split("Block to rewrite:\n", 1)[1].split("\n", 1)
    block = rest.split("\n```", 1)[0]
    noop = NOOP.get(fence.lstrip("`"))
    kept = []
    for line in block.split("\n"):
        if not any(t in line for t in TAGS):
            kept.append(line)
        elif noop:
            kept.append(line[: len(line) - len(line.lstrip())] + noop)
    return "```\n" + "\n".join(kept) + "\n```"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, obj):
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply({"object": "list", "data": [{"id": "m"}]})

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        content = answer(body)
        self.reply({
            "id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
