//! The verify stage's library: which command checks a repository ([`detect`]), a scratch tree
//! at the scanned state where patches are tried ([`scratch`]), running the check in its own
//! process group with limits ([`check`]), and the part of a failure worth showing the model
//! ([`first_error`]). The stage itself (leases, Redis transitions) is `worker::verify`.
//!
//! Why a stage of its own: LLM calls need a GPU and nothing else, checks need the project's
//! toolchain and CPU. Separate consumer groups let each scale to what it needs (one check at
//! a time per verifier process: a build already uses every core).

pub mod check;
pub mod detect;
pub mod scratch;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use check::{CheckLimits, CheckOutcome, run_check};
pub use detect::{AUTO_COMMANDS, Detected, detect};
pub use scratch::{Scratch, ScratchError};

/// How a done task's patch was verified; stored as the task's `verified` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The repository's check passed with the patch applied.
    Passed,
    /// Every candidate failed the check (the task ends `failed`, reason `verify_failed`).
    Failed,
    /// The run does not verify.
    Skipped,
    /// The unpatched tree already fails its check, so the patch could not be verified.
    BaselineFailed,
}

impl Verified {
    pub fn as_str(self) -> &'static str {
        match self {
            Verified::Passed => "passed",
            Verified::Failed => "failed",
            Verified::Skipped => "skipped",
            Verified::BaselineFailed => "baseline_failed",
        }
    }
}

/// One gated answer waiting for the verify stage: stored (as a JSON list) on the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub diff: String,
    pub answer: String,
    pub lines_added: usize,
    pub lines_removed: usize,
}

/// A failed check a repair round gives back to the model: stored (as JSON) on the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repair {
    /// The command that failed.
    pub command: String,
    /// The model's answer whose patch failed.
    pub answer: String,
    /// The most relevant part of the output ([`first_error`]).
    pub error: String,
}

/// What `dispatcher run` asks the verify stage to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub command: String,
    /// Why `"auto"` chose it (`Cargo.toml`); None for a command given as is.
    pub because: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "verify = \"auto\" found no test command in {repo}: none of a Makefile `test` target, \
         Cargo.toml, pyproject.toml/pytest.ini/setup.cfg/tests/, a package.json `test` script or \
         go.mod is there. Name the check with --verify 'COMMAND' (verify.command), or run \
         without verification (--no-verify)"
    )]
    NothingFound { repo: String },
}

/// The check a run of `repo` uses: `command` as given, or for `"auto"` the one [`detect`]
/// finds; None when the run does not verify.
pub fn resolve(command: Option<&str>, repo: &Path) -> Result<Option<Resolved>, VerifyError> {
    match command.map(str::trim) {
        None | Some("") => Ok(None),
        Some("auto") => match detect(repo) {
            Some(d) => Ok(Some(Resolved {
                command: d.command.to_string(),
                because: Some(d.because),
            })),
            None => Err(VerifyError::NothingFound {
                repo: repo.display().to_string(),
            }),
        },
        Some(c) => Ok(Some(Resolved {
            command: c.to_string(),
            because: None,
        })),
    }
}

/// Words that start the first error in the output of the usual test runners and compilers.
const ERROR_MARKERS: &[&str] = &[
    "error[",
    "error:",
    "Error:",
    "ERROR",
    "FAILED",
    "FAIL:",
    "failed",
    "Traceback",
    "AssertionError",
    "panicked at",
    "not ok",
    "SyntaxError",
    "TypeError",
    "ReferenceError",
    "NameError",
    "assert",
];

/// The most relevant part of a check's output for the model: from a couple of lines before
/// the first line that looks like an error (a compiler error, a failed assertion, a
/// traceback), as much as fits `budget` bytes; without such a line, the output's tail. Cut at
/// line and character boundaries.
pub fn first_error(output: &str, budget: usize) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let first = lines
        .iter()
        .position(|l| ERROR_MARKERS.iter().any(|m| l.contains(m)));
    let Some(first) = first else {
        return tail(output, budget);
    };
    // A traceback's or a panic's useful lines come after the marker; a line or two before it
    // names the test.
    let from = first.saturating_sub(2);
    let mut out = String::new();
    for l in &lines[from..] {
        if out.len() + l.len() + 1 > budget {
            if out.is_empty() {
                out.push_str(cut(l, budget));
            }
            break;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The line of a check's output that says best what went wrong, for a one-line reason: the
/// first that looks like an error, else the last non-blank one.
pub fn error_line(output: &str) -> &str {
    output
        .lines()
        .find(|l| ERROR_MARKERS.iter().any(|m| l.contains(m)))
        .or_else(|| output.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("")
        .trim()
}

/// The last `budget` bytes of `s`, starting at a line boundary when one is near.
pub fn tail(s: &str, budget: usize) -> String {
    if s.len() <= budget {
        return s.to_string();
    }
    let mut start = s.len() - budget;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    let t = &s[start..];
    match t.find('\n') {
        Some(i) if i + 1 < t.len() && i < budget / 4 => t[i + 1..].to_string(),
        _ => t.to_string(),
    }
}

fn cut(s: &str, budget: usize) -> &str {
    let mut end = budget.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_error_is_given_with_the_line_that_names_the_test() {
        let out = "running 3 tests\ntest a ... ok\ntest b ... FAILED\n\nfailures:\n---- b stdout ----\nthread 'b' panicked at src/lib.rs:9:5:\nassertion `left == right` failed\n  left: 1\n right: 2\n";
        let e = first_error(out, 4096);
        assert!(
            e.starts_with("running 3 tests\ntest a ... ok\ntest b ... FAILED"),
            "{e}"
        );
        assert!(e.contains("right: 2"), "{e}");
        let small = first_error(out, 60);
        assert!(small.len() <= 60, "{small:?}");
        assert!(small.contains("FAILED"), "{small:?}");
    }

    #[test]
    fn a_python_traceback_and_a_compiler_error_are_found() {
        let py = "....F\n======\nFAIL: test_mean (test_stats.T)\nTraceback (most recent call last):\n  File \"t.py\", line 3\nAssertionError: 2 != 3\n";
        assert!(first_error(py, 4096).contains("AssertionError: 2 != 3"));
        let rs = "   Compiling demo v0.1.0\nerror[E0308]: mismatched types\n --> src/lib.rs:3:5\n";
        let e = first_error(rs, 4096);
        assert!(e.contains("error[E0308]"), "{e}");
        assert_eq!(error_line(rs), "error[E0308]: mismatched types");
        assert_eq!(
            error_line("make: *** [test] Error 2\n"),
            "make: *** [test] Error 2"
        );
        assert_eq!(error_line("all quiet\nthe end\n\n"), "the end");
    }

    #[test]
    fn without_an_error_line_the_tail_is_kept_within_budget() {
        let out = format!("{}\nthe end\n", "x".repeat(10_000));
        let e = first_error(&out, 100);
        assert!(e.len() <= 100 && e.ends_with("the end\n"), "{e:?}");
        // Never inside a character.
        let wide = "é".repeat(100);
        assert!(tail(&wide, 51).chars().all(|c| c == 'é'));
    }
}
