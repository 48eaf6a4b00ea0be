//! Every way a task can end records the same things, against a real redis-server: the run's
//! counters, the task's `state`, `finished_at` and `reason_kind`, and exactly one entry on the
//! results stream, whichever script ended it (a worker's completion, a dead letter after the
//! last retry, cancellation, a delivery started once too often) and however many late
//! completions follow.

use std::collections::HashMap;
use std::time::Duration;

use crate::queue_redis::{queue, spec};
use crate::util::RedisServer;
use tars_fleet::queue::{Completion, Delivery, Queue, Release, Stage, Start, TaskState, keys};

/// The entries of a stream, oldest first, as field maps.
fn entries(r: &RedisServer, stream: &str) -> Vec<HashMap<String, String>> {
    let v: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(&mut r.conn())
        .unwrap();
    v.into_iter().map(|(_, fields)| fields).collect()
}

/// The results stream's entries for one task.
fn results_of(r: &RedisServer, run: &str, task: &str) -> Vec<HashMap<String, String>> {
    entries(r, &keys::results_stream())
        .into_iter()
        .filter(|e| e["run"] == run && e["task"] == task)
        .collect()
}

/// The task ended in `state` with `reason_kind`, and the results stream says so exactly once.
async fn assert_ended(
    r: &RedisServer,
    q: &Queue,
    run: &str,
    task: &str,
    state: TaskState,
    reason_kind: Option<&str>,
) {
    let t = q.task(run, task).await.unwrap().unwrap();
    assert_eq!(t.state, state, "{task}");
    assert_eq!(t.outcome.reason_kind.as_deref(), reason_kind, "{task}");
    assert!(t.outcome.finished_at.is_some(), "{task}: no finished_at");
    let got = results_of(r, run, task);
    assert_eq!(got.len(), 1, "{task}: one results entry, got {got:?}");
    assert_eq!(got[0]["state"], state.as_str(), "{task}");
}

async fn fetch(q: &Queue, consumer: &str, count: usize) -> Vec<Delivery> {
    let mut b = q.blocking_connection().await.unwrap();
    q.fetch(
        &mut b,
        Stage::Llm,
        consumer,
        count,
        Duration::from_millis(100),
    )
    .await
    .unwrap()
}

/// The run's counters add up: every task counted once, in its final state, and stamped.
async fn assert_run_finished(q: &Queue, run: &str, expect: &[(TaskState, u64)]) {
    let st = q.run_status(run).await.unwrap();
    for s in TaskState::ALL {
        let want = expect.iter().find(|(e, _)| *e == s).map_or(0, |(_, n)| *n);
        assert_eq!(st.count(s), want, "{s} in {st:?}");
    }
    assert_eq!(st.finished(), st.total, "{st:?}");
    assert!(st.finished_at.is_some(), "run not stamped finished: {st:?}");
}

#[tokio::test]
async fn cancelling_a_run_records_every_queued_and_retrying_task() {
    let r = RedisServer::start();
    let q = queue(&r).await;
    let run = q.create_run("/repo").await.unwrap();
    for id in ["t1", "t2", "t3"] {
        q.enqueue(&run, &spec(id)).await.unwrap();
    }
    // t1 fails once and waits out a long backoff: retrying, in the delayed set.
    let ds = fetch(&q, "w1", 1).await;
    assert_eq!(
        q.start(&ds[0], "w1", 5).await.unwrap(),
        Start::Running { attempt: 1 }
    );
    let err = serde_json::json!({"kind": "busy"});
    let c = q
        .retry_later(
            &ds[0],
            "w1",
            5,
            Duration::from_secs(600),
            &err,
            "LLM busy",
            "busy",
        )
        .await
        .unwrap();
    assert_eq!(c, Completion::Retrying);

    assert_eq!(q.cancel_run(&run).await.unwrap(), 3);
    for id in ["t1", "t2", "t3"] {
        assert_ended(&r, &q, &run, id, TaskState::Cancelled, Some("cancelled")).await;
    }
    assert_run_finished(&q, &run, &[(TaskState::Cancelled, 3)]).await;
    let delayed: u64 = redis::cmd("ZCARD")
        .arg(keys::delayed())
        .query(&mut r.conn())
        .unwrap();
    assert_eq!(delayed, 0, "a cancelled retry leaves the delayed set");

    // The queued tasks' deliveries are still in the stream: a worker skips them, and a late
    // completion of either records nothing more.
    let left = fetch(&q, "w2", 10).await;
    assert_eq!(left.len(), 2);
    for d in &left {
        assert_eq!(
            q.start(d, "w2", 5).await.unwrap(),
            Start::Skip("cancelled".into())
        );
        let c = q.complete(d, "w2", TaskState::Done, &[]).await.unwrap();
        assert_eq!(c, Completion::Duplicate);
    }
    for id in ["t1", "t2", "t3"] {
        assert_ended(&r, &q, &run, id, TaskState::Cancelled, Some("cancelled")).await;
    }
    assert_eq!(entries(&r, &keys::results_stream()).len(), 3);
}

#[tokio::test]
async fn a_delivery_started_past_max_attempts_is_dead_and_recorded_once() {
    let r = RedisServer::start();
    let q = queue(&r).await;
    let run = q.create_run("/repo").await.unwrap();
    q.enqueue(&run, &spec("t1")).await.unwrap();
    // Its workers keep dying mid-task: each one's lease expires and the next reclaims it.
    let mut d = fetch(&q, "w1", 1).await.remove(0);
    assert_eq!(
        q.start(&d, "w1", 2).await.unwrap(),
        Start::Running { attempt: 1 }
    );
    d = q
        .reclaim(Stage::Llm, "w2", Duration::ZERO, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        q.start(&d, "w2", 2).await.unwrap(),
        Start::Running { attempt: 2 }
    );
    d = q
        .reclaim(Stage::Llm, "w3", Duration::ZERO, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(q.start(&d, "w3", 2).await.unwrap(), Start::Dead);

    assert_ended(
        &r,
        &q,
        &run,
        "t1",
        TaskState::Dead,
        Some("attempts_exhausted"),
    )
    .await;
    assert_run_finished(&q, &run, &[(TaskState::Dead, 1)]).await;
    let dead = entries(&r, &keys::dead_stream());
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (dead[0]["run"].as_str(), dead[0]["task"].as_str()),
        (run.as_str(), "t1")
    );
    assert!(dead[0]["reason"].contains("attempts exhausted"), "{dead:?}");

    // The second worker was only slow: its completion arrives after the task died.
    let c = q.complete(&d, "w2", TaskState::Done, &[]).await.unwrap();
    assert_eq!(c, Completion::Duplicate);
    assert_ended(
        &r,
        &q,
        &run,
        "t1",
        TaskState::Dead,
        Some("attempts_exhausted"),
    )
    .await;
    assert_eq!(entries(&r, &keys::dead_stream()).len(), 1);
}

#[tokio::test]
async fn a_task_cancelled_when_a_worker_starts_it_is_recorded() {
    let r = RedisServer::start();
    let q = queue(&r).await;
    let run = q.create_run("/repo").await.unwrap();
    q.enqueue(&run, &spec("t1")).await.unwrap();
    let d = fetch(&q, "w1", 1).await.remove(0);
    assert_eq!(
        q.start(&d, "w1", 5).await.unwrap(),
        Start::Running { attempt: 1 }
    );
    // A running task is left to its worker's next checkpoint...
    assert_eq!(q.cancel_run(&run).await.unwrap(), 0);
    // ...but that worker dies, and the one that reclaims the task finds the run cancelled.
    let d = q
        .reclaim(Stage::Llm, "w2", Duration::ZERO, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        q.start(&d, "w2", 5).await.unwrap(),
        Start::Skip("cancelled".into())
    );
    assert_ended(&r, &q, &run, "t1", TaskState::Cancelled, Some("cancelled")).await;
    assert_run_finished(&q, &run, &[(TaskState::Cancelled, 1)]).await;

    let c = q.complete(&d, "w2", TaskState::Failed, &[]).await.unwrap();
    assert_eq!(c, Completion::Duplicate);
    assert_ended(&r, &q, &run, "t1", TaskState::Cancelled, Some("cancelled")).await;
}

#[tokio::test]
async fn every_ending_is_one_results_entry_whatever_completions_follow() {
    let r = RedisServer::start();
    let q = queue(&r).await;
    let run = q.create_run("/repo").await.unwrap();
    let ids = ["done", "failed", "cancelled", "dead", "exhausted", "queued"];
    for id in ids {
        q.enqueue(&run, &spec(id)).await.unwrap();
    }
    // All but `queued` are delivered and started; max_attempts is 1 throughout.
    let mut ds = fetch(&q, "w1", 5).await;
    assert_eq!(ds.len(), 5);
    for d in &ds {
        assert_eq!(
            q.start(d, "w1", 1).await.unwrap(),
            Start::Running { attempt: 1 }
        );
    }
    let by_id: HashMap<String, Delivery> = ds.iter().map(|d| (d.task.clone(), d.clone())).collect();
    // A worker's three final states (complete.lua).
    for (id, state, reason, kind) in [
        ("done", TaskState::Done, "", ""),
        (
            "failed",
            TaskState::Failed,
            "no code block",
            "no_code_block",
        ),
        (
            "cancelled",
            TaskState::Cancelled,
            "the run was cancelled",
            "cancelled",
        ),
    ] {
        let fields = [
            ("patch", format!("diff of {id}")),
            ("reason", reason.to_string()),
            ("reason_kind", kind.to_string()),
        ];
        let c = q.complete(&by_id[id], "w1", state, &fields).await.unwrap();
        assert_eq!(c, Completion::Recorded, "{id}");
    }
    // The last retry dead-letters (retry.lua).
    let busy = serde_json::json!({"kind": "busy"});
    let c = q
        .retry_later(
            &by_id["dead"],
            "w1",
            1,
            Duration::ZERO,
            &busy,
            "LLM busy",
            "busy",
        )
        .await
        .unwrap();
    assert_eq!(c, Completion::Dead);
    // Its worker dies; the next start is one too many (start.lua).
    let again = q
        .reclaim(Stage::Llm, "w2", Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].task, "exhausted");
    assert_eq!(q.start(&again[0], "w2", 1).await.unwrap(), Start::Dead);
    // The run is cancelled with `queued` still queued (cancel.lua); its delivery is skipped.
    assert_eq!(q.cancel_run(&run).await.unwrap(), 1);
    let last = fetch(&q, "w3", 10).await;
    assert_eq!(last.len(), 1);
    assert_eq!(
        q.start(&last[0], "w3", 1).await.unwrap(),
        Start::Skip("cancelled".into())
    );
    ds.extend(last);

    // Each delivery completed again, in every final state and as a retry: all dropped.
    for d in &ds {
        for state in [TaskState::Done, TaskState::Failed, TaskState::Cancelled] {
            let c = q.complete(d, "w1", state, &[]).await.unwrap();
            assert_eq!(c, Completion::Duplicate, "{} as {state}", d.task);
        }
        let c = q
            .retry_later(d, "w1", 1, Duration::ZERO, &busy, "LLM busy", "busy")
            .await
            .unwrap();
        assert_eq!(c, Completion::Duplicate, "{} retried", d.task);
    }
    assert_ended(&r, &q, &run, "done", TaskState::Done, None).await;
    let failed = Some("no_code_block");
    assert_ended(&r, &q, &run, "failed", TaskState::Failed, failed).await;
    let cancelled = Some("cancelled");
    assert_ended(&r, &q, &run, "cancelled", TaskState::Cancelled, cancelled).await;
    assert_ended(&r, &q, &run, "dead", TaskState::Dead, Some("busy")).await;
    let exhausted = Some("attempts_exhausted");
    assert_ended(&r, &q, &run, "exhausted", TaskState::Dead, exhausted).await;
    assert_ended(&r, &q, &run, "queued", TaskState::Cancelled, cancelled).await;
    assert_eq!(entries(&r, &keys::results_stream()).len(), ids.len());
    assert_eq!(entries(&r, &keys::dead_stream()).len(), 2);
    assert_eq!(q.run_status(&run).await.unwrap().duplicates, 24);
    assert_run_finished(
        &q,
        &run,
        &[
            (TaskState::Done, 1),
            (TaskState::Failed, 1),
            (TaskState::Cancelled, 2),
            (TaskState::Dead, 2),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_task_done_after_a_retry_keeps_no_reason_of_the_failed_attempt() {
    let r = RedisServer::start();
    let q = queue(&r).await;
    let run = q.create_run("/repo").await.unwrap();
    q.enqueue(&run, &spec("t1")).await.unwrap();
    let d = fetch(&q, "w1", 1).await.remove(0);
    q.start(&d, "w1", 3).await.unwrap();
    let busy = serde_json::json!({"kind": "busy"});
    let c = q
        .retry_later(&d, "w1", 3, Duration::ZERO, &busy, "LLM busy", "busy")
        .await
        .unwrap();
    assert_eq!(c, Completion::Retrying);
    assert_eq!(q.promote_due(10).await.unwrap(), 1);
    let d = fetch(&q, "w1", 1).await.remove(0);
    assert_eq!(
        q.start(&d, "w1", 3).await.unwrap(),
        Start::Running { attempt: 2 }
    );
    let c = q.complete(&d, "w1", TaskState::Done, &[]).await.unwrap();
    assert_eq!(c, Completion::Recorded);
    assert_ended(&r, &q, &run, "t1", TaskState::Done, None).await;
    let t = q.task(&run, "t1").await.unwrap().unwrap();
    assert_eq!(t.outcome.reason, None);
    assert_eq!(
        t.outcome.errors.len(),
        1,
        "the failed attempt's error is kept"
    );
    assert_run_finished(&q, &run, &[(TaskState::Done, 1)]).await;
}

#[tokio::test]
async fn completing_with_a_state_that_is_not_final_is_refused_and_changes_nothing() {
    let r = RedisServer::start();
    let q = queue(&r).await;
    let run = q.create_run("/repo").await.unwrap();
    q.enqueue(&run, &spec("t1")).await.unwrap();
    let d = fetch(&q, "w1", 1).await.remove(0);
    q.start(&d, "w1", 3).await.unwrap();
    for state in [TaskState::Queued, TaskState::Running, TaskState::Retrying] {
        assert!(q.complete(&d, "w1", state, &[]).await.is_err(), "{state}");
    }
    let t = q.task(&run, "t1").await.unwrap().unwrap();
    assert_eq!(t.state, TaskState::Running);
    assert!(entries(&r, &keys::results_stream()).is_empty());
    // The delivery is still this worker's to complete.
    let c = q.complete(&d, "w1", TaskState::Done, &[]).await.unwrap();
    assert_eq!(c, Completion::Recorded);
    assert_ended(&r, &q, &run, "t1", TaskState::Done, None).await;
}

#[tokio::test]
async fn a_worker_that_lost_its_delivery_records_nothing_at_either_stage() {
    let r = RedisServer::start();
    let q = queue(&r).await;
    let run = q.create_run("/repo").await.unwrap();
    q.enqueue(&run, &spec("t1")).await.unwrap();
    let d = fetch(&q, "w1", 1).await.remove(0);
    q.start(&d, "w1", 5).await.unwrap();
    // w1's lease lapses; w2 takes the task and works on it.
    let d2 = q
        .reclaim(Stage::Llm, "w2", Duration::ZERO, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        q.start(&d2, "w2", 5).await.unwrap(),
        Start::Running { attempt: 2 }
    );
    // Every transition w1 tries is refused and writes nothing.
    let patch = [("patch", "w1's diff".to_string())];
    for state in [TaskState::Done, TaskState::Failed, TaskState::Cancelled] {
        let c = q.complete(&d, "w1", state, &patch).await.unwrap();
        assert_eq!(c, Completion::NotOwner, "{state}");
    }
    let busy = serde_json::json!({"kind": "busy"});
    let c = q
        .retry_later(&d, "w1", 5, Duration::ZERO, &busy, "LLM busy", "busy")
        .await
        .unwrap();
    assert_eq!(c, Completion::NotOwner);
    let c = q.hand_to_verify(&d, "w1", &patch).await.unwrap();
    assert_eq!(c, Completion::NotOwner);
    assert_eq!(q.release(&d, "w1").await.unwrap(), Release::NotOwner);
    let t = q.task(&run, "t1").await.unwrap().unwrap();
    assert_eq!(t.state, TaskState::Running);
    assert_eq!(t.outcome.worker.as_deref(), Some("w2"));
    assert_eq!(t.patch, None);
    assert!(t.outcome.errors.is_empty(), "{:?}", t.outcome.errors);
    assert!(entries(&r, &keys::results_stream()).is_empty());
    let st = q.run_status(&run).await.unwrap();
    assert_eq!((st.stale_results, st.duplicates), (6, 0));
    assert_eq!(st.count(TaskState::Running), 1, "{st:?}");

    // w2, the owner, hands the patch on; the verify stage's delivery goes the same way.
    let c = q.hand_to_verify(&d2, "w2", &[]).await.unwrap();
    assert_eq!(c, Completion::HandedToVerify);
    // w1 again, now that the delivery is acknowledged: still nothing.
    let c = q.complete(&d, "w1", TaskState::Done, &patch).await.unwrap();
    assert_eq!(c, Completion::NotOwner);
    let mut b = q.blocking_connection().await.unwrap();
    let v = q
        .fetch(&mut b, Stage::Verify, "v1", 1, Duration::from_millis(100))
        .await
        .unwrap()
        .remove(0);
    q.start(&v, "v1", 5).await.unwrap();
    let v2 = q
        .reclaim(Stage::Verify, "v2", Duration::ZERO, 10)
        .await
        .unwrap()
        .remove(0);
    q.start(&v2, "v2", 5).await.unwrap();
    let repair = [("repair", "{}".to_string())];
    assert_eq!(
        q.send_for_repair(&v, "v1", &repair).await.unwrap(),
        Completion::NotOwner
    );
    assert_eq!(
        q.complete(&v, "v1", TaskState::Failed, &[]).await.unwrap(),
        Completion::NotOwner
    );
    assert_eq!(q.release(&v, "v1").await.unwrap(), Release::NotOwner);
    let c = q
        .complete(&v2, "v2", TaskState::Done, &[("patch", "v2's".into())])
        .await
        .unwrap();
    assert_eq!(c, Completion::Recorded);
    assert_ended(&r, &q, &run, "t1", TaskState::Done, None).await;
    let t = q.task(&run, "t1").await.unwrap().unwrap();
    assert_eq!(t.patch.as_deref(), Some("v2's"));
    assert_eq!(q.run_status(&run).await.unwrap().stale_results, 10);
    assert_run_finished(&q, &run, &[(TaskState::Done, 1)]).await;
}
