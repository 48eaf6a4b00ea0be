use crate::fake_llm::{FakeLlm, Reply, openai_completion};
use crate::util::{RedisServer, cmd, demo_repo, free_port, run};

#[test]
fn scan_of_a_missing_path_says_so() {
    let mut c = cmd("dispatcher");
    c.args(["scan", "/definitely/not/here"]);
    let out = run(c).code_is(1);
    assert!(
        out.stderr.contains("/definitely/not/here") && out.stderr.contains("does not exist"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn run_on_a_file_says_it_is_not_a_directory() {
    let repo = demo_repo();
    let mut c = cmd("dispatcher");
    c.arg("run").arg(repo.path().join("src/lib.rs"));
    let out = run(c).code_is(1);
    assert!(out.stderr.contains("not a directory"), "{}", out.stderr);
}

#[test]
fn unreachable_redis_names_the_url_and_how_to_start_one() {
    let repo = demo_repo();
    let url = format!("redis://127.0.0.1:{}", free_port());
    let mut c = cmd("dispatcher");
    c.args(["run", "--redis-url", &url]).arg(repo.path());
    let out = run(c).code_is(4);
    assert!(
        out.stderr.contains(&url) && out.stderr.contains("redis-server"),
        "{}",
        out.stderr
    );
}

/// How often `needle` occurs in `hay`.
fn occurrences(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn unreachable_redis_says_its_cause_once_then_the_fix() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let mut c = cmd("dispatcher");
    c.args(["--redis-url", &url, "status"]);
    let out = run(c).code_is(4);
    let err = out.stderr.trim_end();
    assert_eq!(
        occurrences(err, "Connection refused"),
        1,
        "the cause once:\n{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: cannot reach Redis at {url}: Connection refused"
        )),
        "{err}"
    );
    assert!(
        err.ends_with("or set redis.url / TARS_REDIS__URL"),
        "the fix last:\n{err}"
    );
}

#[test]
fn bad_config_values_say_their_cause_once() {
    for (key, value, cause) in [
        ("TARS_LLM__API", "gpt", "is not an LLM API"),
        ("TARS_QUEUE__LEASE_SECS", "0", "is invalid"),
        ("TARS_QUEUE__LEASE_SECS", "soon", "soon"),
    ] {
        let mut c = cmd("dispatcher");
        c.env(key, value).args(["status"]);
        let out = run(c).code_is(3);
        let err = out.stderr.trim_end();
        assert_eq!(
            occurrences(err, cause),
            1,
            "{key}={value}: the cause once:\n{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn bad_config_value_names_the_key() {
    let mut c = cmd("dispatcher");
    c.env("TARS_LLM__API", "gpt").args(["status"]);
    let out = run(c).code_is(3);
    assert!(
        out.stderr.contains("gpt") && out.stderr.contains("ollama"),
        "{}",
        out.stderr
    );
}

/// A worker that cannot reach its LLM names the URL and waits for it (issue 15: exiting would
/// only start a container restart loop); SIGTERM still stops it at once, with 0.
#[test]
fn worker_with_unreachable_llm_names_the_url_and_waits() {
    let redis = RedisServer::start();
    let llm_url = format!("http://127.0.0.1:{}", free_port());
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut w = crate::util::spawn_worker(&redis, &llm_url, &[], log.reopen().unwrap().into());
    crate::util::wait_until(
        "the worker names the URL",
        std::time::Duration::from_secs(30),
        || std::fs::read_to_string(log.path()).is_ok_and(|l| l.contains(&llm_url)),
    );
    w.signal("TERM");
    let status = w
        .wait_timeout(std::time::Duration::from_secs(10))
        .expect("the worker stops on SIGTERM while waiting");
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(text.contains("cannot reach the LLM server"), "{text}");
}

#[test]
fn worker_with_missing_ollama_model_suggests_pull() {
    let redis = RedisServer::start();
    let fake = FakeLlm::start(|req, _| match req.path.as_str() {
        "/api/tags" => Reply::Json {
            status: 200,
            body: r#"{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest"}]}"#.into(),
        },
        _ => Reply::Json {
            status: 404,
            body: r#"{"error":"not found"}"#.into(),
        },
    });
    let mut c = cmd("worker");
    c.env("TARS_REDIS__URL", redis.url())
        .env("TARS_LLM__URL", fake.url())
        .env("TARS_LLM__MODEL", "qwen2.5-coder:7b");
    let out = run(c).code_is(1);
    assert!(
        out.stderr.contains("ollama pull qwen2.5-coder:7b"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&fake.url()), "{}", out.stderr);
}

/// What a worker with the default `llm.api` (Ollama) says against the OpenAI-compatible
/// server at `llm`: exit 3 (the configuration names the wrong API), how to set it, and no
/// `ollama pull`.
fn assert_worker_says_not_ollama(redis: &RedisServer, llm: &str) {
    let mut c = cmd("worker");
    c.env("TARS_REDIS__URL", redis.url())
        .env("TARS_LLM__URL", llm)
        .env("TARS_LLM__API", "ollama");
    let out = run(c).code_is(3);
    assert!(
        out.stderr.contains(&format!(
            "the server at {llm} is an OpenAI-compatible server (not Ollama): \
             set llm.api = \"openai\" (TARS_LLM__API=openai"
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("ollama pull"), "{}", out.stderr);
}

#[test]
fn worker_with_the_ollama_api_against_an_openai_server_says_set_llm_api() {
    let redis = RedisServer::start();
    // llama-cpp-python's answers (FastAPI's 404), llama.cpp's are alike.
    let fake = FakeLlm::start(|req, _| match req.path.as_str() {
        "/v1/models" => crate::fake_llm::models_reply(),
        _ => Reply::Json {
            status: 404,
            body: r#"{"detail":"Not Found"}"#.into(),
        },
    });
    assert_worker_says_not_ollama(&redis, &fake.url());
    assert_eq!(fake.count("/api/tags"), 1);
}

#[test]
fn worker_with_the_ollama_api_against_llama_cpp_says_set_llm_api() {
    let redis = RedisServer::start();
    let llm = crate::util::LlamaServer::start();
    assert_worker_says_not_ollama(&redis, &llm.url());
}

#[test]
fn worker_against_a_server_without_either_listing_still_suggests_pull() {
    // Neither Ollama's listing nor OpenAI's: no claim about what the server is.
    let redis = RedisServer::start();
    let fake = FakeLlm::start(|_, _| Reply::Json {
        status: 404,
        body: r#"{"error":"not found"}"#.into(),
    });
    let mut c = cmd("worker");
    c.env("TARS_REDIS__URL", redis.url())
        .env("TARS_LLM__URL", fake.url())
        .env("TARS_LLM__MODEL", "qwen2.5-coder:7b");
    let out = run(c).code_is(1);
    assert!(
        out.stderr.contains("ollama pull qwen2.5-coder:7b"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("OpenAI-compatible"), "{}", out.stderr);
}

#[test]
fn answer_without_code_block_fails_the_task_and_keeps_the_answer() {
    let redis = RedisServer::start();
    let fake = FakeLlm::start(|req, _| match req.path.as_str() {
        "/v1/models" => Reply::Json {
            status: 200,
            body: r#"{"object":"list","data":[{"id":"m"}]}"#.into(),
        },
        _ => Reply::Json {
            status: 200,
            body: openai_completion("I think you should validate the input."),
        },
    });
    let repo = demo_repo();
    let out_dir = tempfile::tempdir().unwrap();
    let env = |c: &mut std::process::Command| {
        c.env("TARS_REDIS__URL", redis.url())
            .env("TARS_LLM__URL", fake.url())
            .env("TARS_LLM__API", "openai")
            .env("TARS_LLM__MODEL", "m");
    };
    let mut w = cmd("worker");
    env(&mut w);
    w.stderr(std::process::Stdio::null());
    let _worker = crate::util::Proc {
        child: w.spawn().unwrap(),
        name: "worker".into(),
    };
    let mut d = cmd("dispatcher");
    env(&mut d);
    d.args(["run", "--wait", "--timeout", "120", "--out"])
        .arg(out_dir.path())
        .arg(repo.path());
    let out = run(d).code_is(5);
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.path().join("summary.json")).unwrap(),
    )
    .unwrap();
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 6);
    for t in tasks {
        assert_eq!(t["state"], "failed", "{t}");
        assert!(
            t["reason"].as_str().unwrap().contains("no code block"),
            "{t}"
        );
        assert!(t["patch"].is_null());
    }
    // The raw answer is kept in the task's hash for inspection.
    let run_id = out.stdout.trim();
    let mut conn = redis.conn();
    let id = tasks[0]["id"].as_str().unwrap();
    let answer: String = redis::cmd("HGET")
        .arg(format!("{{tars}}:task:{run_id}:{id}"))
        .arg("answer")
        .query(&mut conn)
        .unwrap();
    assert_eq!(answer, "I think you should validate the input.");
}
