//! A run appears only with its tasks, and every run key expires (issue 12, item 7): a scan with
//! nothing to do creates no run, a `run` that fails half-way (Redis full, a retention Redis
//! rejects) leaves nothing behind, and a run never finished still expires after the retention.

use std::path::Path;
use std::time::Duration;

use crate::util::{RedisServer, cmd, demo_repo, run};
use tars_fleet::queue::{Queue, Stage, Start, TaskState, keys};

fn dispatcher_run(redis: &RedisServer, path: &Path, env: &[(&str, &str)]) -> crate::util::Output {
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url()).arg("run").arg(path);
    for (k, v) in env {
        d.env(k, v);
    }
    run(d)
}

/// Every key of runs and tasks in Redis, and the listed runs.
fn run_keys(redis: &RedisServer) -> (Vec<String>, Vec<String>) {
    let mut c = redis.conn();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("{tars}:run:*")
        .query(&mut c)
        .unwrap();
    let tasks: Vec<String> = redis::cmd("KEYS")
        .arg("{tars}:task:*")
        .query(&mut c)
        .unwrap();
    keys.extend(tasks);
    let listed: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys::runs())
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    (keys, listed)
}

fn ttl(redis: &RedisServer, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query(&mut redis.conn()).unwrap()
}

#[test]
fn a_scan_without_todos_creates_no_run() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lib.rs"), "pub fn f() -> u32 {\n    1\n}\n").unwrap();
    let out = dispatcher_run(&redis, dir.path(), &[]).success();
    assert!(
        out.stderr.contains("nothing to do") && out.stdout.trim().is_empty(),
        "{}",
        out.explain("'nothing to do' and no run id")
    );
    let (keys, listed) = run_keys(&redis);
    assert!(keys.is_empty() && listed.is_empty(), "{keys:?} {listed:?}");
    // `status` still says there is no run.
    let mut s = cmd("dispatcher");
    s.env("TARS_REDIS__URL", redis.url()).arg("status");
    run(s).failure();
}

#[test]
fn a_run_that_fails_half_way_leaves_no_run() {
    let redis = RedisServer::start();
    let repo = demo_repo();
    // A retention Redis refuses as an expiry (about 5e11 years).
    let out = dispatcher_run(
        &redis,
        repo.path(),
        &[("TARS_QUEUE__RETENTION_DAYS", "200000000000")],
    )
    .failure();
    let (keys, listed) = run_keys(&redis);
    assert!(
        keys.is_empty() && listed.is_empty(),
        "{keys:?} {listed:?}\n{}",
        out.explain("no run left behind")
    );
}

#[test]
fn a_run_into_a_full_redis_leaves_no_run() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Two files of ~600 KB, one TODO each: the first blob fills Redis, the second is refused.
    for name in ["a.py", "b.py"] {
        let mut text = format!("# TODO: shorten {name}\n");
        while text.len() < 600_000 {
            text.push_str(&format!("x_{} = {}\n", text.len(), name.len()));
        }
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mut c = redis.conn();
    let info: String = redis::cmd("INFO").arg("memory").query(&mut c).unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used + 300_000)
        .query(&mut c)
        .unwrap();
    let out = dispatcher_run(&redis, dir.path(), &[]).failure();
    let (keys, listed) = run_keys(&redis);
    assert!(
        keys.is_empty() && listed.is_empty(),
        "{keys:?} {listed:?}\n{}",
        out.explain("no run left behind")
    );
}

#[tokio::test]
async fn every_run_key_expires_even_unfinished() {
    let redis = RedisServer::start();
    let repo = demo_repo();
    let out = dispatcher_run(&redis, repo.path(), &[("TARS_QUEUE__RETENTION_DAYS", "2")]).success();
    let run_id = out.stdout.trim().to_string();
    let q = Queue::connect(&redis.url(), 2).await.unwrap();
    let tasks = q.run_tasks(&run_id).await.unwrap();
    assert!(tasks.len() >= 2, "the demo has several TODOs");
    let max = 2 * 86_400;
    let check = |what: &str| {
        let mut keys = vec![keys::run(&run_id), keys::run_tasks(&run_id)];
        keys.extend(tasks.iter().map(|t| keys::task(&run_id, &t.spec.id)));
        for k in keys {
            let t = ttl(&redis, &k);
            assert!(t > max - 60 && t <= max, "{what}: TTL of {k} is {t}");
        }
    };
    check("queued");
    // One task finishes; the run is not finished and its keys still expire.
    let mut conn = q.blocking_connection().await.unwrap();
    let d = q
        .fetch(&mut conn, Stage::Llm, "t", 1, Duration::from_secs(1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        q.start(&d, "t", 1).await.unwrap(),
        Start::Running { attempt: 1 }
    );
    q.complete(&d, "t", TaskState::Done, &[("patch", "diff".into())])
        .await
        .unwrap();
    assert!(!q.run_status(&run_id).await.unwrap().is_complete());
    check("one task done");
    // Failed tasks requeued by `dispatcher retry` keep expiring too.
    q.cancel_run(&run_id).await.unwrap();
    q.retry_run(&run_id, TaskState::Cancelled).await.unwrap();
    check("requeued");
}
