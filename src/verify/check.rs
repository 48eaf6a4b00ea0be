//! Running a repository's check: `sh -c COMMAND` at the scratch tree's root, in a process
//! group of its own (so a timeout kills everything it started), with resource limits, a
//! scrubbed environment (no TARS secrets, no tokens of the user's shell) and, where the
//! platform allows, no network. The output (stdout and stderr interleaved, as a person would
//! see them) is kept within a bound: its head and its tail.

use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Bytes of output kept from the start and from the end of a check's output.
const KEEP_HEAD: usize = 64 * 1024;
const KEEP_TAIL: usize = 64 * 1024;

/// Environment variables a check inherits: what toolchains need to find themselves and the
/// user's caches. Everything else (TARS_*, tokens, SSH agents, cloud credentials) is dropped.
const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "GOPATH",
    "GOCACHE",
    "GOMODCACHE",
    "JAVA_HOME",
    "VIRTUAL_ENV",
];

/// Set for every check: no colours, no interactive prompts, and the package managers told to
/// stay offline (a check must not download what the build needs; the network is cut anyway
/// where possible).
const SET_ENV: &[(&str, &str)] = &[
    ("CI", "true"),
    ("TERM", "dumb"),
    ("NO_COLOR", "1"),
    ("CARGO_TERM_COLOR", "never"),
    ("CARGO_NET_OFFLINE", "true"),
    ("PIP_NO_INDEX", "1"),
    ("npm_config_offline", "true"),
    ("GOFLAGS", "-mod=mod"),
    ("GOPROXY", "off"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
];

/// How a check may run.
#[derive(Debug, Clone)]
pub struct CheckLimits {
    pub timeout: Duration,
    /// `RLIMIT_AS` in MiB; 0: none.
    pub memory_mb: u64,
    /// `RLIMIT_NPROC`; 0: none.
    pub max_processes: u64,
    /// Let the check reach the network.
    pub network: bool,
}

/// What a check did.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub passed: bool,
    /// The exit code; None when a signal ended it or it timed out.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Its output (head and tail when it was longer than the bound).
    pub output: String,
    pub elapsed: Duration,
}

impl CheckOutcome {
    /// One line for logs and reasons: `exit status 1`, `timed out after 600 s`.
    pub fn summary(&self) -> String {
        if self.timed_out {
            format!("timed out after {} s", self.elapsed.as_secs())
        } else {
            match self.exit_code {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".to_string(),
            }
        }
    }
}

/// The command prefix that gives a check a network namespace of its own, found once: plain
/// `unshare --net` where we may (root, or CAP_SYS_ADMIN), an unprivileged user namespace
/// otherwise, or nothing (said once in the log) where neither works, as in most containers,
/// whose network the deployment cuts instead.
fn isolation() -> Option<&'static [&'static str]> {
    static FOUND: OnceLock<Option<&'static [&'static str]>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        const PLAIN: &[&str] = &["unshare", "--net", "--"];
        const USERNS: &[&str] = &["unshare", "--user", "--map-current-user", "--net", "--"];
        for prefix in [PLAIN, USERNS] {
            let ok = std::process::Command::new(prefix[0])
                .args(&prefix[1..])
                .arg("true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Some(prefix);
            }
        }
        tracing::warn!(
            "cannot give checks a network namespace of their own (unshare is missing or not \
             permitted here): checks run with this host's network; cut it in the deployment"
        );
        None
    })
}

/// Output read so far: the first bytes, the last bytes, and how many fell between.
#[derive(Default)]
struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    dropped: u64,
}

impl Capture {
    fn push(&mut self, mut data: &[u8]) {
        if self.head.len() < KEEP_HEAD {
            let n = (KEEP_HEAD - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        self.tail.extend(data);
        if self.tail.len() > KEEP_TAIL {
            let extra = self.tail.len() - KEEP_TAIL;
            self.tail.drain(..extra);
            self.dropped += extra as u64;
        }
    }
    fn text(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        if self.dropped > 0 {
            out.push_str(&format!(
                "\n[... {} bytes of output left out ...]\n",
                self.dropped
            ));
        }
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        out.push_str(&String::from_utf8_lossy(&tail));
        out
    }
}

/// Runs `command` with `sh -c` in `dir` under `limits` and reports how it went. An error is
/// about starting it (no `sh`, no such directory), never about the check's own result.
pub async fn run_check(
    dir: &Path,
    command: &str,
    limits: &CheckLimits,
) -> std::io::Result<CheckOutcome> {
    let mut argv: Vec<String> = Vec::new();
    let isolated = !limits.network && isolation().is_some();
    if isolated && let Some(prefix) = isolation() {
        argv.extend(prefix.iter().map(|s| s.to_string()));
    }
    if limits.memory_mb > 0 || limits.max_processes > 0 {
        argv.push("prlimit".into());
        if limits.memory_mb > 0 {
            argv.push(format!("--as={}", limits.memory_mb.saturating_mul(1 << 20)));
        }
        if limits.max_processes > 0 {
            argv.push(format!("--nproc={}", limits.max_processes));
        }
        argv.push("--".into());
    }
    argv.push("sh".into());
    argv.push("-c".into());
    if isolated {
        // A new network namespace has its loopback down: bring it up, so tests that serve on
        // 127.0.0.1 still work (best effort: `ip` may be missing).
        argv.push("ip link set lo up >/dev/null 2>&1; exec sh -c \"$1\"".into());
        argv.push("sh".into());
    }
    argv.push(command.to_string());

    let (reader, writer) = std::io::pipe()?;
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .process_group(0)
        .kill_on_drop(true);
    for key in PASSED_ENV {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    for (k, v) in SET_ENV {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    // Our copies of the pipe's write end go with `cmd`, so the read ends when the check's
    // processes are gone.
    drop(cmd);
    let pgid = child.id();
    let capture = Arc::new(Mutex::new(Capture::default()));
    let reading = {
        let capture = capture.clone();
        tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut c) = capture.lock() {
                    c.push(&buf[..n]);
                }
            }
        })
    };
    let (status, timed_out) = match tokio::time::timeout(limits.timeout, child.wait()).await {
        Ok(status) => (status.ok(), false),
        Err(_) => {
            kill_group(pgid);
            (child.wait().await.ok(), true)
        }
    };
    // Whatever the check left running in its group (a server a test forgot) goes too.
    kill_group(pgid);
    // A process that left the group may hold the pipe open: read what came, do not wait on it.
    let _ = tokio::time::timeout(Duration::from_secs(2), reading).await;
    let output = capture.lock().map(|c| c.text()).unwrap_or_default();
    let exit_code = if timed_out {
        None
    } else {
        status.and_then(|s| s.code())
    };
    Ok(CheckOutcome {
        passed: !timed_out && exit_code == Some(0),
        exit_code,
        timed_out,
        output,
        elapsed: started.elapsed(),
    })
}

/// What a task keeps of a check: its one-line summary and the tail of its output, within
/// `budget` bytes.
pub fn summary_tail(outcome: &CheckOutcome, budget: usize) -> String {
    let head = format!("{}\n", outcome.summary());
    let rest = budget.saturating_sub(head.len());
    format!("{head}{}", super::tail(&outcome.output, rest))
}

fn kill_group(pgid: Option<u32>) {
    if let Some(pid) = pgid.and_then(|p| i32::try_from(p).ok())
        && let Some(pid) = rustix::process::Pid::from_raw(pid)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(secs: u64) -> CheckLimits {
        CheckLimits {
            timeout: Duration::from_secs(secs),
            memory_mb: 0,
            max_processes: 0,
            network: false,
        }
    }

    #[tokio::test]
    async fn a_check_passes_or_fails_by_its_exit_status_with_its_output() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("marker"), "here").unwrap();
        let ok = run_check(d.path(), "cat marker; echo err >&2", &limits(30))
            .await
            .unwrap();
        assert!(ok.passed, "{ok:?}");
        assert!(
            ok.output.contains("here") && ok.output.contains("err"),
            "{ok:?}"
        );
        let bad = run_check(d.path(), "echo boom; exit 3", &limits(30))
            .await
            .unwrap();
        assert!(!bad.passed);
        assert_eq!(bad.exit_code, Some(3));
        assert_eq!(bad.summary(), "exit status 3");
    }

    #[tokio::test]
    async fn the_check_sees_only_the_variables_it_is_given() {
        // `cargo test` runs us with CARGO_*, RUST_* and whatever the shell had (tokens,
        // TARS_* settings): none of it may reach the repository's code.
        let d = tempfile::tempdir().unwrap();
        let out = run_check(d.path(), "env | cut -d= -f1", &limits(30))
            .await
            .unwrap();
        let shell_own = ["PWD", "SHLVL", "_", "OLDPWD"];
        for name in out.output.lines() {
            assert!(
                PASSED_ENV.contains(&name)
                    || SET_ENV.iter().any(|(k, _)| *k == name)
                    || shell_own.contains(&name),
                "{name} reached the check"
            );
        }
        assert!(out.output.lines().any(|l| l == "CI"), "{}", out.output);
    }

    #[tokio::test]
    async fn a_check_that_runs_too_long_is_killed_with_everything_it_started() {
        let d = tempfile::tempdir().unwrap();
        // A background child that would outlive its shell.
        let out = run_check(d.path(), "(sleep 300 &) ; sleep 300", &limits(1))
            .await
            .unwrap();
        assert!(out.timed_out && !out.passed, "{out:?}");
        assert!(
            out.summary().starts_with("timed out after"),
            "{}",
            out.summary()
        );
    }

    #[tokio::test]
    async fn a_huge_output_keeps_its_head_and_its_tail() {
        let d = tempfile::tempdir().unwrap();
        let out = run_check(
            d.path(),
            "echo FIRST; head -c 1000000 /dev/zero | tr '\\0' x; echo; echo LAST",
            &limits(30),
        )
        .await
        .unwrap();
        assert!(out.output.starts_with("FIRST"), "head kept");
        assert!(out.output.trim_end().ends_with("LAST"), "tail kept");
        assert!(out.output.len() < 200_000, "{}", out.output.len());
        assert!(out.output.contains("bytes of output left out"));
    }
}
