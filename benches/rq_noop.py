"""The job RQ runs in the queue benchmark: no work, a small fixed patch string as its result,
the same stand-in for an LLM answer as the Rust side's (benches/queue.rs)."""


def noop(i):
    return f"--- a/src/mod_{i}.py\n+++ b/src/mod_{i}.py\n@@ -1 +1 @@\n-# TODO: fix\n+fixed = True\n"
