//! Shared test harness: real servers on free ports, the built binaries, temp repositories.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Polls `ready` until it holds; panics with `what` after `limit`. Readiness, not timing.
pub fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > limit {
            panic!("{what} not ready after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// [`wait_until`] for async checks, inside a tokio test: polls without blocking the runtime.
pub async fn wait_until_async<F, Fut>(what: &str, limit: Duration, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !ready().await {
        if start.elapsed() > limit {
            panic!("{what} not ready after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A child process killed when the test ends, whatever happens.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status();
    }
    /// Waits for exit up to `limit`; None if still running.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private redis-server on a free port, with its own directory.
pub struct RedisServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    proc: Option<Proc>,
    /// Extra `redis-server` arguments (`--maxmemory 2mb`...), kept across restarts.
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// [`RedisServer::start`] with extra `redis-server` arguments, e.g.
    /// `["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]`.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = RedisServer {
            port: free_port(),
            dir,
            proc: None,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--dir",
                self.dir.path().to_str().unwrap_or("."),
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed: run scripts/setup-test-deps");
        self.proc = Some(Proc {
            child,
            name: "redis-server".into(),
        });
        let url = self.url();
        wait_until("redis-server", Duration::from_secs(20), || {
            redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
        });
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server gracefully (it writes its append-only file) and starts it again on the
    /// same port and directory, as an operator's restart would.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A restart that loses every key, as a Redis without persistence (or one whose disk was
    /// lost) comes back: stopped, its data directory emptied, started on the same port.
    pub fn restart_losing_data(&mut self) {
        self.stop();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        self.spawn();
    }

    /// The first half of [`RedisServer::restart`]: stopped gracefully, down until
    /// [`RedisServer::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("TERM");
            p.wait_timeout(Duration::from_secs(20))
                .expect("redis-server stops on SIGTERM");
        }
    }

    /// Starts a stopped server again on its port and directory (its append-only file).
    pub fn start_again(&mut self) {
        if self.proc.is_none() {
            self.spawn();
        }
    }

    /// Redis's clock (`TIME`) in ms.
    pub fn time_ms(&self) -> u64 {
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut self.conn()).expect("TIME");
        secs * 1000 + micros / 1000
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url().as_str())
            .and_then(|c| c.get_connection())
            .expect("connect to test redis")
    }
}

/// llama-cpp-python's OpenAI-compatible server with SmolLM2-135M (scripts/setup-test-deps).
/// A TCP proxy in front of a server (Redis) that can cut its clients off and let them back, as
/// a network partition between one worker and Redis does: [`TcpProxy::cut`] resets every open
/// connection and holds new ones open without forwarding a byte (the client's commands hang
/// until its own timeouts, as behind a dropped route); [`TcpProxy::heal`] closes the held ones
/// and forwards again.
pub struct TcpProxy {
    pub port: u16,
    state: std::sync::Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    cut: std::sync::atomic::AtomicBool,
    /// Both ends of every connection, forwarded or held, to be shut down by a cut or a heal.
    open: std::sync::Mutex<Vec<TcpStream>>,
    stop: std::sync::atomic::AtomicBool,
}

impl TcpProxy {
    pub fn start(target_port: u16) -> TcpProxy {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("addr").port();
        let state: std::sync::Arc<ProxyState> = Default::default();
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let _ = client.set_nodelay(true);
                if st.cut.load(Ordering::SeqCst) {
                    // Accepted, never answered: a black hole until the heal closes it.
                    if let Ok(mut open) = st.open.lock() {
                        open.push(client);
                    }
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let _ = server.set_nodelay(true);
                if let (Ok(c2), Ok(s2), Ok(mut open)) =
                    (client.try_clone(), server.try_clone(), st.open.lock())
                {
                    open.push(c2);
                    open.push(s2);
                }
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        TcpProxy { port, state }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn close_all(&self) {
        let open = std::mem::take(&mut *self.state.open.lock().expect("proxy lock"));
        for s in open {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Cuts the clients off: open connections reset, new ones held without an answer.
    pub fn cut(&self) {
        self.state
            .cut
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.close_all();
    }

    /// Lets the clients back: held connections closed (the clients reconnect), new ones
    /// forwarded.
    pub fn heal(&self) {
        self.state
            .cut
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.close_all();
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.state
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.close_all();
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// llama.cpp's own server (llama-server, from xllamacpp's wheel) with SmolLM2-135M, through
/// scripts/llm-server.py: a real OpenAI-compatible LLM server, one slot.
pub struct LlamaServer {
    pub port: u16,
    _proc: Proc,
    _log: tempfile::NamedTempFile,
}

impl LlamaServer {
    pub fn start() -> LlamaServer {
        LlamaServer::start_on("127.0.0.1")
    }

    /// Listens on `host`; 0.0.0.0 lets containers reach it through host.docker.internal.
    pub fn start_on(host: &str) -> LlamaServer {
        let cache = std::env::var("HOME")
            .map(|h| PathBuf::from(h).join(".cache/tars-fleet"))
            .unwrap_or_else(|_| PathBuf::from("/tmp/tars-fleet"));
        let python = std::env::var("TARS_TEST_LLM_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|_| cache.join("venv/bin/python"));
        let model = std::env::var("TARS_TEST_LLM_MODEL")
            .map(PathBuf::from)
            .unwrap_or_else(|_| cache.join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert!(
            python.exists() && model.exists(),
            "the test LLM is not installed ({} / {}): run scripts/setup-test-deps",
            python.display(),
            model.display()
        );
        let server = std::env::var("TARS_TEST_LLM_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join("scripts/llm-server.py"));
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(&python)
            .arg(&server)
            .arg("--model")
            .arg(&model)
            .args(["--host", host, "--port", &port.to_string(), "--ctx", "2048"])
            .stdout(Stdio::null())
            .stderr(
                log.reopen()
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("start scripts/llm-server.py");
        let mut proc = Proc {
            child,
            name: "llm-server".into(),
        };
        wait_until("llm-server", Duration::from_secs(120), || {
            if let Ok(Some(st)) = proc.child.try_wait() {
                let mut s = String::new();
                let _ = std::fs::File::open(log.path()).and_then(|mut f| f.read_to_string(&mut s));
                panic!("scripts/llm-server.py exited with {st}: {s}");
            }
            http_get(port, "/v1/models").is_some_and(|(code, _)| code == 200)
        });
        LlamaServer {
            port,
            _proc: proc,
            _log: log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A bare HTTP/1.1 GET, enough for readiness probes.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|x| x.1.to_string())?;
    Some((code, body))
}

pub fn bin(name: &str) -> PathBuf {
    match name {
        "dispatcher" => PathBuf::from(env!("CARGO_BIN_EXE_dispatcher")),
        "worker" => PathBuf::from(env!("CARGO_BIN_EXE_worker")),
        other => panic!("no binary {other}"),
    }
}

/// A command for one of our binaries with a clean TARS_* environment.
pub fn cmd(name: &str) -> Command {
    clean_env(Command::new(bin(name)))
}

/// `c` without the test's own TARS_* variables, logging at info.
pub fn clean_env(mut c: Command) -> Command {
    // vars_os: a variable that is not UTF-8 in the test's own environment must not panic here.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TARS_") {
            c.env_remove(k);
        }
    }
    c.env("TARS_LOG", "info");
    c
}

/// A worker process on `redis` using the OpenAI-compatible LLM at `llm`, with extra
/// `TARS_*` settings; its log goes to `stderr`.
pub fn spawn_worker(redis: &RedisServer, llm: &str, extra: &[(&str, &str)], stderr: Stdio) -> Proc {
    worker_process(cmd("worker"), redis, llm, extra, stderr)
}

/// [`spawn_worker`] on a host whose wall clock is off by `offset` (libfaketime's `faketime -f`
/// syntax: `+1h`, `-90s`); its monotonic clock (timers, backoffs) is left alone.
pub fn spawn_worker_with_clock(
    redis: &RedisServer,
    llm: &str,
    offset: &str,
    extra: &[(&str, &str)],
    stderr: Stdio,
) -> Proc {
    // libfaketime preloaded into the worker itself: the `faketime` wrapper would fork, and
    // killing it would leave the worker running.
    let lib = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketime.so.1")])
        .find(|p| p.exists())
        .expect(
            "libfaketime must be installed (Debian package faketime): run scripts/setup-test-deps",
        );
    let mut c = cmd("worker");
    c.env("LD_PRELOAD", lib)
        .env("FAKETIME", offset)
        .env("DONT_FAKE_MONOTONIC", "1");
    worker_process(c, redis, llm, extra, stderr)
}

fn worker_process(
    mut w: Command,
    redis: &RedisServer,
    llm: &str,
    extra: &[(&str, &str)],
    stderr: Stdio,
) -> Proc {
    w.env("TARS_REDIS__URL", redis.url())
        .env("TARS_LLM__API", "openai")
        .env("TARS_LLM__URL", llm)
        .env("TARS_LLM__MODEL", "m")
        .envs(extra.iter().copied())
        .stderr(stderr);
    Proc {
        child: w.spawn().expect("spawn worker"),
        name: "worker".into(),
    }
}

/// What a finished command did, and the command itself, so that a failed assertion can say
/// which command it was and what it printed (the idea of ripgrep's `assert_err` and fd's
/// `assert_output`).
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, shell-quoted: `[cd DIR &&] [VAR=value ...] PROGRAM ARGS...`, with the
    /// environment variables the test set on the command.
    pub command: String,
    pub status: std::process::ExitStatus,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Extra sections printed by a failed assertion, e.g. the logs of the workers involved.
    pub notes: Vec<(String, String)>,
}

impl Output {
    /// What the process that `command` names did.
    pub fn of(command: String, o: std::process::Output) -> Output {
        Output {
            command,
            status: o.status,
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            notes: Vec::new(),
        }
    }

    /// The exit code must be 0.
    #[track_caller]
    pub fn success(self) -> Output {
        if self.code != Some(0) {
            panic!("{}", self.explain("expected success (exit code 0)"));
        }
        self
    }

    /// The command must have exited with a non-zero code (killed by a signal is not that).
    #[track_caller]
    pub fn failure(self) -> Output {
        if self.code.is_none_or(|c| c == 0) {
            panic!(
                "{}",
                self.explain("expected failure (a non-zero exit code)")
            );
        }
        self
    }

    /// The exit code must be `code`.
    #[track_caller]
    pub fn code_is(self, code: i32) -> Output {
        if self.code != Some(code) {
            panic!("{}", self.explain(&format!("expected exit code {code}")));
        }
        self
    }

    /// Adds a section that a failed assertion prints after stderr.
    pub fn note(mut self, label: &str, text: impl Into<String>) -> Output {
        self.notes.push((label.to_string(), text.into()));
        self
    }

    /// The message of a failed assertion: what was wanted, the command, its status and output.
    pub fn explain(&self, wanted: &str) -> String {
        let mut m = format!(
            "\n==========\n{wanted}, got {}\n\ncommand: {}\n",
            self.status, self.command
        );
        let mut section = |label: &str, text: &str| {
            if text.is_empty() {
                m.push_str(&format!("\n--- {label}: (empty) ---\n"));
            } else {
                m.push_str(&format!("\n--- {label} ---\n{}\n", text.trim_end()));
            }
        };
        section("stdout", &self.stdout);
        section("stderr", &self.stderr);
        for (label, text) in &self.notes {
            section(label, text);
        }
        m.push_str("==========\n");
        m
    }
}

/// `c` as a shell command line, with the working directory and the variables set on it.
pub fn command_line(c: &Command) -> String {
    let mut parts = Vec::new();
    if let Some(dir) = c.get_current_dir() {
        parts.push(format!("cd {} &&", shell_quote(&dir.to_string_lossy())));
    }
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            parts.push(format!(
                "{}={}",
                k.to_string_lossy(),
                shell_quote(&v.to_string_lossy())
            ));
        }
    }
    parts.push(shell_quote(&c.get_program().to_string_lossy()));
    for a in c.get_args() {
        parts.push(shell_quote(&a.to_string_lossy()));
    }
    parts.join(" ")
}

fn shell_quote(s: &str) -> String {
    let plain = |ch: char| ch.is_ascii_alphanumeric() || "-_./:=@%+,".contains(ch);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[track_caller]
pub fn run(mut c: Command) -> Output {
    let command = command_line(&c);
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("could not start {command}: {e}"));
    Output::of(command, o)
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("read_dir") {
        let e = e.expect("entry");
        let to = dst.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).expect("copy");
        }
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of examples/demo as a committed git repository.
pub fn demo_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo_root().join("examples/demo"), dir.path());
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-A"]);
    git_commit(dir.path(), "demo");
    dir
}

/// A committed git repository holding `files` (path, text).
pub fn committed_repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-A"]);
    git_commit(dir.path(), "init");
    dir
}

/// Commits what is staged, with a throwaway identity (CI machines have none configured).
pub fn git_commit(dir: &Path, message: &str) {
    git(
        dir,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            message,
        ],
    );
}

pub fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let e = std::panic::catch_unwind(f).expect_err("the assertion must fail");
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn failed_exit_code_assertions_show_the_command_its_status_and_output() {
    let mut c = Command::new("sh");
    c.args(["-c", "echo out; echo err >&2; exit 3"])
        .env("TARS_X", "a b")
        .current_dir("/");
    let out = run(c);
    assert_eq!(
        out.command,
        "cd / && TARS_X='a b' sh -c 'echo out; echo err >&2; exit 3'"
    );
    out.clone().failure().code_is(3);
    let o = out.clone();
    let msg = panic_message(move || {
        o.success();
    });
    for part in [
        "expected success (exit code 0), got exit status: 3",
        "command: cd / && TARS_X='a b' sh -c 'echo out; echo err >&2; exit 3'",
        "--- stdout ---\nout\n",
        "--- stderr ---\nerr\n",
    ] {
        assert!(msg.contains(part), "{part:?} missing in:\n{msg}");
    }
    let msg = panic_message(move || {
        out.note("worker log", "w").code_is(1);
    });
    for part in [
        "expected exit code 1, got exit status: 3",
        "--- stderr ---\nerr\n",
        "--- worker log ---\nw\n",
    ] {
        assert!(msg.contains(part), "{part:?} missing in:\n{msg}");
    }

    let mut ok = Command::new("true");
    ok.arg("it's");
    let ok = run(ok).success();
    assert_eq!(ok.command, r"true 'it'\''s'");
    let msg = panic_message(move || {
        ok.failure();
    });
    assert!(msg.contains("expected failure"), "{msg}");
    assert!(msg.contains("--- stdout: (empty) ---"), "{msg}");

    // Killed by a signal is no exit code at all: neither success nor failure.
    let mut killed = Command::new("sh");
    killed.args(["-c", "kill -9 $$"]);
    let killed = run(killed);
    let msg = panic_message(move || {
        killed.failure();
    });
    assert!(msg.contains("signal: 9"), "{msg}");
}

/// What a user checks of a run after faults: every one of its `total` tasks ended `done`, the
/// run's `done` counter says so, and the results stream holds exactly one result per task.
/// Returns how many tasks were attempted more than once. Any connection (one server or a
/// cluster): every key is in `{tars}`'s slot.
pub fn check_every_task_done_once(
    c: &mut impl redis::ConnectionLike,
    run: &str,
    total: usize,
) -> usize {
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{{tars}}:run:{run}:tasks"))
        .query(c)
        .expect("the run's tasks");
    assert_eq!(ids.len(), total, "tasks of run {run}");
    let mut redone = 0;
    for id in &ids {
        let t: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("{{tars}}:task:{run}:{id}"))
            .query(c)
            .expect("task");
        assert_eq!(
            t.get("state").map(String::as_str),
            Some("done"),
            "{id}: {t:?}"
        );
        if t.get("attempts")
            .and_then(|a| a.parse::<u32>().ok())
            .unwrap_or(1)
            > 1
        {
            redone += 1;
        }
    }
    let done: Option<String> = redis::cmd("HGET")
        .arg(format!("{{tars}}:run:{run}"))
        .arg("done")
        .query(c)
        .expect("run");
    assert_eq!(done, Some(total.to_string()), "the run's done counter");
    let results: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg("{tars}:stream:results")
        .arg("-")
        .arg("+")
        .query(c)
        .expect("results");
    let mut per_task: std::collections::HashMap<String, usize> = Default::default();
    for (_, f) in results {
        if f.get("run").map(String::as_str) == Some(run) {
            *per_task
                .entry(f.get("task").cloned().unwrap_or_default())
                .or_default() += 1;
        }
    }
    for id in &ids {
        assert_eq!(
            per_task.get(id),
            Some(&1),
            "{id}: {:?} results",
            per_task.get(id)
        );
    }
    redone
}
