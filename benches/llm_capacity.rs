//! LLM capacity (issue 14, "keep every LLM slot busy"): how well a fleet of worker processes
//! keeps the slots of an LLM server busy.
//!
//! Each case starts its own `redis-server` (`--save "" --appendonly no`), stand-in LLM servers
//! (below), 3 `worker` processes of `worker.concurrency` 4 and `dispatcher run --wait` on a
//! generated repository of Python TODOs, then prints one table row: wall time against the ideal
//! (tasks x answer time / slots), the slot utilisation the servers measured, and the most
//! requests ever at each server (in slots plus waiting in line).
//!
//! The stand-in server speaks the OpenAI-compatible wire format (`GET /v1/models`,
//! `POST /v1/chat/completions`, non-streamed) over HTTP/1.1 keep-alive. It has P slots and a
//! fixed answer time T: a request takes a free slot, or waits in line (FIFO) for one, as a
//! server started with `OLLAMA_NUM_PARALLEL=P` does; it holds the slot for T, then answers with
//! a patch that passes the gates, so every task ends done. Optionally it serves llama.cpp's
//! `GET /props` (`total_slots`), and it can be killed mid-run (listener closed, connections
//! reset: connection refused afterwards).
//!
//! Cases (`cargo bench --bench llm_capacity -- 1 3` runs a subset; none: all):
//!   1. one endpoint, P=4, T=500 ms, `llm.max_in_flight` 4
//!   2. the same without a cap (reference: busy slots, but 12 requests at the server)
//!   3. one endpoint, P=4, T=2 s, cap 4
//!   4. three endpoints of 2, 4 and 8 slots (`[[llm.endpoints]]` in a `--config` file),
//!      T=500 ms; the 8-slot one is killed once a third of the tasks are answered
//!   5. `llm.max_in_flight = "auto"`, one endpoint, P=4 not told (no `/props`), 400 TODOs
//!   6. the same with P told by `/props`
//!
//! Cases whose configuration the worker refuses at start (exit code 2 or 3: a worker without
//! `llm.endpoints` or `auto`) print a "skipped" line instead of a row.
//!
//! Definitions:
//! - wall: `dispatcher run --wait` started to exited (its wait polls every 500 ms);
//! - ideal: tasks x T / slots (case 4: a third of the tasks at all 14 slots, the rest at the
//!   6 slots left after the kill);
//! - util: busy slot time (the sum over requests of the time each held a slot) / (slots x the
//!   span from the first request's arrival to the last answer); in case 4 every endpoint counts
//!   its slots only while it is live (the killed one until the kill);
//! - max@srv: the most requests at each server at once (in slots + in line);
//! - case 4, "moved": tasks whose request was at the killed endpoint when it died (in a slot
//!   or in line: cut) and that a live endpoint answered afterwards, out of all those cut;
//!   tasks are told apart by their TODO's text in the prompt;
//! - cases 5-6, "limit": what `dispatcher status --json` reports under `endpoints` (the limit
//!   the fleet found and its source; n/a if the status has no such field), "converged": the
//!   time from the first request until the requests at the server stay at P+1 or fewer for
//!   good, and the utilisation over the last 30 s of the span.
//!
//! Run: `scripts/bench-llm [CASES...]` (installs redis-server if missing, builds the release
//! binaries). Without `--bench` (`cargo test --all-targets`), a smoke run of cases 1 and 4 on
//! 8 tasks with T=50 ms checks the harness itself.

use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[path = "../tests/support/llm_wire.rs"]
mod llm_wire;

const WORKERS: usize = 3;
const CONCURRENCY: usize = 4;
/// How long workers may take to start (connect, preflight, first heartbeat).
const READY_LIMIT: Duration = Duration::from_secs(30);
/// The window of the "last 30 s" utilisation of the `auto` cases.
const TAIL: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The stand-in LLM server.

/// What one server saw. Times are offsets from the bench's epoch, shared by all servers.
#[derive(Clone, Default)]
struct Stats {
    /// Chat requests received.
    requests: u64,
    /// Requests at the server right now: in slots plus in line.
    at_server: usize,
    max_at_server: usize,
    /// `at_server` after each change, for the convergence of `auto`.
    events: Vec<(Duration, usize)>,
    /// Each request's time in a slot (cut at the kill for those it interrupted).
    holds: Vec<(Duration, Duration)>,
    /// Answers sent: when, and the task (its TODO text).
    answered: Vec<(Duration, String)>,
    /// Tasks whose request the kill cut (in a slot or in line).
    cut: Vec<String>,
    first_start: Option<Duration>,
    last_end: Option<Duration>,
    killed_at: Option<Duration>,
}

struct State {
    free: usize,
    line: VecDeque<u64>,
    next_ticket: u64,
    stats: Stats,
}

impl State {
    fn at_server_changed(&mut self, now: Duration, up: bool) {
        let s = &mut self.stats;
        if up {
            s.at_server += 1;
        } else {
            s.at_server -= 1;
        }
        s.max_at_server = s.max_at_server.max(s.at_server);
        s.events.push((now, s.at_server));
    }
}

struct ServerShared {
    slots: usize,
    answer: Duration,
    /// Serve llama.cpp's `GET /props` with `total_slots`.
    props: bool,
    epoch: Instant,
    state: Mutex<State>,
    changed: Condvar,
    killed: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

impl ServerShared {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct LlmServer {
    port: u16,
    shared: Arc<ServerShared>,
    accept: Option<JoinHandle<()>>,
}

impl LlmServer {
    fn start(slots: usize, answer: Duration, props: bool, epoch: Instant) -> LlmServer {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the stand-in LLM");
        let port = listener.local_addr().expect("local addr").port();
        let shared = Arc::new(ServerShared {
            slots,
            answer,
            props,
            epoch,
            state: Mutex::new(State {
                free: slots,
                line: VecDeque::new(),
                next_ticket: 0,
                stats: Stats::default(),
            }),
            changed: Condvar::new(),
            killed: AtomicBool::new(false),
            conns: Mutex::default(),
        });
        let sh = shared.clone();
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if sh.killed.load(Ordering::SeqCst) {
                    break; // drops the listener: connection refused from now on
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_nodelay(true);
                if let Ok(c) = stream.try_clone() {
                    sh.conns.lock().unwrap_or_else(|p| p.into_inner()).push(c);
                }
                let sh = sh.clone();
                std::thread::spawn(move || serve(stream, &sh));
            }
        });
        LlmServer {
            port,
            shared,
            accept: Some(accept),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    fn answered(&self) -> usize {
        self.shared.lock().stats.answered.len()
    }

    /// Stops accepting (connection refused afterwards), resets every connection, and cuts
    /// the requests in slots and in line: they get no answer.
    fn kill(&mut self) {
        {
            let mut st = self.shared.lock();
            if st.stats.killed_at.is_some() {
                return;
            }
            st.stats.killed_at = Some(self.shared.now());
        }
        self.shared.changed.notify_all();
        self.shared.killed.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for c in self
            .shared
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for LlmServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One keep-alive connection: requests with a Content-Length body, answers likewise.
fn serve(stream: TcpStream, sh: &ServerShared) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if sh.killed.load(Ordering::SeqCst) {
            return;
        }
        let body = String::from_utf8_lossy(&body);
        let (status, reply) = match (method.as_str(), path.as_str()) {
            ("GET", "/v1/models") => (
                200,
                r#"{"object":"list","data":[{"id":"m","object":"model"}]}"#.to_string(),
            ),
            ("GET", "/props") if sh.props => (
                200,
                serde_json::json!({
                    "total_slots": sh.slots,
                    "default_generation_settings": {"n_ctx": 8192},
                    "model_path": "m"
                })
                .to_string(),
            ),
            ("POST", "/v1/chat/completions") => match chat(sh, &body) {
                Some(answer) => (200, answer),
                None => return, // killed: no answer
            },
            _ => (404, r#"{"error":{"message":"not found"}}"#.to_string()),
        };
        let reason = if status == 200 { "OK" } else { "Not Found" };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            reply.len()
        );
        if out
            .write_all(head.as_bytes())
            .and_then(|_| out.write_all(reply.as_bytes()))
            .and_then(|_| out.flush())
            .is_err()
        {
            return;
        }
    }
}

/// The task a chat request is about: its TODO's text ("handle case 3-7").
fn task_key(body: &str) -> String {
    let Some(at) = body.find("handle case ") else {
        return String::from("?");
    };
    body[at + "handle case ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect()
}

/// Waits in line for a slot, holds it for the answer time, answers; None if killed meanwhile.
fn chat(sh: &ServerShared, body: &str) -> Option<String> {
    let key = task_key(body);
    let mut st = sh.lock();
    let arrived = sh.now();
    let ticket = st.next_ticket;
    st.next_ticket += 1;
    st.stats.requests += 1;
    st.stats.first_start.get_or_insert(arrived);
    st.line.push_back(ticket);
    st.at_server_changed(arrived, true);
    while st.stats.killed_at.is_none() && !(st.free > 0 && st.line.front() == Some(&ticket)) {
        st = sh.changed.wait(st).unwrap_or_else(|p| p.into_inner());
    }
    if st.stats.killed_at.is_some() {
        st.line.retain(|t| *t != ticket);
        st.at_server_changed(sh.now(), false);
        st.stats.cut.push(key);
        return None;
    }
    st.line.pop_front();
    st.free -= 1;
    let start = sh.now();
    // The next in line may take another free slot.
    sh.changed.notify_all();
    let deadline = start + sh.answer;
    while st.stats.killed_at.is_none() {
        let now = sh.now();
        if now >= deadline {
            break;
        }
        st = sh
            .changed
            .wait_timeout(st, deadline - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    let end = match st.stats.killed_at {
        Some(k) => k.min(sh.now()),
        None => sh.now(),
    };
    st.stats.holds.push((start, end));
    st.free += 1;
    st.at_server_changed(end, false);
    sh.changed.notify_all();
    if st.stats.killed_at.is_some() {
        st.stats.cut.push(key);
        return None;
    }
    st.stats.answered.push((end, key));
    st.stats.last_end = Some(st.stats.last_end.map_or(end, |l| l.max(end)));
    drop(st);
    Some(llm_wire::openai_completion(&llm_wire::resolving_answer(
        body,
    )))
}

/// Slot time held inside `[from, to]`.
fn busy_within(holds: &[(Duration, Duration)], from: Duration, to: Duration) -> f64 {
    holds
        .iter()
        .map(|&(s, e)| {
            let (s, e) = (s.max(from), e.min(to));
            if e > s { (e - s).as_secs_f64() } else { 0.0 }
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// A child process killed (SIGKILL) and reaped on drop, also when the bench panics.
struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private redis-server on a free port.
struct Redis {
    _proc: Proc,
    url: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_redis() -> Result<Redis, String> {
    let port = free_port();
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start redis-server ({e}): scripts/bench-llm installs it"))?;
    let redis = Redis {
        _proc: Proc { child },
        url: format!("redis://127.0.0.1:{port}"),
        _dir: dir,
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if redis_conn(&redis.url)
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
        {
            return Ok(redis);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(format!(
        "redis-server did not answer on {} in 20 s",
        redis.url
    ))
}

fn redis_conn(url: &str) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(url).and_then(|c| c.get_connection())
}

/// A binary of this package: Cargo's path for it, else next to the bench's own profile
/// directory, else target/release then target/debug.
fn binary(name: &str) -> Result<PathBuf, String> {
    let from_cargo = match name {
        "worker" => option_env!("CARGO_BIN_EXE_worker"),
        "dispatcher" => option_env!("CARGO_BIN_EXE_dispatcher"),
        _ => None,
    };
    let mut candidates: Vec<PathBuf> = from_cargo.map(PathBuf::from).into_iter().collect();
    if let Some(profile_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(Path::to_path_buf))
    {
        candidates.push(profile_dir.join(name));
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    candidates.push(target.join("release").join(name));
    candidates.push(target.join("debug").join(name));
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        format!("no `{name}` binary: run `cargo build --release --bins` (scripts/bench-llm does)")
    })
}

/// A command with the inherited configuration (`TARS_*`) removed, run in `cwd` (so that no
/// `tars.toml` of the current directory is read).
fn clean_command(program: &Path, cwd: &Path) -> Command {
    let mut c = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TARS_") {
            c.env_remove(&k);
        }
    }
    c.current_dir(cwd);
    c
}

/// The command line as one would type it: the variables set, the program, the arguments.
fn shown(c: &Command) -> String {
    fn quote(s: &str) -> String {
        let plain = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./:=@,+-".contains(c));
        if plain {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    }
    let mut out = String::new();
    let mut envs: Vec<_> = c.get_envs().filter_map(|(k, v)| Some((k, v?))).collect();
    envs.sort();
    for (k, v) in envs {
        let _ = write!(
            out,
            "{}={} ",
            k.to_string_lossy(),
            quote(&v.to_string_lossy())
        );
    }
    out.push_str(&quote(&c.get_program().to_string_lossy()));
    for a in c.get_args() {
        out.push(' ');
        out.push_str(&quote(&a.to_string_lossy()));
    }
    out
}

/// The last lines of a log file, for an error message, at most 240 characters.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let joined = all[all.len().saturating_sub(lines)..].join(" | ");
    match joined.char_indices().nth(240) {
        Some((at, _)) => format!("{}...", &joined[..at]),
        None => joined,
    }
}

// ---------------------------------------------------------------------------------------------
// Cases.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cap {
    None,
    Fixed(u32),
    Auto,
}

struct Case {
    id: &'static str,
    /// Slots of each endpoint.
    slots: Vec<usize>,
    answer: Duration,
    cap: Cap,
    /// Endpoints in a `--config` file (`[[llm.endpoints]]`, each `max_in_flight` = its slots)
    /// instead of `TARS_LLM__URL`.
    multi: bool,
    /// The endpoint killed once a third of the tasks are answered.
    kill: Option<usize>,
    files: usize,
    per_file: usize,
    /// Endpoints serve `/props` with their `total_slots`.
    props: bool,
}

impl Case {
    fn tasks(&self) -> usize {
        self.files * self.per_file
    }
    fn total_slots(&self) -> usize {
        self.slots.iter().sum()
    }
    /// The wall time if every slot were always busy.
    fn ideal(&self) -> f64 {
        let t = self.answer.as_secs_f64();
        let n = self.tasks() as f64;
        match self.kill {
            Some(k) => {
                let before = self.total_slots() as f64;
                let after = (self.total_slots() - self.slots[k]) as f64;
                n / 3.0 * t / before + (n - n / 3.0) * t / after
            }
            None => n * t / self.total_slots() as f64,
        }
    }
}

fn cases(smoke: bool) -> Vec<Case> {
    let ms = Duration::from_millis;
    let one = |id, answer, cap, files, per_file, props| Case {
        id,
        slots: vec![4],
        answer,
        cap,
        multi: false,
        kill: None,
        files,
        per_file,
        props,
    };
    if smoke {
        return vec![
            one("1", ms(50), Cap::Fixed(4), 2, 4, false),
            Case {
                id: "4",
                slots: vec![2, 4, 8],
                answer: ms(50),
                cap: Cap::None,
                multi: true,
                kill: Some(2),
                files: 2,
                per_file: 4,
                props: false,
            },
        ];
    }
    vec![
        one("1", ms(500), Cap::Fixed(4), 16, 10, false),
        one("2", ms(500), Cap::None, 16, 10, false),
        one("3", ms(2000), Cap::Fixed(4), 16, 10, false),
        Case {
            id: "4",
            slots: vec![2, 4, 8],
            answer: ms(500),
            cap: Cap::None,
            multi: true,
            kill: Some(2),
            files: 16,
            per_file: 10,
            props: false,
        },
        one("5", ms(500), Cap::Auto, 40, 10, false),
        one("6", ms(500), Cap::Auto, 40, 10, true),
    ]
}

/// `files` Python files of `per_file` small functions, each with one TODO.
fn write_repo(dir: &Path, files: usize, per_file: usize) -> std::io::Result<()> {
    for f in 0..files {
        let mut s = String::from("\"\"\"Generated fixture.\"\"\"\n\n");
        for j in 0..per_file {
            let _ = write!(
                s,
                "\ndef f_{f}_{j}(x):\n    # TODO: handle case {f}-{j}\n    return x + {j}\n\n"
            );
        }
        std::fs::write(dir.join(format!("m{f}.py")), s)?;
    }
    Ok(())
}

struct Row {
    case: String,
    slots: String,
    answer: String,
    tasks: String,
    wall: f64,
    ideal: f64,
    util: f64,
    max_at: String,
    requests: String,
    extra: String,
}

enum Outcome {
    Row(Row),
    Skipped(String),
    Failed(String),
}

fn run_case(case: &Case, epoch: Instant) -> Outcome {
    match try_case(case, epoch) {
        Ok(o) => o,
        Err(e) => Outcome::Failed(e),
    }
}

fn try_case(case: &Case, epoch: Instant) -> Result<Outcome, String> {
    let worker_bin = binary("worker")?;
    let dispatcher_bin = binary("dispatcher")?;
    let tmp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let repo = tmp.path().join("repo");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&repo).map_err(|e| format!("mkdir: {e}"))?;
    write_repo(&repo, case.files, case.per_file).map_err(|e| format!("write repo: {e}"))?;
    let redis = start_redis()?;
    let mut servers: Vec<LlmServer> = case
        .slots
        .iter()
        .map(|&p| LlmServer::start(p, case.answer, case.props, epoch))
        .collect();

    // The workers.
    let config_file = tmp.path().join("llm.toml");
    if case.multi {
        let mut toml = String::from("[llm]\napi = \"openai\"\nmodel = \"m\"\n");
        for (s, &p) in servers.iter().zip(&case.slots) {
            let _ = write!(
                toml,
                "\n[[llm.endpoints]]\nurl = \"{}\"\nmax_in_flight = {p}\n",
                s.url()
            );
        }
        std::fs::write(&config_file, &toml).map_err(|e| format!("write config: {e}"))?;
        println!("  {} :", config_file.display());
        for l in toml.lines() {
            println!("    {l}");
        }
    }
    let mut workers = Vec::new();
    let mut logs = Vec::new();
    for i in 0..WORKERS {
        let mut c = clean_command(&worker_bin, tmp.path());
        c.env("TARS_REDIS__URL", &redis.url)
            .env("TARS_WORKER__CONCURRENCY", CONCURRENCY.to_string())
            .env("TARS_LLM__ANSWER_ATTEMPTS", "1")
            .env("TARS_LOG", "warn");
        if case.multi {
            c.arg("--config").arg(&config_file);
        } else {
            c.env("TARS_LLM__API", "openai")
                .env("TARS_LLM__MODEL", "m")
                .env("TARS_LLM__URL", servers[0].url());
            match case.cap {
                Cap::None => {}
                Cap::Fixed(n) => {
                    c.env("TARS_LLM__MAX_IN_FLIGHT", n.to_string());
                }
                Cap::Auto => {
                    c.env("TARS_LLM__MAX_IN_FLIGHT", "auto");
                }
            }
        }
        if i == 0 {
            println!("  {WORKERS} x: {}", shown(&c));
        }
        let log = tmp.path().join(format!("worker{i}.log"));
        let err = std::fs::File::create(&log).map_err(|e| format!("worker log: {e}"))?;
        c.stdout(Stdio::null()).stderr(err);
        let child = c
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", worker_bin.display()))?;
        workers.push(Proc { child });
        logs.push(log);
    }

    // Ready: every worker's heartbeat is in Redis; a worker that exits first refused to start.
    let started = Instant::now();
    loop {
        for (w, log) in workers.iter_mut().zip(&logs) {
            if let Ok(Some(st)) = w.child.try_wait() {
                let why = tail(log, 3);
                return Ok(match st.code() {
                    Some(2 | 3) => Outcome::Skipped(format!(
                        "the worker refused the configuration (exit {}; not implemented yet?): {why}",
                        st.code().unwrap_or(-1)
                    )),
                    _ => Outcome::Failed(format!("a worker exited at start ({st}): {why}")),
                });
            }
        }
        let alive: usize = redis_conn(&redis.url)
            .and_then(|mut c| {
                redis::cmd("KEYS")
                    .arg(tars_fleet::queue::keys::worker("*"))
                    .query::<Vec<String>>(&mut c)
            })
            .map(|k| k.len())
            .unwrap_or(0);
        if alive >= WORKERS {
            break;
        }
        if started.elapsed() > READY_LIMIT {
            return Ok(Outcome::Failed(format!(
                "timeout: {alive} of {WORKERS} workers ready after {READY_LIMIT:?}: {}",
                tail(&logs[0], 3)
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // The run.
    let timeout = 60 + (case.ideal() * 5.0) as u64;
    let mut d = clean_command(&dispatcher_bin, tmp.path());
    d.env("TARS_REDIS__URL", &redis.url)
        .args(["run", "--wait", "--timeout", &timeout.to_string(), "--out"])
        .arg(&out)
        .arg(&repo);
    println!("  {}", shown(&d));
    let run_out = tmp.path().join("run.out");
    let run_err = tmp.path().join("run.err");
    d.stdout(std::fs::File::create(&run_out).map_err(|e| e.to_string())?)
        .stderr(std::fs::File::create(&run_err).map_err(|e| e.to_string())?);
    let t0 = Instant::now();
    let mut dispatcher = Proc {
        child: d
            .spawn()
            .map_err(|e| format!("cannot start dispatcher: {e}"))?,
    };
    let kill_after = case.tasks().div_ceil(3);
    let watchdog = Duration::from_secs(timeout + 30);
    let status = loop {
        if let Ok(Some(st)) = dispatcher.child.try_wait() {
            break st;
        }
        if let Some(k) = case.kill
            && servers[k].stats().killed_at.is_none()
            && servers.iter().map(LlmServer::answered).sum::<usize>() >= kill_after
        {
            servers[k].kill();
        }
        if t0.elapsed() > watchdog {
            return Ok(Outcome::Failed(format!(
                "timeout: `dispatcher run --wait` still running after {watchdog:?}: {}",
                tail(&run_err, 2)
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = t0.elapsed().as_secs_f64();
    let run_id = std::fs::read_to_string(&run_out)
        .unwrap_or_default()
        .trim()
        .to_string();
    match status.code() {
        Some(0 | 5) => {}
        Some(6) => {
            return Ok(Outcome::Failed(format!(
                "timeout: the run did not finish in {timeout} s: {}",
                tail(&run_err, 2)
            )));
        }
        _ => {
            return Ok(Outcome::Failed(format!(
                "dispatcher run exited {status}: {}",
                tail(&run_err, 3)
            )));
        }
    }
    let mut s = clean_command(&dispatcher_bin, tmp.path());
    s.env("TARS_REDIS__URL", &redis.url)
        .args(["status", "--json", &run_id]);
    println!("  {}", shown(&s));
    let status_json: serde_json::Value = s
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or_default();
    drop(workers);
    let stats: Vec<Stats> = servers.iter().map(LlmServer::stats).collect();
    drop(servers);
    Ok(Outcome::Row(row(case, wall, &status_json, &stats)))
}

fn row(case: &Case, wall: f64, status: &serde_json::Value, stats: &[Stats]) -> Row {
    let n = |k: &str| status[k].as_u64().unwrap_or(0);
    let total = status["total"].as_u64().unwrap_or(case.tasks() as u64);
    let done = n("done");
    let mut tasks = format!("{done}/{total}");
    let not_done = total - done.min(total);
    if not_done > 0 {
        let _ = write!(tasks, " ({} failed, {} dead)", n("failed"), n("dead"));
    }
    let first = stats.iter().filter_map(|s| s.first_start).min();
    let last = stats.iter().filter_map(|s| s.last_end).max();
    let (util, span) = match (first, last) {
        (Some(f), Some(l)) if l > f => {
            let busy: f64 = stats.iter().map(|s| busy_within(&s.holds, f, l)).sum();
            let capacity: f64 = stats
                .iter()
                .zip(&case.slots)
                .map(|(s, &p)| {
                    let live_end = s.killed_at.map_or(l, |k| k.clamp(f, l));
                    p as f64 * (live_end - f).as_secs_f64()
                })
                .sum();
            (busy / capacity, Some((f, l)))
        }
        _ => (0.0, None),
    };
    let join = |f: &dyn Fn(&Stats) -> String| stats.iter().map(f).collect::<Vec<_>>().join("/");
    let mut extra = String::new();
    if let Some(k) = case.kill {
        let killed = &stats[k];
        let cut: HashSet<&str> = killed.cut.iter().map(String::as_str).collect();
        let after = killed.killed_at.unwrap_or_default();
        let elsewhere: HashSet<&str> = stats
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != k)
            .flat_map(|(_, s)| s.answered.iter())
            .filter(|(t, _)| *t >= after)
            .map(|(_, key)| key.as_str())
            .collect();
        let moved = cut.iter().filter(|c| elsewhere.contains(*c)).count();
        let _ = write!(
            extra,
            "killed {}-slot at {:.1} s ({} answered): moved {moved} of {} cut; done - answered by killed = {}",
            case.slots[k],
            killed
                .killed_at
                .map_or(0.0, |t| (t - first.unwrap_or_default()).as_secs_f64()),
            killed.answered.len(),
            cut.len(),
            done.saturating_sub(killed.answered.len() as u64),
        );
    }
    if case.cap == Cap::Auto {
        let limit = match status["endpoints"].as_array() {
            Some(eps) if !eps.is_empty() => eps
                .iter()
                .map(|e| {
                    format!(
                        "{} ({})",
                        e["limit"],
                        e["limit_source"].as_str().unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            _ => "n/a".into(),
        };
        let p = case.slots[0];
        let s = &stats[0];
        let (converged, tail_util) = match span {
            Some((f, l)) => {
                // When the requests at the server last came back to P+1 or fewer.
                let mut since = f;
                let mut above = false;
                for &(t, n) in &s.events {
                    if n > p + 1 {
                        above = true;
                    } else if above {
                        above = false;
                        since = t;
                    }
                }
                let conv = if above {
                    "never".to_string()
                } else {
                    format!("{:.1} s", (since - f).as_secs_f64())
                };
                let from = l.saturating_sub(TAIL).max(f);
                let u = busy_within(&s.holds, from, l) / (p as f64 * (l - from).as_secs_f64());
                (conv, format!("{:.0}%", u * 100.0))
            }
            None => ("n/a".into(), "n/a".into()),
        };
        let _ = write!(
            extra,
            "limit {limit}; at srv <= P+1 for good after {converged}; util last 30 s {tail_util}"
        );
    }
    Row {
        case: case.id.to_string(),
        slots: case
            .slots
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("+"),
        answer: format!("{} ms", case.answer.as_millis()),
        tasks,
        wall,
        ideal: case.ideal(),
        util,
        max_at: join(&|s| s.max_at_server.to_string()),
        requests: join(&|s| s.requests.to_string()),
        extra,
    }
}

fn describe(case: &Case) -> String {
    let cap = match case.cap {
        Cap::None if case.multi => "max_in_flight = slots per endpoint".to_string(),
        Cap::None => "no cap".to_string(),
        Cap::Fixed(n) => format!("TARS_LLM__MAX_IN_FLIGHT={n}"),
        Cap::Auto => "TARS_LLM__MAX_IN_FLIGHT=auto".to_string(),
    };
    let mut s = format!(
        "case {}: {} endpoint(s) of {} slots, T={} ms, {} TODOs, {cap}",
        case.id,
        case.slots.len(),
        case.slots
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("+"),
        case.answer.as_millis(),
        case.tasks()
    );
    if let Some(k) = case.kill {
        let _ = write!(
            s,
            ", the {}-slot endpoint killed after {} answers",
            case.slots[k],
            case.tasks().div_ceil(3)
        );
    }
    if case.cap == Cap::Auto {
        s.push_str(if case.props {
            ", slots told by /props"
        } else {
            ", slots not told (no /props)"
        });
    }
    s
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<4} {:<7} {:>7} {:>8} {:>7} {:>7} {:>10} {:>5} {:>9} {:>10}  extra",
        "case",
        "slots",
        "T",
        "done",
        "wall s",
        "ideal s",
        "wall/ideal",
        "util",
        "max@srv",
        "requests"
    );
    for r in rows {
        println!(
            "{:<4} {:<7} {:>7} {:>8} {:>7.1} {:>7.1} {:>10.2} {:>4.0}% {:>9} {:>10}  {}",
            r.case,
            r.slots,
            r.answer,
            r.tasks,
            r.wall,
            r.ideal,
            r.wall / r.ideal,
            r.util * 100.0,
            r.max_at,
            r.requests,
            r.extra
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it (and with
    // its test-name filter, if any), as a smoke test of the harness on a few tasks.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let positional: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    if !bench && positional.iter().any(|f| !"llm_capacity".contains(f)) {
        return; // a `cargo test` filter that names other tests
    }
    let all = cases(!bench);
    let chosen: Vec<&Case> = if bench && !positional.is_empty() {
        let unknown: Vec<&&str> = positional
            .iter()
            .filter(|p| !all.iter().any(|c| c.id == **p))
            .collect();
        if !unknown.is_empty() {
            eprintln!(
                "unknown case(s) {unknown:?}: the cases are {}",
                all.iter().map(|c| c.id).collect::<Vec<_>>().join(" ")
            );
            std::process::exit(2);
        }
        all.iter().filter(|c| positional.contains(&c.id)).collect()
    } else {
        all.iter().collect()
    };
    if !bench {
        eprintln!(
            "smoke run (8 tasks, T=50 ms): `cargo bench --bench llm_capacity` for the real figures"
        );
    }
    println!(
        "LLM capacity: {WORKERS} workers x worker.concurrency {CONCURRENCY}, TARS_LLM__ANSWER_ATTEMPTS=1, stand-in OpenAI-compatible servers"
    );
    let epoch = Instant::now();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for case in chosen {
        println!("{}", describe(case));
        match run_case(case, epoch) {
            Outcome::Row(r) => {
                print_table(std::slice::from_ref(&r));
                rows.push(r);
            }
            Outcome::Skipped(why) => {
                let line = format!("case {}: skipped: {why}", case.id);
                println!("{line}");
                notes.push(line);
            }
            Outcome::Failed(why) => {
                let line = format!("case {}: FAILED: {why}", case.id);
                println!("{line}");
                notes.push(line);
            }
        }
        println!();
    }
    println!("summary (util = busy slot time / (slots x first request to last answer)):");
    print_table(&rows);
    for n in &notes {
        println!("{n}");
    }
    if !bench && notes.iter().any(|n| n.contains("FAILED")) {
        std::process::exit(1);
    }
}
