//! Issue 15, item 11: the Redis layout users' dashboards read is what the README documents:
//! every field of a run, a task and a worker's heartbeat is in the README's key-layout table,
//! timestamps are milliseconds throughout, and no field is kept as an empty placeholder.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::fake_llm::{FakeLlm, many_todos_repo};
use crate::util::{RedisServer, cmd, repo_root, run, spawn_worker, wait_until};
use tars_fleet::queue::keys;

/// The words in backticks on the README's key-layout row for `key`.
fn documented(key: &str) -> HashSet<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let row = readme
        .lines()
        .find(|l| l.starts_with(&format!("| `{key}` |")))
        .unwrap_or_else(|| panic!("README documents {key}"));
    row.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn hash(redis: &RedisServer, key: &str) -> HashMap<String, String> {
    redis::cmd("HGETALL")
        .arg(key)
        .query(&mut redis.conn())
        .unwrap()
}

#[test]
fn every_field_is_documented_in_milliseconds_and_none_is_empty() {
    let redis = RedisServer::start();
    let fake = FakeLlm::resolving();
    let _worker = spawn_worker(&redis, &fake.url(), &[], std::process::Stdio::null());
    let repo = many_todos_repo(1, 3);
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(["run", "--wait", "--out"])
        .arg(repo.path().join(".out"))
        .arg(repo.path());
    let run_id = run(d).success().stdout.trim().to_string();
    let now: (u64, u64) = redis::cmd("TIME").query(&mut redis.conn()).unwrap();
    let now_ms = now.0 * 1000 + now.1 / 1000;
    let recent = |what: &str, v: &str| {
        let t: u64 = v.parse().unwrap_or_else(|_| panic!("{what} = {v:?}"));
        assert!(
            t <= now_ms + 60_000 && now_ms - t < 600_000,
            "{what} = {t} is not milliseconds of now ({now_ms})"
        );
    };

    let run_doc = documented("{tars}:run:<run>");
    let run_hash = hash(&redis, &keys::run(&run_id));
    for (k, v) in &run_hash {
        assert!(run_doc.contains(k), "run field {k} is not in the README");
        assert!(!v.is_empty(), "run field {k} is empty");
    }
    recent("run created_at", &run_hash["created_at"]);
    recent("run finished_at", &run_hash["finished_at"]);

    let task_doc = documented("{tars}:task:<run>:<id>");
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys::run_tasks(&run_id))
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        let t = hash(&redis, &keys::task(&run_id, id));
        assert_eq!(t["state"], "done", "{t:?}");
        for (k, v) in &t {
            assert!(task_doc.contains(k), "task field {k} is not in the README");
            assert!(!v.is_empty(), "task field {k} is empty: {t:?}");
        }
        for k in ["enqueued_at", "started_at", "finished_at"] {
            recent(k, &t[k]);
        }
    }

    let worker_doc = documented("{tars}:worker:<id>");
    let mut workers: Vec<String> = Vec::new();
    wait_until("a heartbeat", Duration::from_secs(20), || {
        workers = redis::cmd("KEYS")
            .arg("{tars}:worker:*")
            .query(&mut redis.conn())
            .unwrap();
        !workers.is_empty()
    });
    let w = hash(&redis, &workers[0]);
    for k in w.keys() {
        assert!(
            worker_doc.contains(k),
            "worker field {k} is not in the README"
        );
    }
    recent("worker started_at", &w["started_at"]);
}
