//! git run safely on a repository tars did not write (`apply`, `land`, and the commit a run
//! records): nothing of the repository's own may run a command or reinterpret a path.
//!
//! A repository's `.git/config` can name commands for fsmonitor, hooks, filters, textconv,
//! external diffs and commit signing; a `.gitattributes` can attach them to any file. So git
//! runs here with fsmonitor off, hooks pointed at `/dev/null`, signing off, literal pathspecs
//! (a file named `:x` is not pathspec magic), a scrubbed environment and no standard input,
//! and only commands that never run a filter, a textconv or a diff driver: `rev-parse`,
//! `ls-files`, `ls-tree`, `cat-file blob`, `hash-object --no-filters`, `read-tree`,
//! `update-index --cacheinfo`, `write-tree`, `commit-tree`, `update-ref`, and `format-patch`
//! with `--no-ext-diff --no-textconv`. (`git status` would run a repository's clean filter on
//! any file whose stat data is stale, and a hostile `.git` can make it so.)

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The environment git runs with: enough to find itself and the user's global settings, and
/// none of tars's own variables (`TARS_*` may hold credentials) or `GIT_*` ones that would point
/// it elsewhere.
const GIT_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"];

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// git itself is missing or could not be started.
    #[error("cannot run git (`git {command}`): {detail}. Install git")]
    Spawn { command: String, detail: String },
    #[error("`git {command}` failed in {repo}: {detail}")]
    Failed {
        repo: String,
        command: String,
        detail: String,
    },
}

/// git in one repository, with extra environment (a temporary index, an object directory, an
/// author) on top of [`GIT_ENV`].
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
    env: Vec<(String, OsString)>,
}

impl Git {
    pub fn new(dir: &Path) -> Git {
        Git {
            dir: dir.to_path_buf(),
            env: Vec::new(),
        }
    }

    /// The same repository with `key=value` in git's environment.
    pub fn with_env(mut self, key: &str, value: impl Into<OsString>) -> Git {
        self.env.push((key.to_string(), value.into()));
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs git with `args` (and `stdin`, written from a thread: git may fill its stdout pipe
    /// before it has read all of its input). The raw output, whatever the exit status.
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> std::io::Result<Output> {
        let mut cmd = Command::new("git");
        cmd.env_clear()
            .envs(
                GIT_ENV
                    .iter()
                    .filter_map(|k| Some((k, std::env::var_os(k)?))),
            )
            .env("GIT_TERMINAL_PROMPT", "0")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--literal-pathspecs")
            .args([
                "-c",
                "core.fsmonitor=false",
                "-c",
                "core.hooksPath=/dev/null",
                "-c",
                "commit.gpgSign=false",
                "-c",
                "log.showSignature=false",
            ])
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let Some(input) = stdin else {
            return cmd.stdin(Stdio::null()).output();
        };
        let mut child = cmd.stdin(Stdio::piped()).spawn()?;
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || pipe.write_all(&input));
        let out = child.wait_with_output()?;
        writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("stdin writer panicked")))?;
        Ok(out)
    }

    /// [`Git::run`] that must succeed: its stdout, or an error naming the command and git's
    /// own message.
    pub fn out_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, GitError> {
        let command = args.first().copied().unwrap_or_default().to_string();
        let o = self.run(args, stdin).map_err(|e| GitError::Spawn {
            command: command.clone(),
            detail: e.to_string(),
        })?;
        if !o.status.success() {
            return Err(GitError::Failed {
                repo: self.dir.display().to_string(),
                command,
                detail: String::from_utf8_lossy(&o.stderr).trim().to_string(),
            });
        }
        Ok(o.stdout)
    }

    /// [`Git::out_with`] without input, as text with its last newline removed.
    pub fn out(&self, args: &[&str]) -> Result<String, GitError> {
        let o = self.out_with(args, None)?;
        let s = String::from_utf8_lossy(&o);
        Ok(s.strip_suffix('\n').unwrap_or(&s).to_string())
    }
}

/// The commit checked out in the repository holding `dir`, if it is one (None outside git, in
/// a repository without commits, or without git installed): what a run records as the commit
/// it scanned, for `land`.
pub fn head_commit(dir: &Path) -> Option<String> {
    let oid = Git::new(dir)
        .out(&["rev-parse", "--verify", "-q", "HEAD^{commit}"])
        .ok()?;
    (oid.len() >= 40 && oid.bytes().all(|b| b.is_ascii_hexdigit())).then_some(oid)
}
