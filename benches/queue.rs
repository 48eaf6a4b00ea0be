//! Queue throughput: tars-fleet's Redis queue against RQ, on one redis-server in one run.
//!
//! Every task goes the whole queue path (enqueue, fetch, start, complete with its result) with
//! an instant stand-in for the LLM: the "work" is building a small fixed patch string. For 1 and
//! 4 workers it reports enqueue time, processing time (workers start to last completion),
//! tasks/s, and the queue overhead per task (its `start` and `complete` round trips plus its
//! share of the `fetch`), p50 and p99.
//!
//! RQ runs the same number of no-op jobs through `benches/rq_bench.py`, with its default
//! `Worker` (a fork per job, what RQ users run) and with `SimpleWorker` (no fork, RQ's fastest
//! mode). It needs `BENCH_RQ_PYTHON`, a Python with `rq` installed; `scripts/bench-queue` makes
//! one and runs this. Without it the RQ rows are skipped.
//!
//! Run: `scripts/bench-queue` (or `cargo bench --bench queue`; needs `redis-server` on PATH).
//! `BENCH_TASKS` sets the number of tasks per row (default 5000).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tars_fleet::queue::{Queue, Stage, Start, TaskState};
use tars_fleet::task::TaskSpec;

const WORKERS: [usize; 2] = [1, 4];
const FETCH_COUNT: usize = 16;
const FETCH_BLOCK: Duration = Duration::from_millis(100);
const RQ_CLASSES: [(&str, &str); 2] = [
    ("rq (fork)", "rq.worker.Worker"),
    ("rq (SimpleWorker)", "rq.worker.SimpleWorker"),
];

/// A redis-server of our own, killed on drop (also when the bench panics).
struct Server {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH (scripts/bench-queue installs it)");
    let server = Server { child, _dir: dir };
    let url = format!("redis://127.0.0.1:{port}");
    for _ in 0..200 {
        let ping = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if ping.is_ok() {
            return (server, url);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("redis-server did not answer on {url}");
}

fn spec(i: usize) -> TaskSpec {
    TaskSpec {
        id: format!("t{i:06}"),
        path: format!("src/mod_{i}.py"),
        line: 2,
        tag: "TODO".into(),
        text: format!("validate value {i} before use"),
        language: "python".into(),
        symbol: Some(format!("handler_{i}")),
        block_start: 1,
        block_end: 4,
        content_hash: format!("{i:064x}"),
        block_hash: format!("{i:016x}"),
    }
}

/// The LLM stand-in: a small fixed patch, as RQ's job returns (benches/rq_noop.py).
fn patch_for(task: &str) -> String {
    format!("--- a/src/{task}.py\n+++ b/src/{task}.py\n@@ -1 +1 @@\n-# TODO: fix\n+fixed = True\n")
}

struct Row {
    system: String,
    workers: usize,
    tasks: usize,
    enqueue: Duration,
    process: Duration,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

impl Row {
    fn rate(&self) -> f64 {
        self.tasks as f64 / self.process.as_secs_f64()
    }
}

struct WorkerReport {
    overheads: Vec<Duration>,
    last_completion: Option<Instant>,
}

async fn worker_loop(url: String, run: String, id: usize) -> WorkerReport {
    let q = Queue::connect(&url, 1).await.expect("connect");
    let mut conn = q.blocking_connection().await.expect("blocking connection");
    let consumer = format!("bench-{id}");
    let mut report = WorkerReport {
        overheads: Vec::new(),
        last_completion: None,
    };
    loop {
        let t = Instant::now();
        let ds = q
            .fetch(&mut conn, Stage::Llm, &consumer, FETCH_COUNT, FETCH_BLOCK)
            .await
            .expect("fetch");
        let fetch = t.elapsed();
        if ds.is_empty() {
            if q.run_status(&run).await.expect("status").is_complete() {
                return report;
            }
            continue;
        }
        let share = fetch / ds.len() as u32;
        for d in ds {
            let t = Instant::now();
            match q.start(&d, &consumer, 3).await.expect("start") {
                Start::Running { .. } => {}
                other => panic!("task {} was not started: {other:?}", d.task),
            }
            let start = t.elapsed();
            let patch = patch_for(&d.task);
            let fields = [
                ("patch", patch),
                ("lines_added", "1".to_string()),
                ("lines_removed", "1".to_string()),
                ("model", "instant-stand-in".to_string()),
                ("llm_ms", "0".to_string()),
            ];
            let t = Instant::now();
            q.complete(&d, &consumer, TaskState::Done, &fields)
                .await
                .expect("complete");
            let done = Instant::now();
            report.overheads.push(share + start + (done - t));
            report.last_completion = Some(done);
        }
    }
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

async fn ours(url: &str, tasks: usize, workers: usize) -> Row {
    let q = Queue::connect(url, 1).await.expect("connect");
    let _: () = redis::cmd("FLUSHDB")
        .query_async(&mut q.conn())
        .await
        .expect("FLUSHDB");
    q.ensure_group().await.expect("group");
    let run = q.create_run("bench").await.expect("run");

    let t = Instant::now();
    for i in 0..tasks {
        assert!(q.enqueue(&run, &spec(i)).await.expect("enqueue"), "id {i}");
    }
    let enqueue = t.elapsed();

    let t = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|w| tokio::spawn(worker_loop(url.to_string(), run.clone(), w)))
        .collect();
    let mut overheads = Vec::with_capacity(tasks);
    let mut last = t;
    for h in handles {
        let r = h.await.expect("worker panicked");
        overheads.extend(r.overheads);
        last = last.max(r.last_completion.unwrap_or(t));
    }
    let process = last - t;

    let st = q.run_status(&run).await.expect("status");
    assert!(
        st.count(TaskState::Done) == tasks as u64 && overheads.len() == tasks,
        "not every task finished: {st:?}, {} completions",
        overheads.len()
    );
    let sample = q.task(&run, &spec(tasks / 2).id).await.expect("task");
    let sample = sample.expect("the sample task exists");
    assert_eq!(
        sample.patch.as_deref(),
        Some(patch_for(&sample.spec.id).as_str())
    );

    overheads.sort_unstable();
    Row {
        system: "tars-fleet".into(),
        workers,
        tasks,
        enqueue,
        process,
        p50_ms: Some(percentile_ms(&overheads, 0.50)),
        p99_ms: Some(percentile_ms(&overheads, 0.99)),
    }
}

/// One RQ row; also returns the jobs' own span (first started to last ended) in seconds.
fn rq(
    python: &str,
    url: &str,
    tasks: usize,
    workers: usize,
    name: &str,
    class: &str,
) -> Option<(Row, f64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/rq_bench.py");
    let out = Command::new(python)
        .arg(&script)
        .args([url, &tasks.to_string(), &workers.to_string(), class])
        .stderr(Stdio::inherit())
        .output()
        .expect("run benches/rq_bench.py");
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(v) = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    else {
        eprintln!(
            "RQ {class} with {workers} workers printed no result ({}): {text}",
            out.status
        );
        return None;
    };
    if !out.status.success() {
        eprintln!("RQ {class} with {workers} workers did not finish every job: {v}");
    }
    let secs = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let row = Row {
        system: format!("{name} {}", v["rq_version"].as_str().unwrap_or("?")),
        workers,
        tasks: v["finished"].as_u64().unwrap_or(0) as usize,
        enqueue: Duration::from_secs_f64(secs("enqueue_s")),
        process: Duration::from_secs_f64(secs("process_s")),
        p50_ms: None,
        p99_ms: None,
    };
    Some((row, secs("span_s")))
}

/// The 1-minute load average (Linux), printed with the results: other work on the machine
/// skews them.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it, as a
    // smoke test of the same path on fewer tasks.
    let bench = std::env::args().any(|a| a == "--bench");
    let tasks: usize = match std::env::var("BENCH_TASKS") {
        Ok(v) => v.parse().expect("BENCH_TASKS must be a number"),
        Err(_) if bench => 5000,
        Err(_) => 200,
    };
    if !bench {
        eprintln!("smoke run ({tasks} tasks): `cargo bench --bench queue` for the real figures");
    }
    let load_before = loadavg();
    let (_server, url) = start_server();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let mut rows = Vec::new();
    for w in WORKERS {
        eprintln!("tars-fleet: {tasks} tasks, {w} workers...");
        rows.push(rt.block_on(ours(&url, tasks, w)));
    }

    let mut spans = Vec::new();
    match std::env::var("BENCH_RQ_PYTHON") {
        Ok(python) if !python.is_empty() => {
            for (name, class) in RQ_CLASSES {
                for w in WORKERS {
                    eprintln!("RQ {class}: {tasks} jobs, {w} workers...");
                    if let Some((row, span)) = rq(&python, &url, tasks, w, name, class) {
                        spans.push((row.system.clone(), w, row.tasks as f64 / span));
                        rows.push(row);
                    }
                }
            }
        }
        _ => eprintln!(
            "BENCH_RQ_PYTHON is not set: RQ rows skipped (scripts/bench-queue makes a venv with rq and sets it)"
        ),
    }

    println!();
    println!(
        "{:<24} {:>7} {:>6} {:>9} {:>9} {:>9} {:>7} {:>7}",
        "system", "workers", "tasks", "enqueue s", "process s", "tasks/s", "p50 ms", "p99 ms"
    );
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
    for r in &rows {
        println!(
            "{:<24} {:>7} {:>6} {:>9.3} {:>9.3} {:>9.0} {:>7} {:>7}",
            r.system,
            r.workers,
            r.tasks,
            r.enqueue.as_secs_f64(),
            r.process.as_secs_f64(),
            r.rate(),
            ms(r.p50_ms),
            ms(r.p99_ms)
        );
    }
    println!();
    println!(
        "p50/p99: queue overhead per task (start + complete round trips + its share of the fetch)."
    );
    println!(
        "process s: workers start to last completion (RQ: worker processes spawned to exited)."
    );
    for w in WORKERS {
        let ours = rows
            .iter()
            .find(|r| r.system == "tars-fleet" && r.workers == w);
        for r in rows
            .iter()
            .filter(|r| r.system != "tars-fleet" && r.workers == w)
        {
            if let Some(o) = ours {
                println!(
                    "ratio tars-fleet / {} at {w} workers: {:.1}x",
                    r.system,
                    o.rate() / r.rate()
                );
            }
        }
    }
    println!(
        "1-minute load average before/after: {load_before} / {} on {} cores (other load skews the figures)",
        loadavg(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if !spans.is_empty() {
        println!(
            "RQ rates from its own job timestamps (first started to last ended, no start-up):"
        );
        for (system, w, rate) in &spans {
            let ours = rows
                .iter()
                .find(|r| r.system == "tars-fleet" && r.workers == *w);
            let ratio = ours.map_or(f64::NAN, |o| o.rate() / rate);
            println!(
                "  {system:<24} {w} workers: {rate:>7.0} tasks/s (tars-fleet / it: {ratio:.1}x)"
            );
        }
    }
}
