"""RQ side of the queue benchmark (benches/queue.rs runs it).

Usage: rq_bench.py REDIS_URL TASKS WORKERS WORKER_CLASS

Flushes the database, enqueues TASKS jobs of rq_noop.noop one by one (as a dispatcher would),
starts WORKERS `rq worker --burst` processes of WORKER_CLASS (e.g. rq.worker.Worker, which
forks a work horse per job, or rq.worker.SimpleWorker, which does not), waits for them to exit,
checks every job finished, and prints one line of JSON:
  enqueue_s, process_s (spawn of the workers to the exit of the last one), tasks_per_s
  (TASKS / process_s), span_s (first job started to last job ended, from RQ's own job
  timestamps: leaves out interpreter start-up and burst shutdown), finished, failed, rq version.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from redis import Redis
import rq
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rq_noop  # noqa: E402


def rq_executable():
    here = os.path.join(os.path.dirname(sys.executable), "rq")
    if os.access(here, os.X_OK):
        return [here]
    found = shutil.which("rq")
    if found:
        return [found]
    sys.exit("rq_bench: no `rq` executable beside %s or on PATH" % sys.executable)


def main():
    url, tasks, workers, worker_class = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    conn = Redis.from_url(url)
    conn.flushdb()
    q = Queue("bench", connection=conn)

    t0 = time.perf_counter()
    ids = [q.enqueue(rq_noop.noop, i).id for i in range(tasks)]
    enqueue_s = time.perf_counter() - t0

    env = dict(os.environ)
    bench_dir = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = bench_dir + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = rq_executable() + [
        "worker", "--burst", "--url", url, "--worker-class", worker_class,
        "--logging_level", "WARNING", "bench",
    ]
    logs = [tempfile.TemporaryFile() for _ in range(workers)]
    t1 = time.perf_counter()
    procs = [
        subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for log in logs
    ]
    codes = [p.wait() for p in procs]
    process_s = time.perf_counter() - t1

    for code, log in zip(codes, logs):
        if code != 0:
            log.seek(0)
            sys.stderr.write("rq_bench: a worker exited with %d:\n%s\n" % (code, log.read().decode(errors="replace")[-4000:]))

    finished = FinishedJobRegistry(queue=q).count
    failed = FailedJobRegistry(queue=q).count
    starts, ends = [], []
    for k in range(0, len(ids), 500):
        for job in Job.fetch_many(ids[k:k + 500], connection=conn):
            if job is not None and job.started_at and job.ended_at:
                starts.append(job.started_at)
                ends.append(job.ended_at)
    span_s = (max(ends) - min(starts)).total_seconds() if starts else None
    print(json.dumps({
        "enqueue_s": enqueue_s,
        "process_s": process_s,
        "tasks_per_s": tasks / process_s,
        "span_s": span_s,
        "finished": finished,
        "failed": failed,
        "queued_left": q.count,
        "worker_exit_codes": codes,
        "rq_version": rq.__version__,
    }))
    if finished != tasks:
        sys.stderr.write("rq_bench: only %d of %d jobs finished (%d failed, %d still queued)\n" % (finished, tasks, failed, q.count))
        sys.exit(2)


if __name__ == "__main__":
    main()
