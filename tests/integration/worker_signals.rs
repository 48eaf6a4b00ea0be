//! SIGTERM: stop fetching, hand in-flight work back, exit 0.

use std::process::Stdio;
use std::time::Duration;

use crate::fake_llm::{FakeLlm, Reply, openai_completion};
use crate::util::{Proc, RedisServer, cmd, demo_repo, run, wait_until};

#[test]
fn sigterm_hands_in_flight_tasks_back_and_exits_zero() {
    let redis = RedisServer::start();
    // An LLM that takes far longer than the grace period.
    let fake = FakeLlm::start(|req, _| {
        if req.path == "/v1/chat/completions" {
            std::thread::sleep(Duration::from_secs(60));
        }
        Reply::Json {
            status: 200,
            body: if req.path == "/v1/models" {
                r#"{"data":[{"id":"m"}]}"#.into()
            } else {
                openai_completion("late")
            },
        }
    });
    let repo = demo_repo();
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .arg("run")
        .arg(repo.path());
    let out = run(d);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let run_id = out.stdout.trim().to_string();

    let mut w = cmd("worker");
    w.env("TARS_REDIS__URL", redis.url())
        .env("TARS_LLM__URL", fake.url())
        .env("TARS_LLM__API", "openai")
        .env("TARS_WORKER__SHUTDOWN_GRACE_SECS", "1")
        .args(["--concurrency", "2"])
        .stderr(Stdio::null());
    let mut worker = Proc {
        child: w.spawn().unwrap(),
        name: "worker".into(),
    };
    wait_until("two tasks in flight", Duration::from_secs(30), || {
        fake.count("/v1/chat/completions") >= 2
    });
    worker.signal("TERM");
    let status = worker
        .wait_timeout(Duration::from_secs(30))
        .expect("worker exits after SIGTERM");
    assert!(status.success(), "{status}");

    let mut s = cmd("dispatcher");
    s.env("TARS_REDIS__URL", redis.url())
        .args(["status", "--json", &run_id]);
    let st: serde_json::Value = serde_json::from_str(&run(s).stdout).unwrap();
    assert_eq!(st["running"], 0, "{st}");
    assert_eq!(
        st["queued"], 6,
        "handed back at once, not after the lease: {st}"
    );
    // The handed-back attempts are not counted against the task.
    let mut conn = redis.conn();
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{{tars}}:run:{run_id}:tasks"))
        .query(&mut conn)
        .unwrap();
    for id in ids {
        let attempts: u32 = redis::cmd("HGET")
            .arg(format!("{{tars}}:task:{run_id}:{id}"))
            .arg("attempts")
            .query(&mut conn)
            .unwrap();
        assert_eq!(attempts, 0);
    }
}
