//! Redis memory per 10,000 tasks: scans a generated repository (5,000 files of ~8 KB with two
//! TODOs each), enqueues it as one run, then records a result for every task (a ~600-byte patch
//! and a ~900-byte raw answer, the size of a small real one), reading `used_memory` after each
//! phase. Run with `cargo bench --bench redis_memory` (needs `redis-server` on PATH).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tars_fleet::config::Config;
use tars_fleet::queue::{Queue, Stage, TaskState};

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn used_memory(url: &str) -> u64 {
    let mut c = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("connect");
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut c)
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let dir = tempfile::tempdir().expect("tempdir");
    let _server = Server(
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH"),
    );
    let url = format!("redis://127.0.0.1:{port}");
    for _ in 0..200 {
        if redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .is_ok()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }

    // `cargo bench` passes --bench; under `cargo test --all-targets` run a small smoke size.
    let files = if std::env::args().any(|a| a == "--bench") {
        5000
    } else {
        50
    };
    let repo = tempfile::tempdir().expect("tempdir");
    let filler = "    value = compute(value, 17)  # ordinary code line of a realistic length\n";
    for f in 0..files {
        let mut s = String::with_capacity(8500);
        for j in 0..2 {
            s.push_str(&format!(
                "def handler_{f}_{j}(value):\n    # TODO: validate value {f}-{j} before use\n"
            ));
            for _ in 0..50 {
                s.push_str(filler);
            }
            s.push_str("    return value\n\n");
        }
        std::fs::write(repo.path().join(format!("mod_{f}.py")), s).expect("write");
    }

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut cfg = Config::default();
        cfg.redis.url = url.clone();
        let q = Queue::connect(&url, 7).await.expect("connect");
        q.ensure_group().await.expect("group");
        let before = used_memory(&url);
        let report = tars_fleet::scan::scan_path(repo.path(), &cfg.scan).expect("scan");
        let started = tars_fleet::run::start_run(&q, repo.path(), report, Default::default()).await.expect("run");
        let after_enqueue = used_memory(&url);
        let blobs: u64 = started.report.files.iter().map(|f| f.content.len() as u64).sum();
        let mut conn = q.blocking_connection().await.expect("conn");
        let patch = "x".repeat(600);
        let answer = "y".repeat(900);
        loop {
            let ds = q.fetch(&mut conn, Stage::Llm, "bench", 100, Duration::from_millis(100)).await.expect("fetch");
            if ds.is_empty() {
                break;
            }
            for d in ds {
                q.start(&d, "bench", 5).await.expect("start");
                let fields = [
                    ("patch", patch.clone()),
                    ("answer", answer.clone()),
                    ("model", "qwen2.5-coder:7b".to_string()),
                    ("prompt_tokens", "900".to_string()),
                    ("completion_tokens", "250".to_string()),
                    ("llm_ms", "8123".to_string()),
                ];
                q.complete(&d, "bench", TaskState::Done, &fields).await.expect("complete");
            }
        }
        let after_done = used_memory(&url);
        let st = q.run_status(started.run.as_deref().expect("a run")).await.expect("status");
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!("tasks: {} ({} files, {:.1} MiB of file content stored once as blobs)", st.total, started.report.files.len(), mib(blobs));
        println!("used_memory before:          {:>8.1} MiB", mib(before));
        println!("after enqueue (queued):      {:>8.1} MiB  (+{:.1} MiB; {:.1} MiB without blobs)", mib(after_enqueue), mib(after_enqueue - before), mib((after_enqueue - before).saturating_sub(blobs)));
        println!("after results (all done):    {:>8.1} MiB  (+{:.1} MiB)", mib(after_done), mib(after_done - before));
        let per10k = |b: u64| mib(b) * 10_000.0 / st.total.max(1) as f64;
        println!("per 10,000 tasks: {:.1} MiB queued, {:.1} MiB done (incl. blobs, patches and raw answers)", per10k(after_enqueue - before), per10k(after_done - before));
    });
}
