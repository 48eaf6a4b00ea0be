//! `dispatcher run --only-new`: TODOs already done in an earlier run of the same repository are
//! skipped; failed, dead and cancelled ones, new ones and other repositories' runs are not.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::{RedisServer, cmd, copy_dir, demo_repo, run};
use tars_fleet::queue::{Queue, Stage, Start, TaskState, keys};
use tars_fleet::task::TaskSpec;

#[track_caller]
fn dispatcher(redis: &RedisServer, args: &[&str], path: Option<&Path>) -> crate::util::Output {
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url()).args(args);
    if let Some(p) = path {
        d.arg(p);
    }
    run(d).success()
}

/// `(path, id)` of every TODO of `repo`, sorted by path and line, from `dispatcher scan --json`.
fn scan(redis: &RedisServer, repo: &Path) -> Vec<(String, String)> {
    dispatcher(redis, &["scan", "--json"], Some(repo))
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["path"].as_str().unwrap().to_string(),
                v["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn task_ids(q: &Queue, run_id: &str) -> BTreeSet<String> {
    q.run_tasks(run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.spec.id)
        .collect()
}

/// Plays a worker: fetches the run's deliveries and ends each task as `plan` says (a task the
/// plan leaves out stays queued).
async fn finish(q: &Queue, run_id: &str, plan: &HashMap<String, TaskState>) {
    let mut conn = q.blocking_connection().await.unwrap();
    let mut seen = HashSet::new();
    let t0 = Instant::now();
    while seen.len() < plan.len() {
        assert!(t0.elapsed() < Duration::from_secs(30), "deliveries missing");
        for d in q
            .fetch(&mut conn, Stage::Llm, "t", 100, Duration::from_millis(100))
            .await
            .unwrap()
        {
            if d.run != run_id {
                continue;
            }
            let Some(&state) = plan.get(&d.task) else {
                continue;
            };
            seen.insert(d.task.clone());
            assert_eq!(
                q.start(&d, "t", 1).await.unwrap(),
                Start::Running { attempt: 1 }
            );
            match state {
                TaskState::Done => {
                    q.complete(&d, "t", state, &[("patch", "diff".into())])
                        .await
                        .unwrap();
                }
                TaskState::Failed => {
                    q.complete(&d, "t", state, &[("reason", "no code block".into())])
                        .await
                        .unwrap();
                }
                TaskState::Dead => {
                    let err = serde_json::json!({"kind": "busy"});
                    q.retry_later(&d, "t", 1, Duration::ZERO, &err, "LLM busy", "busy")
                        .await
                        .unwrap();
                }
                other => panic!("cannot play {other:?}"),
            }
        }
    }
}

#[track_caller]
fn stderr_has(out: &crate::util::Output, s: &str) {
    assert!(out.stderr.contains(s), "wanted {s:?} in:\n{}", out.stderr);
}

#[tokio::test]
async fn only_new_skips_exactly_the_todos_done_in_earlier_runs_of_the_same_repository() {
    let t0 = Instant::now();
    let redis = RedisServer::start();
    let q = Queue::connect(&redis.url(), 7).await.unwrap();
    let repo = demo_repo();
    let todos = scan(&redis, repo.path());
    assert_eq!(todos.len(), 6, "{todos:?}");
    let id_of = |path: &str, nth: usize| {
        todos
            .iter()
            .filter(|(p, _)| p == path)
            .nth(nth)
            .map(|(_, id)| id.clone())
            .unwrap_or_else(|| panic!("no TODO #{nth} in {path}"))
    };
    let done: BTreeSet<String> = [
        id_of("cmd/main.go", 0),
        id_of("src/lib.rs", 0),
        id_of("web/cart.js", 0),
    ]
    .into();
    let failed = id_of("scripts/backup.sh", 0);
    let dead = id_of("src/stats.py", 0);
    let cancelled = id_of("src/stats.py", 1);

    // Run A: three done, one failed, one dead, one cancelled.
    let run_a = dispatcher(&redis, &["run"], Some(repo.path()))
        .stdout
        .trim()
        .to_string();
    let mut plan: HashMap<String, TaskState> = done
        .iter()
        .map(|id| (id.clone(), TaskState::Done))
        .collect();
    plan.insert(failed.clone(), TaskState::Failed);
    plan.insert(dead.clone(), TaskState::Dead);
    finish(&q, &run_a, &plan).await;
    assert_eq!(q.cancel_run(&run_a).await.unwrap(), 1);
    let st = q.run_status(&run_a).await.unwrap();
    assert_eq!(
        (
            st.count(TaskState::Done),
            st.count(TaskState::Failed),
            st.count(TaskState::Dead),
            st.count(TaskState::Cancelled),
            st.skipped_done,
        ),
        (3, 1, 1, 1, None),
        "{st:?}"
    );

    // A new TODO, in a file whose old TODO is done: that one keeps its id and stays skipped.
    let lib = repo.path().join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap()
        + "\npub fn shout(s: &str) -> String {\n    // TODO: handle non-ASCII letters\n    s.to_uppercase()\n}\n";
    std::fs::write(&lib, text).unwrap();
    let todos_now = scan(&redis, repo.path());
    assert_eq!(todos_now.len(), 7);
    let all_now: BTreeSet<String> = todos_now.iter().map(|(_, id)| id.clone()).collect();
    let new: Vec<String> = all_now
        .iter()
        .filter(|id| !todos.iter().any(|(_, old)| old == *id))
        .cloned()
        .collect();
    assert_eq!(new.len(), 1, "{todos_now:?}");

    // Run B, of a copy at another path with the same TODOs: nothing of run A counts there. All
    // its tasks end done, which must not count for the original either.
    let other = tempfile::tempdir().unwrap();
    copy_dir(repo.path(), other.path());
    let out = dispatcher(&redis, &["run", "--only-new"], Some(other.path()));
    let run_b = out.stdout.trim().to_string();
    stderr_has(&out, "7 tasks enqueued");
    stderr_has(&out, "0 TODOs skipped: already done in an earlier run");
    assert_eq!(task_ids(&q, &run_b).await, all_now);
    let all_done: HashMap<String, TaskState> = all_now
        .iter()
        .map(|id| (id.clone(), TaskState::Done))
        .collect();
    finish(&q, &run_b, &all_done).await;
    assert_eq!(
        q.run_status(&run_b).await.unwrap().count(TaskState::Done),
        7
    );

    // Run C of the original: exactly run A's done TODOs are skipped; the failed, dead and
    // cancelled ones and the new one are enqueued.
    let out = dispatcher(&redis, &["run", "--only-new"], Some(repo.path()));
    let run_c = out.stdout.trim().to_string();
    stderr_has(&out, "4 tasks enqueued (7 TODOs found");
    stderr_has(&out, "3 TODOs skipped: already done in an earlier run");
    let mut expected: BTreeSet<String> = [failed.clone(), dead.clone(), cancelled.clone()].into();
    expected.extend(new.iter().cloned());
    assert_eq!(task_ids(&q, &run_c).await, expected);
    assert!(task_ids(&q, &run_c).await.is_disjoint(&done));
    let st: serde_json::Value =
        serde_json::from_str(&dispatcher(&redis, &["status", "--json", &run_c], None).stdout)
            .unwrap();
    assert_eq!(
        (st["skipped_done"].as_u64(), st["total"].as_u64()),
        (Some(3), Some(4)),
        "{st}"
    );
    let text = dispatcher(&redis, &["status", &run_c], None).stdout;
    assert!(
        text.contains("3 TODOs skipped: already done in an earlier run"),
        "{text}"
    );

    // Once everything is done, nothing is left: no run is created and --wait does not wait.
    finish(
        &q,
        &run_c,
        &expected
            .iter()
            .map(|id| (id.clone(), TaskState::Done))
            .collect(),
    )
    .await;
    let out_dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(["run", "--only-new", "--wait", "--timeout", "60", "--out"])
        .arg(out_dir.path().join("d"))
        .arg(repo.path());
    let out = run(d).success();
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(out.stdout, "", "no run id when no run is created");
    stderr_has(&out, "nothing to do: 7 TODOs found");
    stderr_has(&out, "7 TODOs skipped: already done in an earlier run");
    stderr_has(&out, "no run created");
    assert!(!out_dir.path().join("d").exists());
    assert_eq!(
        q.latest_run().await.unwrap(),
        run_c,
        "the latest run is still C"
    );

    // A purged run no longer counts: with A gone, only C's done TODOs are skipped.
    q.purge_run(&run_a).await.unwrap();
    let out = dispatcher(&redis, &["run", "--only-new"], Some(repo.path()));
    let run_e = out.stdout.trim().to_string();
    stderr_has(&out, "4 TODOs skipped: already done in an earlier run");
    assert_eq!(task_ids(&q, &run_e).await, done);

    // Without the flag every TODO is enqueued and the run records no skip count.
    let out = dispatcher(&redis, &["run"], Some(repo.path()));
    let run_f = out.stdout.trim().to_string();
    assert!(!out.stderr.contains("skipped"), "{}", out.stderr);
    assert_eq!(task_ids(&q, &run_f).await, all_now);
    assert_eq!(q.run_status(&run_f).await.unwrap().skipped_done, None);
    eprintln!("only_new end to end: {:.1} s", t0.elapsed().as_secs_f64());
}

fn spec(id: String) -> TaskSpec {
    TaskSpec {
        id,
        path: "src/a.rs".into(),
        line: 1,
        tag: "TODO".into(),
        text: "x".into(),
        language: "rust".into(),
        symbol: None,
        block_start: 0,
        block_end: 1,
        content_hash: "h".into(),
        block_hash: "b".into(),
    }
}

/// Sets task states directly: the selection reads only the state and the block hash, which
/// `spec` sets to "b".
fn set_states(redis: &RedisServer, run_id: &str, states: &[(String, &str)]) {
    let mut p = redis::pipe();
    for (id, st) in states {
        p.hset(keys::task(run_id, id), "state", *st).ignore();
    }
    let _: () = p.query(&mut redis.conn()).unwrap();
}

#[tokio::test]
async fn done_ids_of_10000_tasks_over_several_runs_are_read_in_pipelines() {
    let redis = RedisServer::start();
    let q = Queue::connect(&redis.url(), 7).await.unwrap();
    q.ensure_group().await.unwrap();
    let ids = |r: std::ops::Range<usize>| r.map(|i| format!("t{i}")).collect::<Vec<_>>();
    // Two runs of /r (5,000 tasks each) and one of /other holding every id, all done.
    let run1 = q.create_run("/r").await.unwrap();
    let run2 = q.create_run("/r").await.unwrap();
    let foreign = q.create_run("/other").await.unwrap();
    let specs = |ids: Vec<String>| ids.into_iter().map(spec).collect::<Vec<_>>();
    q.enqueue_batch(&run1, &specs(ids(0..5_000))).await.unwrap();
    q.enqueue_batch(&run2, &specs(ids(5_000..10_000)))
        .await
        .unwrap();
    q.enqueue_batch(&foreign, &specs(ids(0..10_000)))
        .await
        .unwrap();
    let st = |i: usize, done_every: usize| {
        if i.is_multiple_of(done_every) {
            "done"
        } else {
            ["failed", "dead", "cancelled"][i % 3]
        }
    };
    set_states(
        &redis,
        &run1,
        &(0..5_000)
            .map(|i| (format!("t{i}"), st(i, 2)))
            .collect::<Vec<_>>(),
    );
    set_states(
        &redis,
        &run2,
        &(5_000..10_000)
            .map(|i| (format!("t{i}"), st(i, 3)))
            .collect::<Vec<_>>(),
    );
    set_states(
        &redis,
        &foreign,
        &(0..10_000)
            .map(|i| (format!("t{i}"), "done"))
            .collect::<Vec<_>>(),
    );

    // The scan now has 11,000 TODOs: the 10,000 and 1,000 new ones.
    let scan = ids(0..11_000);
    // Every block as enqueued ("b"), except t0's, whose block has changed since.
    let mut candidates: HashMap<&str, &str> = scan.iter().map(|id| (id.as_str(), "b")).collect();
    candidates.insert("t0", "changed");
    let t = Instant::now();
    let runs = q.runs_of_repo("/r").await.unwrap();
    let done = q.done_among(&runs, &candidates).await.unwrap();
    let took = t.elapsed();
    eprintln!("done ids of 10,000 tasks in 2 runs read in {took:?}");
    assert_eq!(runs, [run1.clone(), run2.clone()]);
    // t0 was done, but with another block: it is not skipped.
    let expected: HashSet<String> = (2..5_000)
        .filter(|i| i % 2 == 0)
        .chain((5_000..10_000).filter(|i| i % 3 == 0))
        .map(|i| format!("t{i}"))
        .collect();
    same_ids(&done, &expected);

    // Purged, run 1 no longer counts.
    q.purge_run(&run1).await.unwrap();
    let runs = q.runs_of_repo("/r").await.unwrap();
    assert_eq!(runs, [run2]);
    let done = q.done_among(&runs, &candidates).await.unwrap();
    let of_run2: HashSet<String> = (5_000..10_000)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("t{i}"))
        .collect();
    same_ids(&done, &of_run2);
}

/// Set equality that names a few differences instead of printing thousands of ids.
fn same_ids(got: &HashSet<String>, want: &HashSet<String>) {
    let extra: Vec<_> = got.difference(want).take(5).collect();
    let missing: Vec<_> = want.difference(got).take(5).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{} ids, {} wanted; extra {extra:?}, missing {missing:?}",
        got.len(),
        want.len()
    );
}

#[tokio::test]
async fn an_identical_todo_that_inherits_a_done_id_is_not_skipped() {
    let redis = RedisServer::start();
    let q = Queue::connect(&redis.url(), 7).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.py");
    let two = "def load(path):\n    # TODO: handle errors\n    data = open(path).read()\n    # TODO: handle errors\n    return parse(data)\n";
    std::fs::write(&file, two).unwrap();
    let before = scan(&redis, dir.path());
    assert_eq!(before.len(), 2);
    let (first, second) = (before[0].1.clone(), before[1].1.clone());

    // Run A: the first is done, the second failed.
    let run_a = dispatcher(&redis, &["run"], Some(dir.path()))
        .stdout
        .trim()
        .to_string();
    let plan: HashMap<String, TaskState> = [
        (first.clone(), TaskState::Done),
        (second.clone(), TaskState::Failed),
    ]
    .into();
    finish(&q, &run_a, &plan).await;

    // The first one's patch is applied: the TODO that is left is now the first of its kind and
    // takes its id, but it was never done.
    let applied = "def load(path):\n    try:\n        data = open(path).read()\n    except OSError:\n        return None\n    # TODO: handle errors\n    return parse(data)\n";
    std::fs::write(&file, applied).unwrap();
    let after = scan(&redis, dir.path());
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].1, first, "ids count identical TODOs in order");

    let out = dispatcher(&redis, &["run", "--only-new"], Some(dir.path()));
    let run_b = out.stdout.trim().to_string();
    assert!(
        !run_b.is_empty(),
        "the left TODO must be enqueued: {}",
        out.stderr
    );
    assert_eq!(task_ids(&q, &run_b).await, BTreeSet::from([first.clone()]));
    stderr_has(&out, "0 TODOs skipped");

    // Without the edit (the done patch not applied), the done TODO is still skipped.
    std::fs::write(&file, two).unwrap();
    let out = dispatcher(&redis, &["run", "--only-new"], Some(dir.path()));
    let run_c = out.stdout.trim().to_string();
    assert_eq!(task_ids(&q, &run_c).await, BTreeSet::from([second]));
    stderr_has(&out, "1 TODO skipped");
}
