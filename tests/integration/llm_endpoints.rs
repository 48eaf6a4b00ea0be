//! Issue 14: LLM capacity. Permits handed over first come first served without polling, several
//! endpoints (one refusing connections, one without the model), `max_in_flight = "auto"`, and
//! no task held by a worker while no endpoint has room. Real redis-server and worker processes;
//! the LLM is a stand-in with P slots that counts the requests it holds at once.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::fake_llm::{FakeLlm, Reply, many_todos_repo, openai_completion, resolving_answer};
use crate::util::{Proc, RedisServer, cmd, free_port, run, wait_until};
use tars_fleet::queue::Queue;

/// A server with `slots` slots: a request takes a free one or waits in line, holds it for the
/// answer time, and the server notes the most requests it held at once (in slots and waiting).
struct SlotServer {
    llm: FakeLlm,
    state: Arc<(Mutex<SlotState>, Condvar)>,
}

#[derive(Default)]
struct SlotState {
    busy: usize,
    present: usize,
    max_present: usize,
    served: usize,
}

impl SlotServer {
    fn start(slots: usize, answer: Duration, tell_slots: bool) -> SlotServer {
        let state: Arc<(Mutex<SlotState>, Condvar)> = Arc::default();
        let st = state.clone();
        let llm = FakeLlm::start(move |req, _| match req.path.as_str() {
            "/v1/chat/completions" => {
                let (lock, cv) = &*st;
                {
                    let mut s = lock.lock().unwrap();
                    s.present += 1;
                    s.max_present = s.max_present.max(s.present);
                    while s.busy >= slots {
                        s = cv.wait(s).unwrap();
                    }
                    s.busy += 1;
                }
                std::thread::sleep(answer);
                {
                    let mut s = lock.lock().unwrap();
                    s.busy -= 1;
                    s.present -= 1;
                    s.served += 1;
                }
                cv.notify_one();
                Reply::Json {
                    status: 200,
                    body: openai_completion(&resolving_answer(&req.body)),
                }
            }
            "/props" if tell_slots => Reply::Json {
                status: 200,
                body: format!(r#"{{"total_slots":{slots},"model_path":"m.gguf"}}"#),
            },
            "/props" => Reply::Json {
                status: 404,
                body: r#"{"error":"not found"}"#.into(),
            },
            _ => crate::fake_llm::models_reply(),
        });
        SlotServer { llm, state }
    }

    fn max_present(&self) -> usize {
        self.state.0.lock().unwrap().max_present
    }

    fn served(&self) -> usize {
        self.state.0.lock().unwrap().served
    }
}

fn worker_with_config(redis: &RedisServer, config: &std::path::Path, env: &[(&str, &str)]) -> Proc {
    let mut w = cmd("worker");
    w.env("TARS_REDIS__URL", redis.url())
        .arg("--config")
        .arg(config)
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::null());
    Proc {
        child: w.spawn().expect("spawn worker"),
        name: "worker".into(),
    }
}

/// Two workers against `llm`, with `env`.
fn two_workers(redis: &RedisServer, llm: &str, env: &[(&str, &str)]) -> [Proc; 2] {
    [(); 2].map(|()| crate::util::spawn_worker(redis, llm, env, std::process::Stdio::null()))
}

fn run_wait(redis: &RedisServer, repo: &std::path::Path) -> crate::util::Output {
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(["run", "--wait", "--timeout", "240", "--out"])
        .arg(repo.join(".out"))
        .arg(repo);
    run(d)
}

fn status_json(redis: &RedisServer) -> serde_json::Value {
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(["status", "--json"]);
    serde_json::from_str(&run(d).success().stdout).expect("status --json")
}

/// Permits go to waiters in the order they came, handed over by the release itself (the
/// waiter's wake list gets the grant: no polling), and a newcomer does not overtake them.
#[tokio::test]
async fn permits_are_handed_over_first_come_first_served() {
    let redis = RedisServer::start();
    let q = Queue::connect(&redis.url(), 7).await.unwrap();
    let ttl = Duration::from_secs(30);
    let ep = "http://gpu:11434";
    assert_eq!(
        q.permit_acquire(ep, "h0", 1, ttl, true).await.unwrap(),
        Some(1)
    );
    for h in ["h1", "h2", "h3"] {
        assert_eq!(
            q.permit_acquire(ep, h, 1, ttl, true).await.unwrap(),
            None,
            "{h}"
        );
    }
    // A newcomer that does not queue finds no free permit while others wait.
    q.permit_release(ep, "h0", 1, ttl).await.unwrap();
    assert_eq!(
        q.permit_acquire(ep, "late", 1, ttl, false).await.unwrap(),
        None
    );
    let mut blocking = q.blocking_connection().await.unwrap();
    let woke = q
        .permit_wait(&mut blocking, &[(ep, "h1")], Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(woke, Some((0, 1)), "h1 was handed the permit h0 gave back");
    // h2 withdraws; h1's release goes to h3.
    q.permit_release(ep, "h2", 1, ttl).await.unwrap();
    q.permit_release(ep, "h1", 1, ttl).await.unwrap();
    let woke = q
        .permit_wait(
            &mut blocking,
            &[(ep, "h2"), (ep, "h3")],
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    assert_eq!(woke, Some((1, 1)), "h3, not the withdrawn h2");
    // A holder that vanished (its lease lapsed) frees its permit for the next waiter.
    q.permit_release(ep, "h3", 1, ttl).await.unwrap();
    assert!(
        q.permit_acquire(ep, "crashed", 1, Duration::from_millis(200), false)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        q.permit_acquire(ep, "next", 1, ttl, true).await.unwrap(),
        None
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        q.permit_acquire(ep, "next", 1, ttl, true)
            .await
            .unwrap()
            .is_some(),
        "the lapsed permit went to the waiter"
    );
}

/// Three endpoints: one serves, one refuses connections, one lacks the model. Every task ends
/// done on the one that serves, no attempt is spent on the others, and `status` shows both
/// taken out with the reason.
#[test]
fn endpoints_that_refuse_connections_or_lack_the_model_are_taken_out_not_the_fleet() {
    let redis = RedisServer::start();
    let good = SlotServer::start(2, Duration::from_millis(50), false);
    let no_model = FakeLlm::start(|req, _| match req.path.as_str() {
        "/v1/models" => Reply::Json {
            status: 200,
            body: r#"{"object":"list","data":[{"id":"other-a"},{"id":"other-b"}]}"#.into(),
        },
        _ => Reply::Json {
            status: 404,
            body: r#"{"error":{"message":"model 'm' not found"}}"#.into(),
        },
    });
    let refused = format!("http://127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tars.toml");
    std::fs::write(
        &config,
        format!(
            "[llm]\napi = \"openai\"\nmodel = \"m\"\n\n[[llm.endpoints]]\nurl = \"{refused}\"\nmax_in_flight = 2\n\n[[llm.endpoints]]\nurl = \"{}\"\nmax_in_flight = 2\n\n[[llm.endpoints]]\nurl = \"{}\"\nmax_in_flight = 2\n",
            no_model.url(),
            good.llm.url()
        ),
    )
    .unwrap();
    let _w1 = worker_with_config(&redis, &config, &[("TARS_WORKER__CONCURRENCY", "3")]);
    let _w2 = worker_with_config(&redis, &config, &[("TARS_WORKER__CONCURRENCY", "3")]);
    let repo = many_todos_repo(4, 5);
    let out = run_wait(&redis, repo.path()).success();
    assert!(out.stderr.contains("20 done"), "{}", out.stderr);
    assert_eq!(
        good.served(),
        20,
        "every task answered by the serving endpoint"
    );
    let s = status_json(&redis);
    assert_eq!(s["done"], 20, "{s}");
    let endpoints = s["endpoints"].as_array().expect("endpoints in status");
    let find = |url: &str| {
        endpoints
            .iter()
            .find(|e| e["url"] == url)
            .unwrap_or_else(|| panic!("{url} in {s}"))
            .clone()
    };
    let r = find(&refused);
    assert!(r["state"].as_str().unwrap().starts_with("cooling"), "{r}");
    assert!(
        r["reason"].as_str().unwrap().contains("cannot reach"),
        "{r}"
    );
    let m = find(&no_model.url());
    assert!(
        m["state"].as_str().unwrap().starts_with("missing_model"),
        "{m}"
    );
    let g = find(&good.llm.url());
    assert_eq!(g["state"], "serving", "{g}");
    assert_eq!(g["limit"], 2, "{g}");
    assert_eq!(g["limit_source"], "set", "{g}");
    assert!(g["requests"].as_u64().unwrap() >= 20, "{g}");
    assert!(g["p50_ms"].as_u64().is_some(), "{g}");
    // No task spent an attempt on the endpoints that were out.
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url()).args(["status"]);
    let text = run(d).success().stdout;
    assert!(text.contains("llm endpoints 3"), "{text}");
    let q = redis.conn();
    drop(q);
    let tasks: Vec<String> = redis::cmd("KEYS")
        .arg("{tars}:task:*")
        .query(&mut redis.conn())
        .unwrap();
    for t in tasks {
        let attempts: u32 = redis::cmd("HGET")
            .arg(&t)
            .arg("attempts")
            .query(&mut redis.conn())
            .unwrap();
        assert_eq!(attempts, 1, "{t}");
    }
}

/// `max_in_flight = "auto"` against a server with 2 slots that does not say so: the fleet
/// finds the limit, and never has more than slots + 1 requests at the server.
#[test]
fn auto_finds_the_limit_and_never_exceeds_the_slots_plus_one() {
    let redis = RedisServer::start();
    let server = SlotServer::start(2, Duration::from_millis(300), false);
    let env = [
        ("TARS_LLM__MAX_IN_FLIGHT", "auto"),
        ("TARS_WORKER__CONCURRENCY", "4"),
    ];
    let _workers = two_workers(&redis, &server.llm.url(), &env);
    let repo = many_todos_repo(6, 5);
    let out = run_wait(&redis, repo.path()).success();
    assert!(out.stderr.contains("30 done"), "{}", out.stderr);
    assert!(
        server.max_present() <= 3,
        "{} requests at a server with 2 slots",
        server.max_present()
    );
    let s = status_json(&redis);
    let e = &s["endpoints"][0];
    assert_eq!(e["limit_source"], "found", "{e}");
    assert!(e["limit"].as_u64().unwrap() <= 3, "{e}");
}

/// A server that reports its slots (llama.cpp's `/props`): `auto` takes that number.
#[test]
fn auto_takes_the_slots_a_server_reports() {
    let redis = RedisServer::start();
    let server = SlotServer::start(3, Duration::from_millis(100), true);
    let env = [
        ("TARS_LLM__MAX_IN_FLIGHT", "auto"),
        ("TARS_WORKER__CONCURRENCY", "4"),
    ];
    let _workers = two_workers(&redis, &server.llm.url(), &env);
    let repo = many_todos_repo(3, 6);
    run_wait(&redis, repo.path()).success();
    assert!(server.max_present() <= 3, "{}", server.max_present());
    let s = status_json(&redis);
    let e = &s["endpoints"][0];
    assert_eq!(e["limit_source"], "server", "{e}");
    assert_eq!(e["limit"], 3, "{e}");
}

/// With a cap, a worker takes a permit before it fetches: no task sits `running` in a worker
/// while the endpoint has no room for it.
#[test]
fn no_task_waits_in_a_worker_for_a_permit() {
    let redis = RedisServer::start();
    let server = SlotServer::start(1, Duration::from_millis(200), false);
    let env = [
        ("TARS_LLM__MAX_IN_FLIGHT", "1"),
        ("TARS_WORKER__CONCURRENCY", "4"),
    ];
    let _workers = two_workers(&redis, &server.llm.url(), &env);
    let repo = many_todos_repo(2, 5);
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .arg("run")
        .arg(repo.path());
    let run_id = run(d).success().stdout.trim().to_string();
    let mut max_running = 0;
    wait_until("the run finished", Duration::from_secs(120), || {
        let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(tars_fleet::queue::keys::run(&run_id))
            .query(&mut redis.conn())
            .unwrap_or_default();
        let running: u64 = h.get("running").and_then(|v| v.parse().ok()).unwrap_or(0);
        max_running = max_running.max(running);
        h.contains_key("finished_at")
    });
    assert_eq!(server.served(), 10);
    assert!(server.max_present() <= 1, "{}", server.max_present());
    // One at the LLM, and at most one that has its answer and is recording its result (its
    // permit already passed on); before, all eight fetched tasks sat `running` waiting.
    assert!(
        max_running <= 2,
        "{max_running} tasks running at once with one permit"
    );
}

/// Issue 15, item 2: a worker started before its LLM server (or against one listening where it
/// cannot reach) waits, saying why and what usually fixes it, instead of exiting into a
/// restart loop; once the server is up the same process serves the run.
#[test]
fn a_worker_waits_for_an_llm_server_that_is_not_up_yet() {
    let redis = RedisServer::start();
    let port = free_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut worker = crate::util::spawn_worker(
        &redis,
        &format!("http://127.0.0.1:{port}"),
        &[],
        log.reopen().unwrap().into(),
    );
    wait_until("the worker says it waits", Duration::from_secs(30), || {
        std::fs::read_to_string(log.path()).is_ok_and(|l| l.contains("OLLAMA_HOST=0.0.0.0"))
    });
    assert!(
        worker.wait_timeout(Duration::ZERO).is_none(),
        "still running"
    );
    let _llm = FakeLlm::start_at(("127.0.0.1", port), |req, _| match req.path.as_str() {
        "/v1/chat/completions" => Reply::Json {
            status: 200,
            body: openai_completion(&resolving_answer(&req.body)),
        },
        _ => crate::fake_llm::models_reply(),
    });
    let repo = many_todos_repo(1, 2);
    let out = run_wait(&redis, repo.path()).success();
    assert!(out.stderr.contains("2 done"), "{}", out.stderr);
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        text.contains("cannot reach the LLM server; waiting for it"),
        "{text}"
    );
}
