//! Delivery under failure: long calls, SIGTERM, a fleet-wide LLM cap, and a chaos run with
//! killed workers, a restarted Redis and a faulty LLM. Real redis-server, real worker processes.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::fake_llm::{
    FakeLlm, Reply, many_todos_repo, models_reply, openai_completion, resolving_answer,
};
use crate::util::{Proc, RedisServer, TcpProxy, cmd, run, wait_until};

const CHAT: &str = "/v1/chat/completions";

fn spawn_worker(redis: &RedisServer, llm: &str, extra: &[(&str, &str)], log: &Path) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    crate::util::spawn_worker(redis, llm, extra, Stdio::from(log))
}

#[track_caller]
fn enqueue(redis: &RedisServer, repo: &Path) -> String {
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url()).arg("run").arg(repo);
    run(d).success().stdout.trim().to_string()
}

fn run_hash(redis: &RedisServer, run_id: &str) -> HashMap<String, String> {
    redis::Client::open(redis.url().as_str())
        .and_then(|c| c.get_connection())
        .and_then(|mut c| {
            redis::cmd("HGETALL")
                .arg(format!("{{tars}}:run:{run_id}"))
                .query(&mut c)
        })
        .unwrap_or_default()
}

fn counter(h: &HashMap<String, String>, k: &str) -> u64 {
    h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn wait_complete(redis: &RedisServer, run_id: &str, limit: Duration) {
    wait_until("run complete", limit, || {
        let h = run_hash(redis, run_id);
        !h.is_empty() && h.contains_key("finished_at")
    });
}

/// Every task hash of a run: id -> fields.
fn tasks(redis: &RedisServer, run_id: &str) -> HashMap<String, HashMap<String, String>> {
    let mut c = redis.conn();
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{{tars}}:run:{run_id}:tasks"))
        .query(&mut c)
        .unwrap();
    ids.into_iter()
        .map(|id| {
            let h: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(format!("{{tars}}:task:{run_id}:{id}"))
                .query(&mut c)
                .unwrap();
            (id, h)
        })
        .collect()
}

/// Result-stream entries per task: exactly one per finished task when nothing is recorded twice.
fn results_per_task(redis: &RedisServer) -> HashMap<String, usize> {
    let mut c = redis.conn();
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg("{tars}:stream:results")
        .arg("-")
        .arg("+")
        .query::<redis::Value>(&mut c)
        .ok()
        .and_then(|v| redis::from_redis_value(v).ok())
        .unwrap_or_default();
    let mut m = HashMap::new();
    for (_, f) in entries {
        *m.entry(f.get("task").cloned().unwrap_or_default())
            .or_default() += 1;
    }
    m
}

fn pending(redis: &RedisServer) -> u64 {
    let v: redis::Value = redis::cmd("XPENDING")
        .arg("{tars}:stream:tasks")
        .arg("workers")
        .query(&mut redis.conn())
        .unwrap();
    match v {
        redis::Value::Array(a) => match a.first() {
            Some(redis::Value::Int(n)) => *n as u64,
            _ => 0,
        },
        _ => 0,
    }
}

#[test]
fn a_call_lasting_three_leases_finishes_once_on_its_first_worker() {
    let redis = RedisServer::start();
    let fake = FakeLlm::start(|req, _| match req.path.as_str() {
        CHAT => {
            std::thread::sleep(Duration::from_secs(10));
            Reply::Json {
                status: 200,
                body: openai_completion(&resolving_answer(&req.body)),
            }
        }
        _ => models_reply(),
    });
    let repo = many_todos_repo(1, 1);
    let run_id = enqueue(&redis, repo.path());
    let logs = tempfile::tempdir().unwrap();
    let lease = [("TARS_QUEUE__LEASE_SECS", "3")];
    let _a = spawn_worker(&redis, &fake.url(), &lease, &logs.path().join("a.log"));
    let _b = spawn_worker(&redis, &fake.url(), &lease, &logs.path().join("b.log"));
    wait_complete(&redis, &run_id, Duration::from_secs(60));

    assert_eq!(fake.count(CHAT), 1, "the task was sent to the LLM once");
    let ts = tasks(&redis, &run_id);
    let (_, t) = ts.iter().next().unwrap();
    assert_eq!(t["state"], "done");
    assert_eq!(t["attempts"], "1", "delivered to one worker only");
    assert!(results_per_task(&redis).values().all(|&n| n == 1));
    assert_eq!(counter(&run_hash(&redis, &run_id), "duplicates"), 0);
}

#[test]
fn sigterm_hands_tasks_back_and_another_worker_finishes_them() {
    let redis = RedisServer::start();
    let slow = Arc::new(AtomicBool::new(true));
    let s = slow.clone();
    let fake = FakeLlm::start(move |req, _| match req.path.as_str() {
        CHAT => {
            if s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(60));
            }
            Reply::Json {
                status: 200,
                body: openai_completion(&resolving_answer(&req.body)),
            }
        }
        _ => models_reply(),
    });
    let repo = many_todos_repo(1, 4);
    let run_id = enqueue(&redis, repo.path());
    let logs = tempfile::tempdir().unwrap();
    let grace = [
        ("TARS_WORKER__SHUTDOWN_GRACE_SECS", "2"),
        ("TARS_WORKER__CONCURRENCY", "2"),
    ];
    let mut a = spawn_worker(&redis, &fake.url(), &grace, &logs.path().join("a.log"));
    wait_until("two calls in flight", Duration::from_secs(30), || {
        fake.count(CHAT) >= 2
    });
    let t = Instant::now();
    a.signal("TERM");
    let status = a
        .wait_timeout(Duration::from_secs(30))
        .expect("worker exits after SIGTERM");
    let took = t.elapsed();
    assert!(status.success(), "{status}");
    // Handed back at once: queued again, not waiting out a lease.
    let h = run_hash(&redis, &run_id);
    assert_eq!(
        (counter(&h, "running"), counter(&h, "queued")),
        (0, 4),
        "{h:?}"
    );

    slow.store(false, Ordering::SeqCst);
    let _b = spawn_worker(&redis, &fake.url(), &[], &logs.path().join("b.log"));
    wait_complete(&redis, &run_id, Duration::from_secs(60));
    let h = run_hash(&redis, &run_id);
    assert_eq!(counter(&h, "done"), 4, "{h:?}");
    for (id, t) in tasks(&redis, &run_id) {
        assert_eq!(
            t["attempts"], "1",
            "{id}: the handed-back attempt does not count"
        );
    }
    eprintln!("sigterm: worker exited {took:?} after SIGTERM with a 2 s grace");
}

#[test]
fn max_in_flight_caps_concurrent_llm_calls_across_workers_even_after_a_kill() {
    let redis = RedisServer::start();
    let now = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let (n, m) = (now.clone(), max_seen.clone());
    let fake = FakeLlm::start(move |req, i| match req.path.as_str() {
        CHAT => {
            let cur = n.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(cur, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100 + (i as u64 * 37) % 200));
            n.fetch_sub(1, Ordering::SeqCst);
            Reply::Json {
                status: 200,
                body: openai_completion(&resolving_answer(&req.body)),
            }
        }
        _ => models_reply(),
    });
    let repo = many_todos_repo(4, 10);
    let run_id = enqueue(&redis, repo.path());
    let logs = tempfile::tempdir().unwrap();
    let env = [
        ("TARS_LLM__MAX_IN_FLIGHT", "2"),
        ("TARS_WORKER__CONCURRENCY", "4"),
        ("TARS_QUEUE__LEASE_SECS", "3"),
    ];
    let mut workers: Vec<Proc> = (0..4)
        .map(|i| {
            spawn_worker(
                &redis,
                &fake.url(),
                &env,
                &logs.path().join(format!("w{i}.log")),
            )
        })
        .collect();

    // Kill the worker that holds a permit, found through the permit's holder id (`<host>-<pid>-<tag>:<nonce>`).
    let permits_key = format!("{{tars}}:llm:{}:permits", fake.url());
    let mut victim = None;
    wait_until("a permit holder", Duration::from_secs(30), || {
        let holders: Vec<String> = redis::cmd("ZRANGE")
            .arg(&permits_key)
            .arg(0)
            .arg(-1)
            .query(&mut redis.conn())
            .unwrap_or_default();
        victim = holders.iter().find_map(|h| {
            let worker = h.rsplit_once(':')?.0;
            let pid: u32 = worker.rsplit('-').nth(1)?.parse().ok()?;
            workers.iter().position(|w| w.pid() == pid)
        });
        victim.is_some()
    });
    let victim = victim.unwrap();
    workers[victim].signal("KILL");
    let _ = workers[victim].wait_timeout(Duration::from_secs(10));

    wait_complete(&redis, &run_id, Duration::from_secs(180));
    let h = run_hash(&redis, &run_id);
    assert_eq!(counter(&h, "done"), 40, "{h:?}");
    let max = max_seen.load(Ordering::SeqCst);
    assert!(
        max <= 2,
        "the LLM saw {max} concurrent requests with llm.max_in_flight = 2"
    );
    assert_eq!(max, 2, "the cap is reached, not merely respected by idling");
}

/// The chaos stand-in: latency 10-200 ms and, deterministically by request number, ~8% 503
/// without `Retry-After`, ~4% 429 with `Retry-After: 1`, ~4% 500, ~1% an endless fast stream
/// (a server that ignores the token limit: the client's read limit ends it and the task fails
/// `too_large`) and ~1% an endless trickle (the client's timeout ends it, then a retry).
/// Requests about the TODO texts in `slow`, from 2.5 s after its instant on, take 8 s: the
/// workers that reclaim a partitioned worker's tasks are still at work when it comes back.
fn chaos_llm(slow: SlowTasks) -> FakeLlm {
    FakeLlm::start(move |req, i| match req.path.as_str() {
        CHAT => {
            let is_slow = slow.lock().is_ok_and(|s| {
                s.0.is_some_and(|at| at.elapsed() >= Duration::from_millis(2500))
                    && s.1.iter().any(|text| req.body.contains(text.as_str()))
            });
            if is_slow {
                std::thread::sleep(Duration::from_secs(8));
                return Reply::Json {
                    status: 200,
                    body: openai_completion(&resolving_answer(&req.body)),
                };
            }
            let r = (i as u64).wrapping_mul(2_654_435_761) % 1000;
            std::thread::sleep(Duration::from_millis(10 + r % 191));
            match r {
                0..=79 => Reply::Json {
                    status: 503,
                    body: r#"{"error":"server busy"}"#.into(),
                },
                80..=119 => Reply::JsonWithHeaders {
                    status: 429,
                    headers: vec![("Retry-After".into(), "1".into())],
                    body: r#"{"error":{"message":"rate limited"}}"#.into(),
                },
                120..=159 => Reply::Json {
                    status: 500,
                    body: r#"{"error":"internal"}"#.into(),
                },
                160..=169 => Reply::Endless {
                    start: r#"{"choices":[{"message":{"role":"assistant","content":""#.into(),
                    piece: "la ".repeat(20_000),
                    every: Duration::ZERO,
                },
                170..=179 => Reply::Endless {
                    start: r#"{"choices":[{"message":{"role":"assistant","content":""#.into(),
                    piece: " ".into(),
                    every: Duration::from_millis(500),
                },
                _ => Reply::Json {
                    status: 200,
                    body: openai_completion(&resolving_answer(&req.body)),
                },
            }
        }
        _ => models_reply(),
    })
}

/// Since when, and for which TODO texts, the chaos stand-in answers slowly.
type SlowTasks = Arc<std::sync::Mutex<(Option<Instant>, Vec<String>)>>;

/// The TODO texts of the tasks whose deliveries consumers named `prefix`-... hold.
fn held_texts(redis: &RedisServer, run_id: &str, prefix: &str) -> Vec<String> {
    let mut c = redis.conn();
    let mut texts = Vec::new();
    for (consumer, _) in pending_by_consumer(redis) {
        if !consumer.starts_with(prefix) {
            continue;
        }
        let entries: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg("{tars}:stream:tasks")
            .arg("workers")
            .arg("-")
            .arg("+")
            .arg(100)
            .arg(&consumer)
            .query(&mut c)
            .unwrap_or_default();
        for (entry, ..) in entries {
            let fields: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
                .arg("{tars}:stream:tasks")
                .arg(&entry)
                .arg(&entry)
                .query(&mut c)
                .unwrap_or_default();
            for (_, f) in fields {
                let Some(task) = f.get("task") else { continue };
                let text: Option<String> = redis::cmd("HGET")
                    .arg(tars_fleet::queue::keys::task(run_id, task))
                    .arg("text")
                    .query(&mut c)
                    .unwrap_or_default();
                texts.extend(text);
            }
        }
    }
    texts
}

/// Result-stream entries of one run, per task.
fn results_of_run(redis: &RedisServer, run_id: &str) -> HashMap<String, usize> {
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg("{tars}:stream:results")
        .arg("-")
        .arg("+")
        .query::<redis::Value>(&mut redis.conn())
        .ok()
        .and_then(|v| redis::from_redis_value(v).ok())
        .unwrap_or_default();
    let mut m = HashMap::new();
    for (_, f) in entries {
        if f.get("run").map(String::as_str) == Some(run_id) {
            *m.entry(f.get("task").cloned().unwrap_or_default())
                .or_default() += 1;
        }
    }
    m
}

/// What the chaos test checks of a finished run: every task ended done, dead or (only for an
/// endless answer) failed, each with a reason; exactly one result per task; the run's counters
/// equal a recount; every result was recorded by the worker that held the task's delivery
/// (`recorded_by` is the consumer the recording script verified as the owner; `worker` is the
/// one that last started it). Returns the recount.
fn check_finished_run(redis: &RedisServer, run_id: &str, total: u64) -> HashMap<String, u64> {
    let h = run_hash(redis, run_id);
    let ts = tasks(redis, run_id);
    assert_eq!(ts.len() as u64, total);
    let mut recount: HashMap<String, u64> = HashMap::new();
    for (id, t) in &ts {
        let field = |k: &str| t.get(k).cloned().unwrap_or_default();
        let state = field("state");
        match state.as_str() {
            "done" => {}
            "dead" => assert!(!field("reason").is_empty(), "{id}: dead without a reason"),
            "failed" => assert_eq!(
                field("reason_kind"),
                "too_large",
                "{id}: only an endless answer fails a task here: {t:?}"
            ),
            other => panic!("{id} ended {other}: {t:?}"),
        }
        assert!(!field("recorded_by").is_empty(), "{id}: no recorder: {t:?}");
        assert_eq!(
            field("recorded_by"),
            field("worker"),
            "{id}: recorded by a worker that did not hold its delivery: {t:?}"
        );
        *recount.entry(state).or_default() += 1;
    }
    for state in [
        "queued",
        "running",
        "retrying",
        "done",
        "failed",
        "dead",
        "cancelled",
    ] {
        assert_eq!(
            counter(&h, state),
            recount.get(state).copied().unwrap_or(0),
            "counter {state}: {h:?}"
        );
    }
    let per_task = results_of_run(redis, run_id);
    for id in ts.keys() {
        assert_eq!(
            per_task.get(id).copied().unwrap_or(0),
            1,
            "{id} has {:?} results",
            per_task.get(id)
        );
    }
    assert_eq!(pending(redis), 0, "no delivery left pending");
    recount
}

/// How many deliveries each consumer holds (XPENDING's summary).
fn pending_by_consumer(redis: &RedisServer) -> HashMap<String, u64> {
    let v: redis::Value = redis::cmd("XPENDING")
        .arg("{tars}:stream:tasks")
        .arg("workers")
        .query(&mut redis.conn())
        .unwrap_or(redis::Value::Nil);
    let mut m = HashMap::new();
    if let redis::Value::Array(a) = v
        && let Some(redis::Value::Array(consumers)) = a.get(3)
    {
        for c in consumers {
            if let Ok((name, n)) = redis::from_redis_value::<(String, String)>(c.clone()) {
                m.insert(name, n.parse().unwrap_or(0));
            }
        }
    }
    m
}

/// Issue 12's chaos run, all faults in one run: four workers SIGKILLed and restarted about once
/// a second; a fifth worker cut from Redis by a TCP proxy for three leases while it holds tasks,
/// then let back; Redis restarted (with its append-only file) mid-run; an LLM that answers 503,
/// 429 with `Retry-After`, 500, endless streams and endless trickles. Then a second run that
/// Redis loses in a restart without persistence: its waiting dispatcher says so (exit 7), and
/// the same workers, none restarted, serve a third run to the end.
#[test]
fn chaos_killed_workers_a_partition_restarted_redis_and_a_faulty_llm_lose_nothing() {
    const TASKS: u64 = 500;
    const LEASE: Duration = Duration::from_secs(3);
    let mut redis = RedisServer::start();
    let slow: SlowTasks = Arc::default();
    let fake = chaos_llm(slow.clone());
    let repo = many_todos_repo(50, 10);
    let run_id = enqueue(&redis, repo.path());
    assert_eq!(counter(&run_hash(&redis, &run_id), "total"), TASKS);

    let logs = tempfile::tempdir().unwrap();
    let env = [
        ("TARS_WORKER__CONCURRENCY", "4"),
        ("TARS_QUEUE__LEASE_SECS", "3"),
        ("TARS_LLM__RETRIES", "1"),
        ("TARS_LLM__TIMEOUT_SECS", "10"),
    ];
    let mut spawned = 0;
    let mut spawn = |redis: &RedisServer| {
        spawned += 1;
        spawn_worker(
            redis,
            &fake.url(),
            &env,
            &logs.path().join(format!("w{spawned}.log")),
        )
    };
    let mut workers: Vec<Proc> = (0..4).map(|_| spawn(&redis)).collect();
    // The fifth worker reaches Redis through a proxy that the test cuts; it is never killed.
    let proxy = TcpProxy::start(redis.port);
    let cut_log = logs.path().join("partitioned.log");
    let proxy_url = proxy.url();
    let mut cut_env = env.to_vec();
    cut_env.extend([
        ("TARS_REDIS__URL", proxy_url.as_str()),
        ("TARS_WORKER_NAME", "partitioned"),
    ]);
    let mut partitioned = spawn_worker(&redis, &fake.url(), &cut_env, &cut_log);

    let start = Instant::now();
    let mut kills = 0;
    let mut restarted = false;
    let mut cut_at: Option<Instant> = None;
    let mut healed = false;
    let mut held_at_cut = 0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    loop {
        let h = run_hash(&redis, &run_id);
        if h.contains_key("finished_at") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "chaos run did not finish: {h:?}"
        );
        // About one SIGKILL a second, each followed by a restart of that worker.
        std::thread::sleep(Duration::from_secs(1));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let victim = (seed % workers.len() as u64) as usize;
        workers[victim].signal("KILL");
        let _ = workers[victim].wait_timeout(Duration::from_secs(10));
        kills += 1;
        workers[victim] = spawn(&redis);
        // The partition: once the partitioned worker holds deliveries, for three leases.
        if cut_at.is_none() && counter(&h, "done") >= TASKS / 6 {
            let held: u64 = pending_by_consumer(&redis)
                .iter()
                .filter(|(name, _)| name.starts_with("partitioned-"))
                .map(|(_, n)| n)
                .sum();
            if held > 0 {
                held_at_cut = held;
                let texts = held_texts(&redis, &run_id, "partitioned-");
                proxy.cut();
                let now = Instant::now();
                *slow.lock().unwrap() = (Some(now), texts);
                cut_at = Some(now);
            }
        }
        if let Some(at) = cut_at
            && !healed
            && at.elapsed() >= 3 * LEASE
        {
            proxy.heal();
            healed = true;
        }
        if healed && !restarted && counter(&h, "done") >= TASKS / 2 {
            redis.restart();
            restarted = true;
        }
    }
    let elapsed = start.elapsed();
    assert!(healed, "the partition happened and healed mid-run");
    assert!(restarted, "Redis was restarted mid-run");
    let recount = check_finished_run(&redis, &run_id, TASKS);
    let h = run_hash(&redis, &run_id);
    // The partitioned worker's deliveries went to others while it was cut off; whatever it
    // finished meanwhile it did not record (the recorder checks above say so for every task),
    // and it says why.
    let cut_log_text = log_of(&cut_log);
    assert!(
        cut_log_text.contains("lease lost"),
        "the partitioned worker noticed that it lost its tasks:\n{cut_log_text}"
    );
    assert!(
        partitioned.wait_timeout(Duration::ZERO).is_none(),
        "the partitioned worker is still up"
    );
    let chats = fake.count(CHAT);

    // A restart without persistence: the second run is lost, and its waiting dispatcher says so.
    let repo2 = many_todos_repo(20, 5);
    let mut waiting = cmd("dispatcher");
    waiting
        .env("TARS_REDIS__URL", redis.url())
        .args(["run", "--wait", "--timeout", "300"])
        .arg(repo2.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let waiting = waiting.spawn().expect("spawn the dispatcher");
    wait_until("the second run under way", Duration::from_secs(60), || {
        let latest: Vec<String> = redis::cmd("ZRANGE")
            .arg(tars_fleet::queue::keys::runs())
            .arg(-1)
            .arg(-1)
            .query(&mut redis.conn())
            .unwrap_or_default();
        latest
            .first()
            .is_some_and(|r| r != &run_id && counter(&run_hash(&redis, r), "done") > 0)
    });
    let pids: Vec<u32> = workers.iter().map(Proc::pid).collect();
    redis.restart_losing_data();
    let out = crate::util::Output::of(
        "dispatcher run --wait".into(),
        waiting.wait_with_output().unwrap(),
    )
    .code_is(7);
    assert!(
        out.stderr.contains("lost") && out.stderr.contains("appendonly"),
        "the dispatcher names the loss and the fix:\n{}",
        out.stderr
    );

    // The same workers (none restarted since the loss) serve the next run to its end.
    let repo3 = many_todos_repo(10, 5);
    let run3 = enqueue(&redis, repo3.path());
    wait_complete(&redis, &run3, Duration::from_secs(240));
    let recount3 = check_finished_run(&redis, &run3, 50);
    assert_eq!(
        workers.iter().map(Proc::pid).collect::<Vec<_>>(),
        pids,
        "no worker was restarted"
    );
    for w in workers.iter_mut().chain([&mut partitioned]) {
        assert!(
            w.wait_timeout(Duration::ZERO).is_none(),
            "every worker is up"
        );
    }
    eprintln!(
        "chaos: {TASKS} tasks in {:.1} s, {kills} SIGKILLs, 1 partition of {:.0} s ({held_at_cut} deliveries held), 1 Redis restart, {chats} LLM requests, done {}, dead {}, failed (endless answers) {}, duplicates dropped {}, stale results refused {}; then 1 restart without persistence: dispatcher exit 7, next run of 50: done {}",
        elapsed.as_secs_f64(),
        (3 * LEASE).as_secs_f64(),
        recount.get("done").copied().unwrap_or(0),
        recount.get("dead").copied().unwrap_or(0),
        recount.get("failed").copied().unwrap_or(0),
        counter(&h, "duplicates"),
        counter(&h, "stale_results"),
        recount3.get("done").copied().unwrap_or(0),
    );
}

fn task_field(redis: &RedisServer, run_id: &str, field: &str) -> Option<String> {
    let ts = tasks(redis, run_id);
    let (_, t) = ts.iter().next()?;
    t.get(field).cloned()
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Issue 12, item 1. Worker A's Redis user may not XCLAIM, so its lease renewals fail (as in a
/// partition between it and Redis); B reclaims the task after the lease and asks the LLM
/// itself. A's answer arrives while B still works: A must record nothing, and the task ends
/// with B's patch, B as its worker, and A's result counted as stale.
#[test]
fn a_worker_whose_lease_lapsed_records_nothing_over_the_new_owner() {
    let redis = RedisServer::start();
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER", "a", "on", ">pw-a", "~*", "&*", "+@all", "-xclaim",
        ])
        .query(&mut redis.conn())
        .unwrap();
    let chats = Arc::new(AtomicUsize::new(0));
    let a_finished = Arc::new(AtomicBool::new(false));
    let (n, a_done) = (chats.clone(), a_finished.clone());
    let wait_for = |what: &AtomicBool| {
        let start = Instant::now();
        while !what.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    let b_asked = Arc::new(AtomicBool::new(false));
    let fake = FakeLlm::start(move |req, _| match req.path.as_str() {
        CHAT => {
            let answer = resolving_answer(&req.body);
            let answer = if n.fetch_add(1, Ordering::SeqCst) == 0 {
                // A's call: answers once its lease lapsed and B took the task and asked too.
                wait_for(&b_asked);
                answer.replace("_ = 0", "_ = 1")
            } else {
                // B's call: answers once A has tried to record its result.
                b_asked.store(true, Ordering::SeqCst);
                wait_for(&a_done);
                answer
            };
            Reply::Json {
                status: 200,
                body: openai_completion(&answer),
            }
        }
        _ => models_reply(),
    });
    let repo = many_todos_repo(1, 1);
    let run_id = enqueue(&redis, repo.path());
    let logs = tempfile::tempdir().unwrap();
    let (a_log, b_log) = (logs.path().join("a.log"), logs.path().join("b.log"));
    let a_url = format!("redis://a:pw-a@127.0.0.1:{}", redis.port);
    let _a = spawn_worker(
        &redis,
        &fake.url(),
        &[
            ("TARS_REDIS__URL", a_url.as_str()),
            ("TARS_QUEUE__LEASE_SECS", "3"),
            ("TARS_WORKER_NAME", "worker-a"),
        ],
        &a_log,
    );
    wait_until("A asks the LLM", Duration::from_secs(30), || {
        chats.load(Ordering::SeqCst) >= 1
    });
    let _b = spawn_worker(
        &redis,
        &fake.url(),
        &[
            ("TARS_QUEUE__LEASE_SECS", "3"),
            ("TARS_WORKER_NAME", "worker-b"),
        ],
        &b_log,
    );
    wait_until(
        "B reclaims and asks the LLM",
        Duration::from_secs(30),
        || chats.load(Ordering::SeqCst) >= 2,
    );
    wait_until("A tries to record", Duration::from_secs(30), || {
        let log = log_of(&a_log);
        log.contains("lease lost") || log.contains("patch recorded")
    });
    a_finished.store(true, Ordering::SeqCst);
    wait_complete(&redis, &run_id, Duration::from_secs(60));

    let (a_text, b_text) = (log_of(&a_log), log_of(&b_log));
    let explain = format!("--- A ---\n{a_text}\n--- B ---\n{b_text}");
    let worker = task_field(&redis, &run_id, "worker").unwrap_or_default();
    let patch = task_field(&redis, &run_id, "patch").unwrap_or_default();
    assert_eq!(
        task_field(&redis, &run_id, "state").as_deref(),
        Some("done")
    );
    assert!(
        worker.starts_with("worker-b-"),
        "worker {worker}\n{explain}"
    );
    assert!(
        patch.contains("_ = 0") && !patch.contains("_ = 1"),
        "the patch must be B's:\n{patch}\n{explain}"
    );
    assert!(
        a_text.contains("lease lost: another worker has the task; dropping this result"),
        "{explain}"
    );
    assert!(!a_text.contains("patch recorded"), "{explain}");
    assert!(b_text.contains("patch recorded"), "{explain}");
    let h = run_hash(&redis, &run_id);
    assert_eq!(counter(&h, "stale_results"), 1, "{h:?}");
    assert_eq!(counter(&h, "duplicates"), 0, "{h:?}");
    assert!(results_per_task(&redis).values().all(|&n| n == 1));
    assert_eq!(pending(&redis), 0);
}

/// Issue 12, item 5. Redis goes down while the LLM works and the answer arrives during the
/// outage: every Redis step after it (the cancellation check, the result) rides the outage
/// out, so the answer is recorded, not asked again after the lease.
#[test]
fn an_answer_that_arrives_while_redis_restarts_is_recorded_not_asked_again() {
    let mut redis = RedisServer::start();
    let down = Arc::new(AtomicBool::new(false));
    let is_down = down.clone();
    let fake = FakeLlm::start(move |req, _| match req.path.as_str() {
        CHAT => {
            let start = Instant::now();
            while !is_down.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(25));
            }
            Reply::Json {
                status: 200,
                body: openai_completion(&resolving_answer(&req.body)),
            }
        }
        _ => models_reply(),
    });
    let repo = many_todos_repo(1, 1);
    let run_id = enqueue(&redis, repo.path());
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("w.log");
    let _w = spawn_worker(
        &redis,
        &fake.url(),
        &[("TARS_QUEUE__LEASE_SECS", "5")],
        &log,
    );
    wait_until("the LLM is asked", Duration::from_secs(30), || {
        fake.count(CHAT) >= 1
    });
    redis.stop();
    down.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(3));
    redis.start_again();
    wait_complete(&redis, &run_id, Duration::from_secs(60));
    let text = log_of(&log);
    assert_eq!(
        task_field(&redis, &run_id, "state").as_deref(),
        Some("done"),
        "{text}"
    );
    assert_eq!(fake.count(CHAT), 1, "the answer was asked again:\n{text}");
    assert_eq!(
        task_field(&redis, &run_id, "attempts").as_deref(),
        Some("1"),
        "{text}"
    );
}

/// A run of one task whose LLM is always busy, served by a worker whose clock runs an hour
/// fast, stopped once the task waits out its first backoff: returns the run and the task's
/// member of the delayed set.
fn retrying_behind_a_fast_clock(
    redis: &RedisServer,
    llm: &FakeLlm,
    logs: &Path,
) -> (String, String) {
    let repo = many_todos_repo(1, 1);
    let run_id = enqueue(redis, repo.path());
    let mut w = crate::util::spawn_worker_with_clock(
        redis,
        &llm.url(),
        "+1h",
        &[("TARS_LLM__RETRIES", "0")],
        log_file(&logs.join("fast1.log")),
    );
    wait_until("the task retrying", Duration::from_secs(30), || {
        counter(&run_hash(redis, &run_id), "retrying") == 1
    });
    w.signal("KILL");
    let _ = w.wait_timeout(Duration::from_secs(10));
    let id = tasks(redis, &run_id).into_keys().next().unwrap();
    (run_id.clone(), format!("{run_id}:{id}"))
}

fn log_file(path: &Path) -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("log"),
    )
}

/// An LLM whose every answer is a 500: a failure retried later (a 503 would be waited for).
fn failing_llm() -> FakeLlm {
    FakeLlm::start(|req, _| match req.path.as_str() {
        CHAT => Reply::Json {
            status: 500,
            body: r#"{"error":"internal"}"#.into(),
        },
        _ => models_reply(),
    })
}

fn delayed_score(redis: &RedisServer, member: &str) -> Option<u64> {
    redis::cmd("ZSCORE")
        .arg("{tars}:delayed")
        .arg(member)
        .query::<Option<f64>>(&mut redis.conn())
        .unwrap()
        .map(|s| s as u64)
}

/// Issue 12, item 6: a retry is due its backoff after now by Redis's clock, whatever the
/// clock of the worker that scheduled it says (here an hour fast).
#[test]
fn a_retry_from_a_worker_with_a_fast_clock_is_due_by_redis_clock() {
    let redis = RedisServer::start();
    let llm = failing_llm();
    let logs = tempfile::tempdir().unwrap();
    let (_, member) = retrying_behind_a_fast_clock(&redis, &llm, logs.path());
    let due = delayed_score(&redis, &member).expect("in the delayed set");
    let now = redis.time_ms();
    // The first attempt's backoff is 1-2 s (failure::backoff).
    assert!(
        due <= now + 2_500,
        "due {} s after Redis's now: the worker's clock was used",
        (due as i64 - now as i64) / 1000
    );
}

/// Issue 12, item 6: a worker whose clock runs an hour fast promotes no retry before it is
/// due by Redis's clock, and promotes it once it is.
#[test]
fn a_worker_with_a_fast_clock_promotes_retries_by_redis_clock() {
    let redis = RedisServer::start();
    let llm = failing_llm();
    let logs = tempfile::tempdir().unwrap();
    let (run_id, member) = retrying_behind_a_fast_clock(&redis, &llm, logs.path());
    let set_due = |at: u64| {
        let _: () = redis::cmd("ZADD")
            .arg("{tars}:delayed")
            .arg(at)
            .arg(&member)
            .query(&mut redis.conn())
            .unwrap();
    };
    // Ten minutes from now by Redis's clock: an hour ago by the worker's.
    set_due(redis.time_ms() + 600_000);
    let _w = crate::util::spawn_worker_with_clock(
        &redis,
        &llm.url(),
        "+1h",
        &[("TARS_LLM__RETRIES", "0")],
        log_file(&logs.path().join("fast2.log")),
    );
    // The worker promotes due retries every second.
    std::thread::sleep(Duration::from_secs(4));
    let log = log_of(&logs.path().join("fast2.log"));
    assert_eq!(
        task_field(&redis, &run_id, "state").as_deref(),
        Some("retrying"),
        "promoted early:\n{log}"
    );
    assert_eq!(llm.count(CHAT), 1, "asked again before the retry was due");
    // Due now by Redis's clock: promoted, and asked again.
    set_due(redis.time_ms().saturating_sub(1));
    wait_until("the retry promoted", Duration::from_secs(30), || {
        llm.count(CHAT) >= 2
    });
}
