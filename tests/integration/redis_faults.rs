//! Redis faults a deployment sees (issue 12, items 2-4): a Redis that lost its data (restarted
//! without persistence, or flushed), a server too old or a configuration out of range, and a
//! Redis at `maxmemory` with `noeviction`. Real redis-server, real worker processes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::fake_llm::{FakeLlm, Reply, models_reply};
use crate::util::{Output, Proc, RedisServer, cmd, command_line, free_port, run, wait_until};

/// A worker process whose log goes to `log`.
fn spawn_logged(redis: &RedisServer, llm: &str, extra: &[(&str, &str)], log: &Path) -> Proc {
    let f = std::fs::File::create(log).expect("log");
    crate::util::spawn_worker(redis, llm, extra, Stdio::from(f))
}

/// A verifier (`worker --role verify`) serving `root`, its log in `log`.
fn spawn_verifier(redis: &RedisServer, root: &Path, log: &Path) -> Proc {
    let f = std::fs::File::create(log).expect("log");
    let mut w = cmd("worker");
    w.env("TARS_REDIS__URL", redis.url())
        .env("TARS_VERIFY__DIR", root.join(".scratch"))
        .env("TARS_VERIFY__COMMAND", "true")
        .args(["--role", "verify", "--root"])
        .arg(root)
        .stderr(Stdio::from(f));
    Proc {
        child: w.spawn().expect("spawn verifier"),
        name: "verifier".into(),
    }
}

/// An LLM that takes `secs` to answer anything (the task stays in flight meanwhile).
fn slow_llm(secs: u64) -> FakeLlm {
    FakeLlm::start(move |req, _| match req.path.as_str() {
        "/v1/chat/completions" => {
            std::thread::sleep(Duration::from_secs(secs));
            Reply::Json {
                status: 503,
                body: "{}".into(),
            }
        }
        _ => models_reply(),
    })
}

fn one_todo_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("a.py"),
        "def f(x):\n    # TODO: handle None\n    return x\n",
    )
    .expect("write");
    dir
}

/// `dispatcher ...` started in the background, output captured.
fn spawn_dispatcher(redis: &RedisServer, args: &[&str], repo: &Path) -> (Child, String) {
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(args)
        .arg(repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let line = command_line(&d);
    (d.spawn().expect("spawn dispatcher"), line)
}

/// Waits up to `limit` for a background command and returns what it did.
fn finish(mut child: Child, command: String, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Output::of(command, child.wait_with_output().expect("output"))
}

fn zcard_runs(redis: &RedisServer) -> u64 {
    redis::cmd("ZCARD")
        .arg("{tars}:runs")
        .query(&mut redis.conn())
        .unwrap_or(0)
}

fn has_group(redis: &RedisServer, stream: &str, group: &str) -> bool {
    let groups: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query(&mut redis.conn())
        .unwrap_or_default();
    groups.iter().any(
        |g| matches!(g.get("name"), Some(redis::Value::BulkString(n)) if n == group.as_bytes()),
    )
}

fn log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Issue 12, item 2: a Redis that lost everything (here FLUSHALL, as a restart without
/// persistence does) has no consumer groups. Workers and verifiers recreate theirs at once and
/// say why; a waiting `run --wait` says that Redis lost the run and how to keep it, and exits 7.
#[test]
fn redis_that_lost_its_data_is_named_and_the_groups_come_back() {
    let redis = RedisServer::start();
    let repo = one_todo_repo();
    let logs = tempfile::tempdir().expect("tempdir");
    let (wlog, vlog) = (logs.path().join("worker"), logs.path().join("verifier"));
    let llm = slow_llm(60);
    // Two slots: one holds the task at the (slow) LLM, the other keeps fetching.
    let _worker = spawn_logged(
        &redis,
        &llm.url(),
        &[("TARS_WORKER__CONCURRENCY", "2")],
        &wlog,
    );
    let _verifier = spawn_verifier(&redis, repo.path(), &vlog);
    let (child, line) =
        spawn_dispatcher(&redis, &["run", "--wait", "--timeout", "60"], repo.path());
    wait_until("the task at the LLM", Duration::from_secs(20), || {
        llm.count("/v1/chat/completions") > 0
    });
    std::thread::sleep(Duration::from_secs(1));
    let _: () = redis::cmd("FLUSHALL")
        .query(&mut redis.conn())
        .expect("FLUSHALL");

    let out = finish(child, line, Duration::from_secs(20))
        .note("worker log", log(&wlog))
        .code_is(7);
    for part in [
        "Redis lost the data of run",
        "appendonly yes",
        "dispatcher run",
    ] {
        assert!(out.stderr.contains(part), "{}", out.explain(part));
    }
    // Nobody ran `dispatcher run` since: the worker and the verifier made the groups.
    wait_until("groups recreated", Duration::from_secs(15), || {
        has_group(&redis, "{tars}:stream:tasks", "workers")
            && has_group(&redis, "{tars}:stream:verify", "verifiers")
    });
    wait_until(
        "both say Redis lost its data",
        Duration::from_secs(15),
        || log(&wlog).contains("Redis lost its data") && log(&vlog).contains("Redis lost its data"),
    );
    for l in [log(&wlog), log(&vlog)] {
        assert!(!l.contains("Redis unavailable"), "{l}");
    }
}

/// Issue 12, item 2, `status`: a run asked for by name that Redis lost in a restart without
/// persistence is reported as lost (exit 7), not as a run that never existed.
#[test]
fn status_of_a_run_lost_in_a_restart_without_persistence_says_so() {
    let mut redis = RedisServer::start_with(&["--appendonly", "no"]);
    let repo = one_todo_repo();
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .arg("run")
        .arg(repo.path());
    let run_id = run(d).success().stdout.trim().to_string();
    // Run ids have whole seconds: restart in a later second than the run's.
    std::thread::sleep(Duration::from_millis(1100));
    redis.restart();
    assert_eq!(zcard_runs(&redis), 0, "the restart kept the data");
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .arg("status")
        .arg(&run_id);
    let out = run(d).code_is(7);
    for part in ["Redis lost its data", "appendonly yes", run_id.as_str()] {
        assert!(out.stderr.contains(part), "{}", out.explain(part));
    }
    // A run id Redis never had, made after the restart: still "does not exist".
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(["status", "20991231-235959-abcd"]);
    let out = run(d).code_is(1);
    assert!(
        out.stderr.contains("does not exist"),
        "{}",
        out.explain("does not exist")
    );
}

/// A fake Redis 6.0 speaking just enough RESP for a client to connect: every command is OK,
/// `INFO` says `redis_version:6.0.16`.
fn fake_old_redis() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_resp(stream));
        }
    });
    port
}

fn serve_resp(stream: TcpStream) {
    let mut out = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let Some(n) = line
            .trim_end()
            .strip_prefix('*')
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return;
        };
        let mut args = Vec::new();
        for _ in 0..n {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let len: usize = line.trim_end()[1..].parse().unwrap_or(0);
            let mut buf = vec![0; len + 2];
            if r.read_exact(&mut buf).is_err() {
                return;
            }
            buf.truncate(len);
            args.push(String::from_utf8_lossy(&buf).to_uppercase());
        }
        let reply = match args.first().map(String::as_str) {
            Some("INFO") => {
                let body = "# Server\r\nredis_version:6.0.16\r\nredis_mode:standalone\r\n";
                format!("${}\r\n{body}\r\n", body.len())
            }
            Some("PING") => "+PONG\r\n".to_string(),
            Some("HELLO") => "-ERR unknown command 'HELLO'\r\n".to_string(),
            _ => "+OK\r\n".to_string(),
        };
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Issue 12, item 3: a Redis older than 6.2 is refused at connect with the version found, and
/// every duration of the configuration is bounded, with the key and its range.
#[test]
fn an_old_redis_and_absurd_durations_are_refused_at_start() {
    let port = fake_old_redis();
    let url = format!("redis://127.0.0.1:{port}");
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", &url).arg("status");
    let out = run(d).code_is(3);
    for part in ["version 6.0.16", "Redis 6.2 or newer"] {
        assert!(out.stderr.contains(part), "{}", out.explain(part));
    }
    let mut w = cmd("worker");
    w.env("TARS_REDIS__URL", &url)
        .env("TARS_LLM__URL", "http://127.0.0.1:9")
        .env("TARS_LLM__API", "openai");
    let out = run(w).code_is(3);
    assert!(out.stderr.contains("6.0.16"), "{}", out.explain("6.0.16"));

    // Nothing listens there: a value out of range must stop us before Redis is tried.
    let nowhere = format!("redis://127.0.0.1:{}", free_port());
    for (var, value, key, range) in [
        (
            "TARS_QUEUE__LEASE_SECS",
            "18446744073709552",
            "queue.lease_secs",
            "from 3 to 86400",
        ),
        (
            "TARS_QUEUE__RETENTION_DAYS",
            "1000000000000000",
            "queue.retention_days",
            "from 1 to 3650",
        ),
        (
            "TARS_LLM__TIMEOUT_SECS",
            "99999999",
            "llm.timeout_secs",
            "from 1 to 86400",
        ),
        (
            "TARS_WORKER__SHUTDOWN_GRACE_SECS",
            "18446744073709551615",
            "worker.shutdown_grace_secs",
            "from 0 to 86400",
        ),
        (
            "TARS_VERIFY__TIMEOUT_SECS",
            "86401",
            "verify.timeout_secs",
            "from 1 to 86400",
        ),
    ] {
        let mut d = cmd("dispatcher");
        d.env("TARS_REDIS__URL", &nowhere)
            .env(var, value)
            .arg("status");
        let out = run(d).code_is(3);
        for part in [key, range] {
            assert!(out.stderr.contains(part), "{}", out.explain(part));
        }
    }
}

/// Sets 20 kB values, then 500-byte ones, until Redis refuses with OOM (the small ones leave
/// it full once the filling connection's buffers are freed); returns the big keys written.
fn fill(redis: &RedisServer) -> Vec<String> {
    let mut c = redis.conn();
    let mut keys = Vec::new();
    for (size, prefix) in [(20_000, "fill"), (500, "fill-small")] {
        let value = "x".repeat(size);
        for i in 0.. {
            let k = format!("{prefix}:{i}");
            let r: redis::RedisResult<()> = redis::cmd("SET").arg(&k).arg(&value).query(&mut c);
            match r {
                Ok(()) if size == 20_000 => keys.push(k),
                Ok(()) => {}
                Err(e) => {
                    assert!(e.to_string().contains("OOM"), "{e}");
                    break;
                }
            }
            assert!(i < 10_000, "maxmemory is not in effect");
        }
    }
    keys
}

/// No key of tars's run bookkeeping left (the `{tars}:runs` entry, run and task hashes).
fn tars_run_keys(redis: &RedisServer) -> Vec<String> {
    let mut c = redis.conn();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("{tars}:run:*")
        .query(&mut c)
        .unwrap_or_default();
    let tasks: Vec<String> = redis::cmd("KEYS")
        .arg("{tars}:task:*")
        .query(&mut c)
        .unwrap_or_default();
    keys.extend(tasks);
    keys
}

/// Issue 12, item 4: a Redis at maxmemory with noeviction. `run` refuses to enqueue, naming
/// maxmemory, and leaves nothing half made (also when Redis fills up halfway through); a worker
/// backs off with a clear log, and `run --wait` on a run stuck that way says so, not waits.
#[test]
fn a_full_redis_is_named_and_leaves_no_half_made_run() {
    let redis =
        RedisServer::start_with(&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]);
    let small = one_todo_repo();

    // Full from the start: refused before anything is written.
    let filled = fill(&redis);
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .arg("run")
        .arg(small.path());
    let out = run(d).code_is(4);
    for part in ["Redis is out of memory", "maxmemory"] {
        assert!(out.stderr.contains(part), "{}", out.explain(part));
    }
    assert_eq!(zcard_runs(&redis), 0);

    // Room for the run, not for its files: the half-made run is removed.
    let _: () = redis::cmd("DEL")
        .arg(&filled[..20])
        .query(&mut redis.conn())
        .expect("DEL");
    let big = tempfile::tempdir().expect("tempdir");
    for i in 0..30 {
        let mut s = format!("def f{i}(x):\n    # TODO: handle None in f{i}\n    return x\n");
        s.push_str(&format!("# {}\n", "y".repeat(50_000)));
        std::fs::write(big.path().join(format!("m{i}.py")), s).expect("write");
    }
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .arg("run")
        .arg(big.path());
    let out = run(d).code_is(4);
    assert!(
        out.stderr.contains("maxmemory"),
        "{}",
        out.explain("maxmemory")
    );
    assert_eq!(zcard_runs(&redis), 0, "{}", out.stderr);
    assert_eq!(
        tars_run_keys(&redis),
        Vec::<String>::new(),
        "{}",
        out.stderr
    );

    // A run enqueued while there was room, then Redis fills up: the worker cannot start the
    // task, says why and backs off; the waiting dispatcher reports the stall.
    let _: () = redis::cmd("FLUSHALL")
        .query(&mut redis.conn())
        .expect("FLUSHALL");
    let (child, line) =
        spawn_dispatcher(&redis, &["run", "--wait", "--timeout", "40"], small.path());
    wait_until("the run enqueued", Duration::from_secs(20), || {
        zcard_runs(&redis) == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    fill(&redis);
    let logs = tempfile::tempdir().expect("tempdir");
    let wlog = logs.path().join("worker");
    let llm = FakeLlm::resolving();
    let _worker = spawn_logged(&redis, &llm.url(), &[], &wlog);
    let out = finish(child, line, Duration::from_secs(60))
        .note("worker log", log(&wlog))
        .code_is(4);
    for part in ["cannot progress", "Redis is out of memory", "maxmemory"] {
        assert!(out.stderr.contains(part), "{}", out.explain(part));
    }
    wait_until(
        "the worker names the full Redis",
        Duration::from_secs(15),
        || log(&wlog).contains("Redis is out of memory (maxmemory)"),
    );
    assert!(!log(&wlog).contains("Redis unavailable"), "{}", log(&wlog));
    assert_eq!(llm.count("/v1/chat/completions"), 0);
}
