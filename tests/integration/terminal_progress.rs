//! `dispatcher run --wait` on a terminal: a tmux pane is the terminal, and what
//! `tmux capture-pane` shows is what a person sees, wrapped lines joined as a terminal that
//! reflows on a resize (or a copy) joins them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::fake_llm::FakeLlm;
use crate::util::{RedisServer, bin, clean_env, demo_repo, spawn_worker, wait_until};

/// A tmux server of its own (its socket in a temporary directory) running one command in a
/// 120x30 pane; killed with the test.
struct Pane {
    dir: tempfile::TempDir,
}

impl Pane {
    /// Runs the shell command `line` in a new pane; the pane stays after it ends.
    fn start(line: &str) -> Pane {
        let dir = tempfile::tempdir().expect("tempdir");
        let pane = Pane { dir };
        let status = pane
            .tmux()
            .args(["new-session", "-d", "-x", "120", "-y", "30", line])
            .status()
            .expect("tmux must be installed: run scripts/setup-test-deps");
        assert!(status.success(), "tmux new-session: {status}");
        pane
    }

    fn tmux(&self) -> Command {
        let mut c = clean_env(Command::new("tmux"));
        c.arg("-S").arg(self.dir.path().join("tmux.sock"));
        c
    }

    /// The pane's text from the top of its history, wrapped lines joined, trailing blanks cut.
    fn text(&self) -> String {
        let o = self
            .tmux()
            .args(["capture-pane", "-p", "-J", "-S", "-"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").status();
    }
}

fn quoted(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

#[test]
fn the_bar_leaves_the_terminal_to_the_lines_printed_while_it_shows_and_to_the_summary() {
    let redis = RedisServer::start();
    let repo = demo_repo();
    let out = tempfile::tempdir().unwrap();
    // `sleep` keeps the pane, and its text, after the dispatcher exits.
    let pane = Pane::start(&format!(
        "env TARS_REDIS__URL={} TARS_LOG=warn {} run --no-verify --wait --timeout 120 --out {} {}; \
         echo EXIT=$?; sleep 600",
        redis.url(),
        quoted(&bin("dispatcher")),
        quoted(out.path()),
        quoted(repo.path()),
    ));
    // No worker yet: the warning is printed while the bar shows.
    wait_until("the bar and the warning", Duration::from_secs(60), || {
        let t = pane.text();
        t.contains("] 0/6 done 0 failed 0 dead 0 running 0")
            && t.contains("warning: no worker is running")
    });
    let fake = FakeLlm::resolving();
    let _worker = spawn_worker(&redis, &fake.url(), &[], std::process::Stdio::null());
    wait_until("the dispatcher's exit", Duration::from_secs(120), || {
        pane.text().contains("EXIT=")
    });
    let text = pane.text();
    let lines: Vec<&str> = text.lines().collect();
    let run = lines[0];
    assert!(lines.len() == 5, "{text}");
    assert_eq!(
        lines[1],
        format!("run {run}: 6 tasks enqueued (6 TODOs found in 5 files)"),
        "{text}"
    );
    // Printed above the bar, whole, on a line of its own.
    assert!(
        lines[2].starts_with("warning: no worker is running: 6 tasks wait for one.")
            && lines[2].ends_with("up -d --scale worker=N`"),
        "{text}"
    );
    // The bar is gone, and the summary starts a line of its own (not after the last frame).
    assert!(
        lines[3].starts_with(&format!("run {run} finished in ")),
        "{text}"
    );
    assert_eq!(lines[4], "EXIT=0", "{text}");
}

#[test]
fn warnings_logged_while_the_bar_shows_are_lines_of_their_own() {
    let mut redis = RedisServer::start();
    let repo = demo_repo();
    let out = tempfile::tempdir().unwrap();
    let pane = Pane::start(&format!(
        "env TARS_REDIS__URL={} TARS_LOG=warn {} run --no-verify --wait --timeout 120 --out {} {}; \
         echo EXIT=$?; sleep 600",
        redis.url(),
        quoted(&bin("dispatcher")),
        quoted(out.path()),
        quoted(repo.path()),
    ));
    wait_until("the bar", Duration::from_secs(60), || {
        pane.text()
            .contains("] 0/6 done 0 failed 0 dead 0 running 0")
    });
    // Redis goes away while the bar shows: the dispatcher logs a warning a second.
    redis.stop();
    wait_until("the warning", Duration::from_secs(60), || {
        pane.text().contains("Redis unavailable while waiting")
    });
    redis.start_again();
    let fake = FakeLlm::resolving();
    let _worker = spawn_worker(&redis, &fake.url(), &[], std::process::Stdio::null());
    wait_until("the dispatcher's exit", Duration::from_secs(120), || {
        pane.text().contains("EXIT=")
    });
    let text = pane.text();
    let logged: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Redis unavailable while waiting"))
        .collect();
    assert!(!logged.is_empty(), "{text}");
    for l in logged {
        // A log line of its own: its timestamp first, no frame of the bar before or after it.
        assert!(
            l.starts_with("20") && l.contains(" WARN ") && !l.contains("] ") && !l.contains("/6"),
            "{l:?} in\n{text}"
        );
    }
    assert!(text.ends_with("EXIT=0"), "{text}");
}
