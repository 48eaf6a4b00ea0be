//! Credentials in `llm.url` reach the LLM server and nothing else: not the worker's log, not a
//! task's `reason` or `errors` in Redis, not a key name, not `summary.json`, not the
//! dispatcher's output. Real binaries, a real redis-server, a scripted LLM that fails every
//! chat so that the URL ends up in error messages.

use std::process::Stdio;

use crate::fake_llm::{FakeLlm, Reply, models_reply};
use crate::util::{RedisServer, cmd, run, spawn_worker};

const SECRET: &str = "s3cr3t-pw";

/// Every key name and value in the Redis database, as text.
fn dump_redis(redis: &RedisServer) -> String {
    let mut c = redis.conn();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    let mut out = String::new();
    for k in keys {
        let ty: String = redis::cmd("TYPE").arg(&k).query(&mut c).unwrap();
        let v: redis::Value = match ty.as_str() {
            "hash" => redis::cmd("HGETALL").arg(&k).query(&mut c).unwrap(),
            "stream" => redis::cmd("XRANGE")
                .arg(&k)
                .arg("-")
                .arg("+")
                .query(&mut c)
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(&mut c)
                .unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(&k).query(&mut c).unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .query(&mut c)
                .unwrap(),
            _ => redis::cmd("GET").arg(&k).query(&mut c).unwrap(),
        };
        out.push_str(&format!("{k} => {v:?}\n"));
    }
    out
}

#[test]
fn a_password_in_the_llm_url_is_sent_to_the_server_and_shown_nowhere() {
    let redis = RedisServer::start();
    let fake = FakeLlm::start(|req, _| match req.path.as_str() {
        "/v1/chat/completions" => Reply::Json {
            status: 500,
            body: r#"{"error":"boom"}"#.into(),
        },
        _ => models_reply(),
    });
    let url = format!("http://alice:{SECRET}@127.0.0.1:{}", fake.port);
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("worker.log");
    let _worker = spawn_worker(
        &redis,
        &url,
        &[
            ("TARS_LLM__RETRIES", "0"),
            ("TARS_LLM__ANSWER_ATTEMPTS", "1"),
            ("TARS_QUEUE__MAX_ATTEMPTS", "1"),
            ("TARS_LLM__MAX_IN_FLIGHT", "2"),
        ],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("a.py"),
        "def f(x):\n    # TODO: check x\n    return x\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .env("TARS_LLM__URL", &url)
        .args(["run", "--wait", "--timeout", "120", "--out"])
        .arg(out.path())
        .arg(repo.path());
    let r = run(d).code_is(5);

    let summary = std::fs::read_to_string(out.path().join("summary.json")).unwrap();
    let worker_log = std::fs::read_to_string(&log).unwrap();
    let redis_text = dump_redis(&redis);
    for (what, text) in [
        ("dispatcher stdout", &r.stdout),
        ("dispatcher stderr", &r.stderr),
        ("summary.json", &summary),
        ("worker log", &worker_log),
        ("Redis", &redis_text),
    ] {
        assert!(!text.contains(SECRET), "{what} shows the password:\n{text}");
    }
    // The failure still says which server failed, with the user name and without the password.
    assert!(
        summary.contains("alice:***@127.0.0.1"),
        "the reason should name the LLM URL, redacted:\n{summary}"
    );
    assert!(
        worker_log.contains("alice:***@127.0.0.1"),
        "the worker's start line names the LLM, redacted:\n{worker_log}"
    );
    // And the credentials did travel, to the server only (HTTP basic auth).
    let auth = fake
        .requests
        .lock()
        .unwrap()
        .iter()
        .find(|q| q.path == "/v1/chat/completions")
        .and_then(|q| q.authorization.clone());
    let expected = format!(
        "Basic {}",
        base64_encode(format!("alice:{SECRET}").as_bytes())
    );
    assert_eq!(auth.as_deref(), Some(expected.as_str()));
}

fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}
