//! `dispatcher dashboard` against a real redis-server holding a real run, made by the real
//! dispatcher and a worker with the scripted LLM: 60 TODOs, the 30 of `m0.py` resolved (done),
//! the 30 of `m1.py` answered without code (failed `no_code_block`), one with markup in its
//! TODO text. The pages are read over HTTP, by a real browser (Debian's chromium) and the
//! metrics by a real Prometheus (Debian's prometheus and promtool).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::fake_llm::{
    FakeLlm, Reply, many_todos_repo, models_reply, openai_completion, resolving_answer,
};
use crate::util::{Proc, RedisServer, cmd, free_port, repo_root, run, spawn_worker, wait_until};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Whether `program` runs here; under CI=true a missing one fails the test.
fn have(program: &str, hint: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(!in_ci(), "{program} is required in CI: {hint}");
        eprintln!("SKIPPED: no {program} ({hint})");
    }
    ok
}

/// A finished run of 61 tasks (31 done, 30 failed); returns the run id. The worker is stopped
/// afterwards, so that tasks queued again by an action stay queued.
fn finished_run(redis: &RedisServer) -> String {
    finished_run_counted(redis).0
}

/// [`finished_run`], and how many chat completions the LLM answered.
fn finished_run_counted(redis: &RedisServer) -> (String, usize) {
    let fake = FakeLlm::start(|req, _| match req.path.as_str() {
        "/v1/chat/completions" if req.body.contains("handle case 1-") => Reply::Json {
            status: 200,
            body: openai_completion("I would validate the input first."),
        },
        "/v1/chat/completions" => Reply::Json {
            status: 200,
            body: openai_completion(&resolving_answer(&req.body)),
        },
        _ => models_reply(),
    });
    let repo = many_todos_repo(2, 30);
    std::fs::write(
        repo.path().join("m2.py"),
        "def g(x):\n    # TODO: <script>alert(1)</script> & \"quote\"\n    return x\n",
    )
    .unwrap();
    let worker = spawn_worker(redis, &fake.url(), &[], Stdio::null());
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(["run", "--wait", "--timeout", "120", "--out"])
        .arg(repo.path().join(".out"))
        .arg(repo.path());
    let out = run(d);
    assert!(
        matches!(out.code, Some(0 | 5)),
        "dispatcher run: {}",
        out.stderr
    );
    drop(worker);
    (
        out.stdout.trim().to_string(),
        fake.count("/v1/chat/completions"),
    )
}

/// The dashboard process, on a free port.
fn dashboard(redis: &RedisServer, token: Option<&Path>) -> (Proc, u16) {
    let port = free_port();
    let mut c = cmd("dispatcher");
    c.env("TARS_REDIS__URL", redis.url())
        .args(["dashboard", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::null());
    if let Some(t) = token {
        c.arg("--admin-token-file").arg(t);
    }
    let p = Proc {
        child: c.spawn().expect("dashboard"),
        name: "dashboard".into(),
    };
    wait_until("the dashboard", Duration::from_secs(20), || {
        crate::util::http_get(port, "/").is_some()
    });
    (p, port)
}

/// A bare HTTP/1.1 request: (status, body).
fn http(port: u16, method: &str, path: &str, body: &str, headers: &[&str]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    // A bearer-only client sends no form, and so no content type.
    if method == "POST" && !body.is_empty() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    // A redirect (an action's 303) is followed with a GET, as a browser does.
    if code == 303
        && let Some(to) = head.lines().find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
    {
        let (c, b) = http(port, "GET", to.trim(), "", &[]);
        return (if c == 200 { 303 } else { c }, b);
    }
    (code, body.to_string())
}

fn get(port: u16, path: &str) -> String {
    let (code, body) = http(port, "GET", path, "", &[]);
    assert_eq!(code, 200, "GET {path}: {body}");
    body
}

fn rows(html: &str, class: &str) -> usize {
    html.matches(&format!("<tr class=\"{class}\"")).count()
}

/// The task ids linked from a run page.
fn task_links(html: &str) -> Vec<String> {
    html.split("/tasks/")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn dashboard_pages_show_runs_filters_paging_and_tasks() {
    let redis = RedisServer::start();
    let run_id = finished_run(&redis);
    let (_d, port) = dashboard(&redis, None);

    let runs = get(port, "/");
    assert!(runs.contains(&format!("data-run=\"{run_id}\"")), "{runs}");
    assert!(runs.contains("<td>61/61</td>"), "{runs}");
    assert!(runs.contains("<td class=\"done\">31</td>"), "{runs}");
    assert!(runs.contains("<td class=\"failed\">30</td>"), "{runs}");
    // The bounded history: per-minute counts in Redis, each with its time to live.
    let done_in_history: u64 = runs
        .split("<tr class=\"minute\">")
        .skip(1)
        .filter_map(|r| {
            r.split("<td class=\"done\">")
                .nth(1)?
                .split('<')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(done_in_history, 31, "{runs}");
    let minutes: Vec<String> = redis::cmd("KEYS")
        .arg("{tars}:minute:*")
        .query(&mut redis.conn())
        .unwrap();
    assert!(!minutes.is_empty());
    for k in &minutes {
        let ttl: i64 = redis::cmd("TTL").arg(k).query(&mut redis.conn()).unwrap();
        assert!(ttl > 0 && ttl <= 24 * 3600, "{k}: ttl {ttl}");
    }

    let page = get(port, &format!("/runs/{run_id}"));
    assert!(page.contains("61 tasks match; page 1 of 2"), "{page}");
    assert_eq!(rows(&page, "task"), 50);
    assert!(page.contains("rel=\"next\" href=\"?page=2\""), "{page}");
    let page2 = get(port, &format!("/runs/{run_id}?page=2"));
    assert_eq!(rows(&page2, "task"), 11);
    // The reason histogram, yield per language and model, throughput, percentiles.
    assert!(
        page.contains(">no_code_block</a></td><td>30</td>"),
        "{page}"
    );
    assert!(
        page.contains("<tr><td>python</td><td>31</td><td>61</td><td>51%</td></tr>"),
        "{page}"
    );
    assert!(
        page.contains("<tr><td>test-model</td><td>31</td><td>61</td>"),
        "{page}"
    );
    assert!(page.contains("id=\"throughput\"><tr><td>"), "{page}");
    assert!(page.contains("LLM time per task p50 "), "{page}");
    // Filters: state, reason kind, path, text, language.
    for (query, n) in [
        ("state=failed", 30),
        ("kind=no_code_block", 30),
        ("path=m0", 30),
        ("q=case%201-2", 11), // 1-2, 1-20..1-29
        ("q=CASE%200-7", 1),
        ("lang=python&state=done", 31),
        ("state=failed&path=m0", 0),
    ] {
        let p = get(port, &format!("/runs/{run_id}?{query}"));
        assert!(
            p.contains(&format!("{n} tasks match")),
            "{query}: {}",
            p.split("id=\"matching\">")
                .nth(1)
                .unwrap_or("")
                .split('<')
                .next()
                .unwrap_or("")
        );
        assert_eq!(rows(&p, "task"), n.min(50), "{query}");
    }
    // Text from the repository is escaped everywhere it shows.
    let hostile = get(port, &format!("/runs/{run_id}?path=m2"));
    assert!(hostile.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quote&quot;"));
    assert!(!hostile.contains("<script>alert(1)"));

    // A done task: the TODO, its block, the diff; a failed one: its reason and raw answer.
    let done = get(port, &format!("/runs/{run_id}?path=m0.py&q=case%200-3"));
    let id = &task_links(&done)[0];
    let t = get(port, &format!("/runs/{run_id}/tasks/{id}"));
    assert!(t.contains("<td id=\"state\">done</td>"), "{t}");
    assert!(t.contains("handle case 0-3"), "{t}");
    assert!(t.contains("<pre id=\"block\">def f_0_3(x):"), "{t}");
    assert!(
        t.contains("<span class=\"del\">-    # TODO: handle case 0-3</span>"),
        "{t}"
    );
    assert!(
        t.contains("<td>enqueued</td>") && t.contains("<td>finished</td>"),
        "{t}"
    );
    let failed = get(port, &format!("/runs/{run_id}?state=failed"));
    let id = &task_links(&failed)[0];
    let t = get(port, &format!("/runs/{run_id}/tasks/{id}"));
    assert!(t.contains("no_code_block"), "{t}");
    assert!(
        t.contains("<pre id=\"answer\">I would validate the input first."),
        "{t}"
    );

    // Unknown things are 404s, not errors.
    assert_eq!(http(port, "GET", "/runs/nope", "", &[]).0, 404);
    assert_eq!(
        http(
            port,
            "GET",
            &format!("/runs/{run_id}/tasks/0000000000000000"),
            "",
            &[]
        )
        .0,
        404
    );
    let w = get(port, "/workers");
    assert!(w.contains("id=\"endpoints\""), "{w}");
    // On loopback it answers only for loopback names (no DNS rebinding), never framed.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut head = String::new();
    s.read_to_string(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 421"), "{head}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = String::new();
    s.read_to_string(&mut head).unwrap();
    let lower = head.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{head}");
    assert!(
        lower.contains("x-frame-options: deny") && lower.contains("frame-ancestors 'none'"),
        "{head}"
    );
}

#[test]
fn dashboard_actions_need_the_admin_token_and_are_done_with_it() {
    let redis = RedisServer::start();
    let run_id = finished_run(&redis);
    let status = |field: &str| -> u64 {
        redis::cmd("HGET")
            .arg(tars_fleet::queue::keys::run(&run_id))
            .arg(field)
            .query::<Option<u64>>(&mut redis.conn())
            .unwrap()
            .unwrap_or(0)
    };
    {
        // Read-only: no action, whatever is sent.
        let (_d, port) = dashboard(&redis, None);
        let page = get(port, &format!("/runs/{run_id}"));
        assert!(page.contains("read-only"), "{page}");
        let (code, _) = http(
            port,
            "POST",
            &format!("/runs/{run_id}/purge"),
            "token=x",
            &[],
        );
        assert_eq!(code, 403);
        assert_eq!(status("total"), 61, "the run is still there");
    }
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let (_d, port) = dashboard(&redis, Some(&token_file));
    let page = get(port, &format!("/runs/{run_id}"));
    assert!(
        page.contains("action=\"/runs/") && page.contains("name=\"token\""),
        "{page}"
    );
    // Wrong or missing token: refused, nothing changes.
    for body in ["state=failed", "state=failed&token=wrong"] {
        let (code, _) = http(port, "POST", &format!("/runs/{run_id}/retry"), body, &[]);
        assert_eq!(code, 401, "{body}");
    }
    assert_eq!(status("failed"), 30);
    // A filtered retry: only the failed tasks whose text matches.
    let (code, body) = http(
        port,
        "POST",
        &format!("/runs/{run_id}/retry"),
        "state=failed&q=case+1-1&token=s3cret-token",
        &[],
    );
    // Answered with a redirect to the run page (a reload does not repeat the action).
    assert_eq!(code, 303, "{body}");
    assert!(body.contains("11 failed tasks queued again"), "{body}");
    assert_eq!((status("failed"), status("queued")), (19, 11));
    // The bearer header works as well, with no form and in any case.
    let (code, body) = http(
        port,
        "POST",
        &format!("/runs/{run_id}/cancel"),
        "",
        &["Authorization: bearer s3cret-token"],
    );
    assert_eq!(code, 303, "{body}");
    assert!(body.contains("cancelled 11 tasks"), "{body}");
    assert_eq!(status("cancelled"), 11);
    let (code, body) = http(
        port,
        "POST",
        &format!("/runs/{run_id}/purge"),
        "token=s3cret-token",
        &[],
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        http(port, "GET", &format!("/runs/{run_id}"), "", &[]).0,
        404
    );
}

#[test]
fn metrics_pass_promtool_and_a_real_prometheus_reads_the_done_count() {
    if !have(
        "promtool",
        "Debian package prometheus; scripts/setup-test-deps installs it",
    ) || !have("prometheus", "Debian package prometheus")
    {
        return;
    }
    let redis = RedisServer::start();
    let (run_id, calls) = finished_run_counted(&redis);
    let (_d, port) = dashboard(&redis, None);
    let text = get(port, "/metrics");
    assert!(
        text.contains(&format!(
            "tars_run_tasks{{run=\"{run_id}\",state=\"done\"}} 31"
        )),
        "{text}"
    );
    assert!(text.contains("reason_kind=\"no_code_block\"} 30"), "{text}");
    // Whole tasks: 31 done and 30 failed in the duration histogram.
    assert!(
        text.contains("tars_task_duration_seconds_count{state=\"done\"} 31")
            && text.contains("tars_task_duration_seconds_bucket{state=\"failed\",le=\"+Inf\"} 30"),
        "{text}"
    );
    // The latency histogram: every call the LLM answered counted (a failed task is asked again
    // with the reason, so more than 61), the +Inf bucket holding all.
    let count = text
        .lines()
        .find(|l| l.starts_with("tars_llm_request_duration_seconds_count{"))
        .unwrap_or_else(|| panic!("no latency histogram: {text}"));
    assert!(
        calls > 61 && count.ends_with(&format!(" {calls}")),
        "{count}: {calls} calls"
    );
    assert!(
        text.lines().any(
            |l| l.starts_with("tars_llm_request_duration_seconds_bucket{")
                && l.contains(&format!("le=\"+Inf\"}} {calls}"))
        ),
        "{text}"
    );
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A Prometheus server scraping the dashboard every second.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tars\n    \
             static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let prom_port = free_port();
    let _prom = Proc {
        child: Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus"),
        name: "prometheus".into(),
    };
    let query = format!(
        "/api/v1/query?query=tars_run_tasks%7Brun%3D%22{run_id}%22%2Cstate%3D%22done%22%7D"
    );
    let mut last = String::new();
    wait_until(
        "prometheus to scrape the done count",
        Duration::from_secs(60),
        || match crate::util::http_get(prom_port, &query) {
            Some((200, body)) => {
                last = body;
                last.contains("\"31\"")
            }
            _ => false,
        },
    );
    assert!(last.contains("\"status\":\"success\""), "{last}");
}

/// Where the screenshots go (kept after the test, to be looked at).
fn screenshots() -> PathBuf {
    let dir = repo_root().join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chromium(args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1400,1800",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_real_browser_renders_the_runs_a_run_and_a_task() {
    if !have(
        "chromium",
        "Debian package chromium; scripts/setup-test-deps installs it",
    ) {
        return;
    }
    let redis = RedisServer::start();
    let run_id = finished_run(&redis);
    let (_d, port) = dashboard(&redis, None);
    let base = format!("http://127.0.0.1:{port}");
    let dom = chromium(&["--dump-dom"], &format!("{base}/"));
    assert!(dom.contains(&format!("data-run=\"{run_id}\"")), "{dom}");
    assert!(dom.contains("<td class=\"done\">31</td>"), "{dom}");
    let dom = chromium(&["--dump-dom"], &format!("{base}/runs/{run_id}?path=m0"));
    assert!(dom.contains("30 tasks match"), "{dom}");
    assert!(dom.contains("data-state=\"done\">done 31</span>"), "{dom}");
    let id = task_links(&dom)[0].clone();
    let task_url = format!("{base}/runs/{run_id}/tasks/{id}");
    let dom = chromium(&["--dump-dom"], &task_url);
    assert!(dom.contains("<pre id=\"diff\">"), "{dom}");
    assert!(dom.contains("class=\"add\">+"), "{dom}");
    for (name, url) in [
        ("runs", format!("{base}/")),
        ("run", format!("{base}/runs/{run_id}")),
        ("task", task_url),
    ] {
        let png = screenshots().join(format!("{name}.png"));
        let _ = std::fs::remove_file(&png);
        chromium(&[&format!("--screenshot={}", png.display())], &url);
        let bytes = std::fs::read(&png).unwrap_or_default();
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "no screenshot of the {name} page"
        );
    }
}

/// A worker at work: the workers page links its current task, with how long it has been at it.
#[test]
fn the_workers_page_links_the_task_a_worker_is_at() {
    let redis = RedisServer::start();
    // An LLM that takes its time, so the task is still at work while the page is read.
    let fake = FakeLlm::start(|req, _| match req.path.as_str() {
        "/v1/chat/completions" => {
            std::thread::sleep(Duration::from_secs(20));
            Reply::Json {
                status: 200,
                body: openai_completion(&resolving_answer(&req.body)),
            }
        }
        _ => models_reply(),
    });
    let repo = many_todos_repo(1, 1);
    let _worker = spawn_worker(&redis, &fake.url(), &[], Stdio::null());
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .arg("run")
        .arg(repo.path());
    let run_id = run(d).success().stdout.trim().to_string();
    let (_d, port) = dashboard(&redis, None);
    let link = format!("<a href=\"/runs/{run_id}/tasks/");
    let mut page = String::new();
    wait_until(
        "the worker's current task on /workers",
        Duration::from_secs(15),
        || {
            page = get(port, "/workers");
            page.contains(&link)
        },
    );
    assert!(page.contains("<tr class=\"worker\">"), "{page}");
    assert!(page.contains("</a> (") && page.contains(" s)"), "{page}");
}

/// Keys a hostile Redis writer damaged (a run id that is not UTF-8, an endpoint and a stream of
/// the wrong type, counters at u64::MAX, a page number past the end) cost the damaged item,
/// not the page: every page still answers, and the metrics still parse.
#[test]
fn damaged_keys_cost_the_item_not_the_page() {
    let redis = RedisServer::start();
    let run_id = finished_run(&redis);
    let mut c = redis.conn();
    let max = u64::MAX.to_string();
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(tars_fleet::queue::keys::run_tasks(&run_id))
        .query(&mut c)
        .unwrap();
    for id in ids.iter().take(2) {
        let _: () = redis::cmd("HSET")
            .arg(tars_fleet::queue::keys::task(&run_id, id))
            .arg("prompt_tokens")
            .arg(&max)
            .arg("llm_ms")
            .arg(&max)
            .query(&mut c)
            .unwrap();
    }
    let _: () = redis::cmd("ZADD")
        .arg("{tars}:runs")
        .arg(5)
        .arg(b"bad\xff".as_slice())
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("{tars}:llm:endpoints")
        .arg("bad")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("{tars}:llm:bad:state")
        .arg("x")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg("{tars}:stream:dead")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("{tars}:stream:dead")
        .arg("x")
        .query(&mut c)
        .unwrap();
    let minute = tars_fleet::time::now_secs() / 60;
    let _: () = redis::cmd("HSET")
        .arg(format!("{{tars}}:minute:{minute}"))
        .arg("done")
        .arg(&max)
        .query(&mut c)
        .unwrap();
    let (_d, port) = dashboard(&redis, None);
    let runs = get(port, "/");
    assert!(runs.contains(&format!("data-run=\"{run_id}\"")), "{runs}");
    let page = get(port, &format!("/runs/{run_id}?page=18446744073709551615"));
    assert!(page.contains("page 2 of 2"), "{page}");
    assert!(
        page.contains("18446744073709551615 prompt"),
        "saturated, not wrapped: {page}"
    );
    get(port, "/workers");
    let text = get(port, "/metrics");
    assert!(
        text.contains(&format!(
            "tars_run_tasks{{run=\"{run_id}\",state=\"done\"}} 31"
        )),
        "{text}"
    );
    assert!(!text.contains("stream=\"dead\""), "{text}");
}

/// A task whose first attempt failed: its page lists the attempt, when it failed and why,
/// between the enqueue and the end.
#[test]
fn a_task_page_lists_each_failed_attempt_in_its_timeline() {
    let redis = RedisServer::start();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let fake = FakeLlm::start(move |req, _| match req.path.as_str() {
        "/v1/chat/completions" => {
            if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                Reply::Json {
                    status: 500,
                    body: r#"{"error":"the model crashed"}"#.into(),
                }
            } else {
                Reply::Json {
                    status: 200,
                    body: openai_completion(&resolving_answer(&req.body)),
                }
            }
        }
        _ => models_reply(),
    });
    let repo = many_todos_repo(1, 1);
    let _worker = spawn_worker(
        &redis,
        &fake.url(),
        &[("TARS_LLM__RETRIES", "0")],
        Stdio::null(),
    );
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(["run", "--wait", "--timeout", "120", "--out"])
        .arg(repo.path().join(".out"))
        .arg(repo.path());
    let run_id = run(d).success().stdout.trim().to_string();
    let (_d, port) = dashboard(&redis, None);
    let page = get(port, &format!("/runs/{run_id}"));
    let id = &task_links(&page)[0];
    let t = get(port, &format!("/runs/{run_id}/tasks/{id}"));
    assert!(t.contains("<td id=\"state\">done</td>"), "{t}");
    let attempt = t
        .split("<tr class=\"attempt\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no failed attempt in the timeline: {t}"));
    assert!(
        attempt.starts_with("<td>attempt 1 failed</td><td>2"),
        "{attempt}"
    );
    assert!(attempt.contains("500"), "{attempt}");
}
