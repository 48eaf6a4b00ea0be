//! The queue's state transitions against a real redis-server.

use std::time::Duration;

use crate::util::RedisServer;
use tars_fleet::queue::{Completion, Queue, Stage, Start, TaskState, keys};
use tars_fleet::task::TaskSpec;

pub(crate) fn spec(id: &str) -> TaskSpec {
    TaskSpec {
        id: id.into(),
        path: "src/a.rs".into(),
        line: 3,
        tag: "TODO".into(),
        text: "do it".into(),
        language: "rust".into(),
        symbol: Some("fn a() {".into()),
        block_start: 0,
        block_end: 10,
        content_hash: "abc".into(),
        block_hash: "b".into(),
    }
}

pub(crate) async fn queue(r: &RedisServer) -> Queue {
    let q = Queue::connect(&r.url(), 7).await.unwrap();
    q.ensure_group().await.unwrap();
    q
}

#[tokio::test]
async fn enqueueing_the_same_task_twice_adds_nothing() {
    let r = RedisServer::start();
    let q = queue(&r).await;
    let run = q.create_run("/repo").await.unwrap();
    assert!(q.enqueue(&run, &spec("t1")).await.unwrap());
    assert!(!q.enqueue(&run, &spec("t1")).await.unwrap());
    assert!(q.enqueue(&run, &spec("t2")).await.unwrap());
    // The pipelined path is just as idempotent, even within one batch.
    let batch = [spec("t2"), spec("t3"), spec("t3"), spec("t4")];
    assert_eq!(q.enqueue_batch(&run, &batch).await.unwrap(), 2);
    let st = q.run_status(&run).await.unwrap();
    assert_eq!((st.total, st.count(TaskState::Queued)), (4, 4));
    let len: u64 = redis::cmd("XLEN")
        .arg(keys::tasks_stream())
        .query(&mut r.conn())
        .unwrap();
    assert_eq!(len, 4);
    assert_eq!(q.latest_run().await.unwrap(), run);
}

#[tokio::test]
async fn a_task_completes_once_and_a_second_completion_is_dropped() {
    let r = RedisServer::start();
    let q = queue(&r).await;
    let run = q.create_run("/repo").await.unwrap();
    q.enqueue(&run, &spec("t1")).await.unwrap();
    let mut b = q.blocking_connection().await.unwrap();
    let ds = q
        .fetch(&mut b, Stage::Llm, "w1", 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(
        q.start(&ds[0], "w1", 5).await.unwrap(),
        Start::Running { attempt: 1 }
    );
    assert_eq!(
        q.run_status(&run).await.unwrap().count(TaskState::Running),
        1
    );
    let c = q
        .complete(&ds[0], "w1", TaskState::Done, &[("patch", "diff".into())])
        .await
        .unwrap();
    assert_eq!(c, Completion::Recorded);
    let again = q
        .complete(
            &ds[0],
            "w1",
            TaskState::Failed,
            &[("reason", "late".into())],
        )
        .await
        .unwrap();
    assert_eq!(again, Completion::Duplicate);
    let st = q.run_status(&run).await.unwrap();
    assert_eq!(st.duplicates, 1);
    assert_eq!(
        (
            st.count(TaskState::Done),
            st.count(TaskState::Failed),
            st.count(TaskState::Running),
            st.count(TaskState::Queued)
        ),
        (1, 0, 0, 0)
    );
    assert!(st.is_complete() && st.finished_at.is_some());
    let t = q.task(&run, "t1").await.unwrap().unwrap();
    assert_eq!(t.state, TaskState::Done);
    assert_eq!(t.patch.as_deref(), Some("diff"));
    // Acknowledged entries leave the stream and the pending list.
    let len: u64 = redis::cmd("XLEN")
        .arg(keys::tasks_stream())
        .query(&mut r.conn())
        .unwrap();
    assert_eq!(len, 0);
}

#[tokio::test]
async fn retryable_failures_back_off_then_dead_letter_with_every_error() {
    let r = RedisServer::start();
    let q = queue(&r).await;
    let run = q.create_run("/repo").await.unwrap();
    q.enqueue(&run, &spec("t1")).await.unwrap();
    let mut b = q.blocking_connection().await.unwrap();
    for attempt in 1..=2u32 {
        let ds = q
            .fetch(&mut b, Stage::Llm, "w1", 10, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(ds.len(), 1, "attempt {attempt}");
        assert_eq!(
            q.start(&ds[0], "w1", 2).await.unwrap(),
            Start::Running { attempt }
        );
        let err = serde_json::json!({"attempt": attempt, "kind": "busy"});
        let c = q
            .retry_later(&ds[0], "w1", 2, Duration::ZERO, &err, "LLM busy", "busy")
            .await
            .unwrap();
        if attempt == 1 {
            assert_eq!(c, Completion::Retrying);
            assert_eq!(
                q.run_status(&run).await.unwrap().count(TaskState::Retrying),
                1
            );
            assert_eq!(q.promote_due(10).await.unwrap(), 1);
        } else {
            assert_eq!(c, Completion::Dead);
        }
    }
    let st = q.run_status(&run).await.unwrap();
    assert_eq!(
        (
            st.count(TaskState::Dead),
            st.count(TaskState::Retrying),
            st.count(TaskState::Queued),
            st.count(TaskState::Running)
        ),
        (1, 0, 0, 0)
    );
    let t = q.task(&run, "t1").await.unwrap().unwrap();
    assert_eq!(t.state, TaskState::Dead);
    assert_eq!(t.outcome.errors.len(), 2);
    let dead: u64 = redis::cmd("XLEN")
        .arg(keys::dead_stream())
        .query(&mut r.conn())
        .unwrap();
    assert_eq!(dead, 1);
}

#[tokio::test]
async fn an_expired_lease_is_reclaimed_by_another_worker() {
    let r = RedisServer::start();
    let q = queue(&r).await;
    let run = q.create_run("/repo").await.unwrap();
    q.enqueue(&run, &spec("t1")).await.unwrap();
    let mut b = q.blocking_connection().await.unwrap();
    let ds = q
        .fetch(
            &mut b,
            Stage::Llm,
            "dead-worker",
            10,
            Duration::from_millis(100),
        )
        .await
        .unwrap();
    q.start(&ds[0], "dead-worker", 5).await.unwrap();
    // A live lease is not taken...
    assert!(
        q.reclaim(Stage::Llm, "w2", Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // ...an expired one is, and the attempt counts.
    let got = q
        .reclaim(Stage::Llm, "w2", Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(got, ds);
    assert_eq!(
        q.start(&got[0], "w2", 5).await.unwrap(),
        Start::Running { attempt: 2 }
    );
    assert_eq!(
        q.run_status(&run).await.unwrap().count(TaskState::Running),
        1
    );
}

/// Issue 12: a worker whose lease lapsed between its fetch and its start (a partition, a long
/// pause) must not take the task from the worker that reclaimed it: no attempt counted, the
/// owner's name and start time left as they are.
#[tokio::test]
async fn a_worker_that_lost_its_delivery_before_starting_it_takes_nothing() {
    let r = RedisServer::start();
    let q = queue(&r).await;
    let run = q.create_run("/repo").await.unwrap();
    q.enqueue(&run, &spec("t1")).await.unwrap();
    let mut b = q.blocking_connection().await.unwrap();
    let ds = q
        .fetch(&mut b, Stage::Llm, "slow", 10, Duration::from_millis(100))
        .await
        .unwrap();
    // "slow" stalls before start; "fast" reclaims the lapsed delivery and starts it.
    let got = q
        .reclaim(Stage::Llm, "fast", Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(got, ds);
    assert_eq!(
        q.start(&got[0], "fast", 5).await.unwrap(),
        Start::Running { attempt: 1 }
    );
    assert_eq!(q.start(&ds[0], "slow", 5).await.unwrap(), Start::NotOwner);
    let t = q.task(&run, "t1").await.unwrap().unwrap();
    assert_eq!(t.outcome.attempts, 1, "the stale start counted no attempt");
    assert_eq!(t.outcome.worker.as_deref(), Some("fast"), "{t:?}");
    // The owner's delivery is still pending under its name and records normally.
    assert_eq!(
        q.complete(&got[0], "fast", TaskState::Done, &[("patch", "d".into())])
            .await
            .unwrap(),
        Completion::Recorded
    );
}

#[tokio::test]
async fn runs_created_back_to_back_stay_distinct_and_in_creation_order() {
    let r = RedisServer::start();
    let q = queue(&r).await;
    // Hundreds of runs share each second here: their random 16-bit suffixes collide now and
    // then (a collision once merged two runs), and a score tie ordered them by that suffix, so
    // "the latest run" could be an older one.
    let mut created = Vec::new();
    for i in 0..300 {
        created.push(q.create_run(&format!("/repo{i}")).await.unwrap());
    }
    let distinct: std::collections::HashSet<&String> = created.iter().collect();
    assert_eq!(distinct.len(), created.len(), "run ids must be unique");
    assert_eq!(q.latest_run().await.unwrap(), *created.last().unwrap());
    for (i, run) in created.iter().enumerate() {
        assert_eq!(
            q.runs_of_repo(&format!("/repo{i}")).await.unwrap(),
            std::slice::from_ref(run),
            "run {run} must belong to /repo{i} alone"
        );
    }
    let mut conn = redis::Client::open(r.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let listed: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys::runs())
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(listed, created, "listed in creation order");
}
