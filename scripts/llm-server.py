"""Serves a GGUF model with llama.cpp's own HTTP server (llama-server), OpenAI-compatible.

Run with the venv made by scripts/setup-test-deps:

    ~/.cache/tars-fleet/venv/bin/python scripts/llm-server.py --model M.gguf --port 8080

Why this and not llama-cpp-python's server: xllamacpp ships llama.cpp's C++ server as a
prebuilt manylinux wheel (33 MB, installed in seconds), where llama-cpp-python builds llama.cpp
from source on every new machine (about 9 minutes on 2 cores). It is also the server users run
(`llama-server`): /v1/chat/completions, /v1/models, /props with `total_slots`, /health.

Prints "listening on URL" on stdout once the model is loaded and the port answers; exits on
SIGTERM or SIGINT.
"""

import argparse
import signal
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a GGUF file")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ctx", type=int, default=2048, help="context size per slot, in tokens")
    ap.add_argument("--parallel", type=int, default=1, help="requests decoded at once (slots)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: llama.cpp's default)")
    ap.add_argument("--alias", default="", help="the model name /v1/models reports")
    args = ap.parse_args()

    # Block the signals before the server's threads start, so that they all inherit the mask
    # and only sigwait below receives them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        import xllamacpp as xlc
    except ImportError:
        print("llm-server: xllamacpp is not installed here: run scripts/setup-test-deps and use "
              "its venv's python", file=sys.stderr)
        return 2

    p = xlc.CommonParams()
    p.model.path = args.model
    p.hostnames = [args.host]
    p.port = args.port
    # The context is shared by the slots: each gets ctx tokens.
    p.n_parallel = args.parallel
    p.n_ctx = args.ctx * args.parallel
    if args.threads > 0:
        p.cpuparams.n_threads = args.threads
        p.cpuparams_batch.n_threads = args.threads
    if args.alias:
        p.model_alias = {args.alias}  # a set of names in this llama.cpp
    server = xlc.Server(p)
    print(f"listening on {server.listening_address}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    return 0


if __name__ == "__main__":
    sys.exit(main())
