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
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = RedisServer {
            port: free_port(),
            dir,
            proc: None,
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
        if let Some(mut p) = self.proc.take() {
            p.signal("TERM");
            p.wait_timeout(Duration::from_secs(20))
                .expect("redis-server stops on SIGTERM");
        }
        self.spawn();
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url().as_str())
            .and_then(|c| c.get_connection())
            .expect("connect to test redis")
    }
}

/// llama-cpp-python's OpenAI-compatible server with SmolLM2-135M (scripts/setup-test-deps).
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
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(&python)
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(&model)
            .args([
                "--host",
                host,
                "--port",
                &port.to_string(),
                "--n_ctx",
                "2048",
                "--verbose",
                "false",
            ])
            .stdout(Stdio::null())
            .stderr(
                log.reopen()
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("start llama_cpp.server");
        let mut proc = Proc {
            child,
            name: "llama_cpp.server".into(),
        };
        wait_until("llama_cpp.server", Duration::from_secs(120), || {
            if let Ok(Some(st)) = proc.child.try_wait() {
                let mut s = String::new();
                let _ = std::fs::File::open(log.path()).and_then(|mut f| f.read_to_string(&mut s));
                panic!("llama_cpp.server exited with {st}: {s}");
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
    let mut c = Command::new(bin(name));
    for (k, _) in std::env::vars() {
        if k.starts_with("TARS_") {
            c.env_remove(k);
        }
    }
    c.env("TARS_LOG", "info");
    c
}

/// A worker process on `redis` using the OpenAI-compatible LLM at `llm`, with extra
/// `TARS_*` settings; its log goes to `stderr`.
pub fn spawn_worker(redis: &RedisServer, llm: &str, extra: &[(&str, &str)], stderr: Stdio) -> Proc {
    let mut w = cmd("worker");
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

pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(mut c: Command) -> Output {
    let o = c.output().expect("run binary");
    Output {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
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
