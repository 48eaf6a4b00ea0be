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
/// a repository without commits): what a run records as the commit it scanned, for `land`.
///
/// Asks git, and where git cannot answer (not installed, as in the dispatcher's image, or
/// refusing a repository owned by another user, as a read-only mount in a container is) reads
/// `.git` itself: HEAD, then the loose or packed ref it names. Reading follows only `refs/`
/// names and takes only hex object names, so a hostile `.git` cannot point it elsewhere.
pub fn head_commit(dir: &Path) -> Option<String> {
    match Git::new(dir).out(&["rev-parse", "--verify", "-q", "HEAD^{commit}"]) {
        Ok(oid) => is_oid(&oid).then_some(oid),
        Err(_) => head_commit_from_files(dir),
    }
}

fn is_oid(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The largest `.git` file read here (`packed-refs` of a big repository is a few MB).
const MAX_GIT_FILE: u64 = 64 << 20;

fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_GIT_FILE)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// [`head_commit`] without git: finds `.git` from `dir` upwards (a directory, or a file
/// `gitdir: PATH` as in a linked worktree or a submodule), then resolves HEAD.
fn head_commit_from_files(dir: &Path) -> Option<String> {
    let dotgit = dir
        .ancestors()
        .map(|d| d.join(".git"))
        .find(|p| p.exists())?;
    let gitdir = if dotgit.is_file() {
        let text = read_small(&dotgit)?;
        let target = text.lines().next()?.strip_prefix("gitdir:")?.trim();
        dotgit.parent()?.join(target)
    } else {
        dotgit
    };
    // A linked worktree keeps HEAD in its own directory and the refs in the common one.
    let common = match read_small(&gitdir.join("commondir")) {
        Some(c) if !c.trim().is_empty() => gitdir.join(c.trim()),
        _ => gitdir.clone(),
    };
    let head = read_small(&gitdir.join("HEAD"))?;
    let head = head.trim();
    let Some(name) = head.strip_prefix("ref:") else {
        return is_oid(head).then(|| head.to_string());
    };
    let name = name.trim();
    let safe = name.starts_with("refs/")
        && name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'));
    if !safe {
        return None;
    }
    for base in [&gitdir, &common] {
        if let Some(oid) = read_small(&base.join(name)) {
            let oid = oid.trim();
            return is_oid(oid).then(|| oid.to_string());
        }
    }
    read_small(&common.join("packed-refs"))?
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('^'))
        .find_map(|l| {
            let (oid, r) = l.split_once(' ')?;
            (r.trim_end() == name && is_oid(oid)).then(|| oid.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let o = Git::new(dir)
            .with_env("GIT_AUTHOR_NAME", "t")
            .with_env("GIT_AUTHOR_EMAIL", "t@localhost")
            .with_env("GIT_COMMITTER_NAME", "t")
            .with_env("GIT_COMMITTER_EMAIL", "t@localhost")
            .out(args);
        o.unwrap_or_else(|e| panic!("git {args:?}: {e}"))
    }

    fn repo() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        git(d.path(), &["init", "-q", "-b", "main"]);
        std::fs::write(d.path().join("a"), "1").unwrap();
        git(d.path(), &["add", "a"]);
        git(d.path(), &["commit", "-q", "-m", "one"]);
        d
    }

    #[test]
    fn reading_git_files_finds_what_git_finds() {
        let d = repo();
        let head = git(d.path(), &["rev-parse", "HEAD"]);
        std::fs::create_dir(d.path().join("sub")).unwrap();
        // A loose ref, from the top and from a subdirectory.
        assert_eq!(head_commit_from_files(d.path()).as_deref(), Some(&*head));
        assert_eq!(
            head_commit_from_files(&d.path().join("sub")).as_deref(),
            Some(&*head)
        );
        // A packed ref.
        git(d.path(), &["pack-refs", "--all"]);
        assert!(!d.path().join(".git/refs/heads/main").exists());
        assert_eq!(head_commit_from_files(d.path()).as_deref(), Some(&*head));
        // A linked worktree on a branch of its own, one commit ahead.
        let wt = d.path().join("wt");
        git(
            d.path(),
            &["worktree", "add", "-q", "-b", "side", wt.to_str().unwrap()],
        );
        std::fs::write(wt.join("b"), "2").unwrap();
        git(&wt, &["add", "b"]);
        git(&wt, &["commit", "-q", "-m", "two"]);
        let side = git(&wt, &["rev-parse", "HEAD"]);
        assert_ne!(side, head);
        assert_eq!(head_commit_from_files(&wt).as_deref(), Some(&*side));
        // Detached.
        git(d.path(), &["checkout", "-q", "--detach", "HEAD"]);
        assert_eq!(head_commit_from_files(d.path()).as_deref(), Some(&*head));
        assert_eq!(head_commit(d.path()).as_deref(), Some(&*head));
    }

    #[test]
    fn a_hostile_or_empty_head_gives_no_commit() {
        let d = repo();
        let outside = d.path().join("outside");
        std::fs::write(&outside, "0123456789012345678901234567890123456789\n").unwrap();
        for head in [
            "ref: refs/../outside",
            "ref: ../outside",
            "ref: /etc/passwd",
            "garbage",
        ] {
            std::fs::write(d.path().join(".git/HEAD"), head).unwrap();
            assert_eq!(head_commit_from_files(d.path()), None, "HEAD {head:?}");
        }
        // A branch without commits yet.
        let e = tempfile::tempdir().unwrap();
        git(e.path(), &["init", "-q"]);
        assert_eq!(head_commit_from_files(e.path()), None);
        assert_eq!(head_commit(e.path()), None);
        // Not a repository at all (a temporary directory has none above it, as a rule).
        let n = tempfile::tempdir().unwrap();
        if !n
            .path()
            .ancestors()
            .skip(1)
            .any(|a| a.join(".git").exists())
        {
            assert_eq!(head_commit_from_files(n.path()), None);
        }
    }
}
