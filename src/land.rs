//! `dispatcher land`: a run's done patches as commits on a review branch (and/or an mbox),
//! one commit per patch, several per file, without touching the work tree, the index or
//! `HEAD`.
//!
//! Everything happens in git's object store through plumbing: the commit the run scanned is
//! read into a temporary index (outside the repository), each patch's file is taken from that
//! commit, checked to be exactly what was scanned, stacked with the file's earlier patches
//! ([`crate::stack`]), written as a blob and committed with `commit-tree`; only at the end is
//! the branch set, with `update-ref` and the value it was seen with, so a failure part-way
//! leaves no branch. For `--mbox` alone the objects go to a temporary object directory (the
//! repository's own is only read, as an alternate), so nothing is written to the repository at
//! all. git runs as [`crate::git`] describes: no hook, filter, textconv, external diff or
//! signing program of the repository's runs.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::apply::{ApplyError, edits_of, unverified, work_tree};
use crate::git::{Git, GitError};
use crate::queue::{TaskRecord, TaskState};
use crate::report::escape;
use crate::stack::stack;

/// The longest commit subject (`Resolve TODO in <path>: <text>`), in characters.
pub const SUBJECT_MAX: usize = 72;

#[derive(Debug, thiserror::Error)]
pub enum LandError {
    #[error(transparent)]
    WorkTree(#[from] ApplyError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(
        "run {run} did not record the commit it scanned (it scanned outside git, or with git \
         missing): pass --base REV, the commit whose files the run scanned"
    )]
    NoCommit { run: String },
    #[error(
        "{repo} has no commit {commit} (the commit the run scanned): land in the repository the \
         run scanned, or pass --base REV"
    )]
    UnknownCommit { repo: String, commit: String },
    #[error("{name:?} is not a valid branch name: {detail}")]
    BadBranch { name: String, detail: String },
    #[error(
        "the branch {name} exists already: pass --force to reset it to this landing, or \
         --branch NAME for another"
    )]
    BranchExists { name: String },
    #[error(
        "the branch {name} is checked out in {repo}: land never moves the branch you work on; \
         pass --branch NAME for another"
    )]
    BranchCheckedOut { name: String, repo: String },
    #[error("--author must look like 'Name <email>', not {value:?}")]
    BadAuthor { value: String },
    #[error(
        "git does not know who the author is ({detail}): set user.name and user.email \
         (git config) in the repository, or pass --author 'Name <email>'"
    )]
    NoAuthor { detail: String },
    #[error("cannot write {path}: {detail}")]
    Write { path: String, detail: String },
    #[error("cannot make a temporary directory for the index: {0}")]
    Temp(std::io::Error),
}

/// What to land and where.
#[derive(Debug, Clone, Default)]
pub struct LandOptions {
    /// The branch to create; None: `tars/<run>`, or no branch at all when only an mbox is
    /// asked for.
    pub branch: Option<String>,
    /// Reset the branch when it exists.
    pub force: bool,
    /// In a run that verifies, also patches that did not pass the check.
    pub unverified: bool,
    /// `Name <email>`, for author and committer; None: the repository's git configuration.
    pub author: Option<String>,
    /// The commit to build on; None: the one the run recorded.
    pub base: Option<String>,
    pub mbox: Option<PathBuf>,
    pub report: Option<PathBuf>,
}

/// The run as `land` needs it.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run: String,
    pub commit: Option<String>,
    /// The run's check, when it verifies.
    pub verify_command: Option<String>,
}

/// One done patch, landed or skipped.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Landing {
    pub task: String,
    pub path: String,
    pub line: usize,
    /// The commit made for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Why it did not land.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// What `land` did.
#[derive(Debug, Clone, Serialize)]
pub struct LandReport {
    pub run: String,
    pub base: String,
    /// The branch set (None: none was asked for, or nothing landed).
    pub branch: Option<String>,
    /// The last commit made (None when nothing landed).
    pub tip: Option<String>,
    pub mbox: Option<String>,
    pub patches: Vec<Landing>,
}

impl LandReport {
    pub fn landed(&self) -> usize {
        self.patches.iter().filter(|p| p.skipped.is_none()).count()
    }
}

/// Lands the run's done patches in the repository holding `repo`.
pub fn land(
    repo: &Path,
    info: &RunInfo,
    tasks: &[TaskRecord],
    opts: &LandOptions,
) -> Result<LandReport, LandError> {
    let (root, prefix) = work_tree(repo)?;
    let plain = Git::new(&root);
    let base_rev = match (&opts.base, &info.commit) {
        (Some(b), _) => b.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => {
            return Err(LandError::NoCommit {
                run: info.run.clone(),
            });
        }
    };
    let base = plain
        .out(&[
            "rev-parse",
            "--verify",
            "-q",
            "--end-of-options",
            &format!("{base_rev}^{{commit}}"),
        ])
        .map_err(|_| LandError::UnknownCommit {
            repo: root.display().to_string(),
            commit: base_rev.clone(),
        })?;
    let branch = match (&opts.branch, &opts.mbox) {
        (Some(b), _) => Some(b.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(format!("tars/{}", info.run)),
    };
    let target = branch
        .as_deref()
        .map(|b| branch_ref(&plain, &root, b, opts.force))
        .transpose()?;

    let tmp = tempfile::Builder::new()
        .prefix("tars-land-")
        .tempdir()
        .map_err(LandError::Temp)?;
    let mut git = Git::new(&root).with_env("GIT_INDEX_FILE", tmp.path().join("index"));
    if target.is_none() {
        // Nothing is to be written to the repository: new objects go to a directory of our
        // own, the repository's are read through it.
        let objects = plain.out(&[
            "rev-parse",
            "--path-format=absolute",
            "--git-path",
            "objects",
        ])?;
        let own = tmp.path().join("objects");
        std::fs::create_dir(&own).map_err(LandError::Temp)?;
        git = git
            .with_env("GIT_OBJECT_DIRECTORY", own)
            .with_env("GIT_ALTERNATE_OBJECT_DIRECTORIES", objects);
    }
    if let Some(a) = &opts.author {
        let (name, email) = parse_author(a)?;
        git = git
            .with_env("GIT_AUTHOR_NAME", name)
            .with_env("GIT_AUTHOR_EMAIL", email)
            .with_env("GIT_COMMITTER_NAME", name)
            .with_env("GIT_COMMITTER_EMAIL", email);
    }
    git.out(&["read-tree", &base])?;

    // Done patches (verified ones when the run verifies), in path and line order.
    let verified_only = info.verify_command.is_some() && !opts.unverified;
    let mut patches = Vec::new();
    let mut chosen: Vec<&TaskRecord> = Vec::new();
    for t in tasks {
        if t.state != TaskState::Done || t.patch.is_none() {
            continue;
        }
        match unverified(t, verified_only) {
            Some(why) => patches.push(skipped(t, why)),
            None => chosen.push(t),
        }
    }
    chosen.sort_by(|a, b| (&a.spec.path, a.spec.line).cmp(&(&b.spec.path, b.spec.line)));
    let mut parent = base.clone();
    for group in chosen.chunk_by(|a, b| a.spec.path == b.spec.path) {
        patches.extend(land_file(&git, &prefix, &base, &mut parent, group, info)?);
    }
    let tip = (parent != base).then(|| parent.clone());

    // The mbox and the review page are written before the branch is set, so that a failure
    // anywhere leaves no branch.
    let mut mbox = None;
    if let (Some(path), Some(tip)) = (&opts.mbox, &tip) {
        let text = git.out_with(
            &[
                "format-patch",
                "--stdout",
                "--no-ext-diff",
                "--no-textconv",
                "--no-signature",
                "--no-color",
                "--end-of-options",
                &format!("{base}..{tip}"),
            ],
            None,
        )?;
        write_file(path, &text)?;
        mbox = Some(path.display().to_string());
    }
    let report = LandReport {
        run: info.run.clone(),
        base: base.clone(),
        branch: target
            .as_ref()
            .filter(|_| tip.is_some())
            .map(|(name, _)| name.clone()),
        tip: tip.clone(),
        mbox,
        patches,
    };
    if let Some(path) = &opts.report {
        write_file(path, review_page(&report, tasks, info).as_bytes())?;
    }
    if let (Some((name, old)), Some(tip)) = (&target, &tip) {
        let zero = "0".repeat(base.len());
        let old = old.as_deref().unwrap_or(&zero);
        // With the value seen at the start: a branch made or moved meanwhile is not clobbered.
        plain.out(&[
            "update-ref",
            "-m",
            &format!("tars land {}", info.run),
            &format!("refs/heads/{name}"),
            tip,
            old,
        ])?;
    }
    Ok(report)
}

fn skipped(t: &TaskRecord, why: String) -> Landing {
    Landing {
        task: t.spec.id.clone(),
        path: t.spec.path.clone(),
        line: t.spec.line,
        commit: None,
        skipped: Some(why),
    }
}

/// The branch's name as git spells it and its current value (None when it does not exist),
/// or why it may not be set.
fn branch_ref(
    git: &Git,
    root: &Path,
    name: &str,
    force: bool,
) -> Result<(String, Option<String>), LandError> {
    let checked = git
        .out(&["check-ref-format", "--branch", name])
        .map_err(|e| LandError::BadBranch {
            name: name.to_string(),
            detail: match e {
                GitError::Failed { detail, .. } => detail,
                other => other.to_string(),
            },
        })?;
    // `--branch` also expands `@{-1}`: only a plain name is taken.
    if checked != name || name.starts_with('-') {
        return Err(LandError::BadBranch {
            name: name.to_string(),
            detail: "only a plain branch name is taken".into(),
        });
    }
    let full = format!("refs/heads/{name}");
    let old = git
        .out(&["rev-parse", "-q", "--verify", "--end-of-options", &full])
        .ok()
        .filter(|o| !o.is_empty());
    if old.is_some() && !force {
        return Err(LandError::BranchExists {
            name: name.to_string(),
        });
    }
    let head = git.out(&["symbolic-ref", "-q", "HEAD"]).unwrap_or_default();
    if head == full {
        return Err(LandError::BranchCheckedOut {
            name: name.to_string(),
            repo: root.display().to_string(),
        });
    }
    Ok((name.to_string(), old))
}

/// `Name <email>`.
fn parse_author(a: &str) -> Result<(&str, &str), LandError> {
    let bad = || LandError::BadAuthor {
        value: a.to_string(),
    };
    let (name, rest) = a.split_once('<').ok_or_else(bad)?;
    let email = rest.strip_suffix('>').ok_or_else(bad)?;
    let name = name.trim();
    if name.is_empty() || email.is_empty() || a.contains(['\n', '\r', '\0']) || email.contains('<')
    {
        return Err(bad());
    }
    Ok((name, email))
}

/// The file at `path` (relative to the scanned directory, from Redis: untrusted) in the
/// repository, as the path git knows it: plain parts only, none of them `.git`.
fn repo_path(prefix: &Path, path: &str) -> Result<String, String> {
    let plain = !path.contains(['\0', '\n', '\r', '\\'])
        && path.split('/').all(|part| {
            !part.is_empty() && part != "." && part != ".." && !part.eq_ignore_ascii_case(".git")
        });
    if !plain {
        return Err("the task's path is not a plain path inside the repository".into());
    }
    prefix
        .join(path)
        .to_str()
        .map(str::to_string)
        .ok_or_else(|| "the task's path is not UTF-8".into())
}

/// Lands the patches of one file (`group`: one path, line order) on top of `parent`, which
/// moves to the last commit made. One result per task.
fn land_file(
    git: &Git,
    prefix: &Path,
    base: &str,
    parent: &mut String,
    group: &[&TaskRecord],
    info: &RunInfo,
) -> Result<Vec<Landing>, LandError> {
    let Some(first) = group.first() else {
        return Ok(Vec::new());
    };
    let all_skipped =
        |why: String| -> Vec<Landing> { group.iter().map(|t| skipped(t, why.clone())).collect() };
    let full = match repo_path(prefix, &first.spec.path) {
        Ok(f) => f,
        Err(why) => return Ok(all_skipped(why)),
    };
    let (mode, oid) = match tree_entry(git, base, &full)? {
        Some(e) => e,
        None => {
            return Ok(all_skipped(format!(
                "the scanned commit {} has no regular file at this path",
                short(base)
            )));
        }
    };
    let bytes = git.out_with(&["cat-file", "blob", &oid], None)?;
    if crate::scan::sha256_hex(&bytes) != first.spec.content_hash {
        return Ok(all_skipped(format!(
            "the file in the scanned commit {} differs from what was scanned (the scan saw \
             uncommitted changes to it): commit them and run again",
            short(base)
        )));
    }
    let Ok(content) = String::from_utf8(bytes) else {
        return Ok(all_skipped("the file is not UTF-8".into()));
    };
    let edits = edits_of(group);
    let valid: Vec<_> = edits
        .iter()
        .filter_map(|e| e.as_ref().ok().cloned())
        .collect();
    let mut steps = stack(&first.spec.path, &content, &valid).into_iter();
    let mut out = Vec::new();
    for (t, e) in group.iter().zip(&edits) {
        let step = match e {
            Err(why) => Err(why.clone()),
            Ok(_) => steps.next().unwrap_or_else(|| Err("not stacked".into())),
        };
        let step = match step {
            Ok(s) => s,
            Err(why) => {
                out.push(skipped(t, why));
                continue;
            }
        };
        let blob = git.out_with(
            &["hash-object", "-w", "--no-filters", "--stdin"],
            Some(step.after.as_bytes()),
        )?;
        let blob = String::from_utf8_lossy(&blob).trim().to_string();
        git.out(&[
            "update-index",
            "--cacheinfo",
            &format!("{mode},{blob},{full}"),
        ])?;
        let tree = git.out(&["write-tree"])?;
        let message = commit_message(t, info);
        let commit = git
            .out_with(
                &[
                    "commit-tree",
                    "--no-gpg-sign",
                    &tree,
                    "-p",
                    parent,
                    "-F",
                    "-",
                ],
                Some(message.as_bytes()),
            )
            .map_err(|e| match e {
                GitError::Failed { detail, .. }
                    if detail.contains("identity")
                        || detail.contains("tell me who you are")
                        || detail.contains("email") =>
                {
                    LandError::NoAuthor { detail }
                }
                other => LandError::Git(other),
            })?;
        let commit = String::from_utf8_lossy(&commit).trim().to_string();
        *parent = commit.clone();
        out.push(Landing {
            task: t.spec.id.clone(),
            path: t.spec.path.clone(),
            line: t.spec.line,
            commit: Some(commit),
            skipped: None,
        });
    }
    Ok(out)
}

/// The mode and blob of the regular file `path` in `commit`'s tree, or None when there is no
/// such file (absent, a directory, a symlink, a submodule).
fn tree_entry(git: &Git, commit: &str, path: &str) -> Result<Option<(String, String)>, GitError> {
    let listing = git.out_with(&["ls-tree", "-z", "--full-tree", commit, "--", path], None)?;
    let listing = String::from_utf8_lossy(&listing);
    let entries: Vec<&str> = listing.split('\0').filter(|e| !e.is_empty()).collect();
    let [entry] = entries.as_slice() else {
        return Ok(None);
    };
    // `<mode> <type> <object>\t<path>`
    let Some((meta, listed)) = entry.split_once('\t') else {
        return Ok(None);
    };
    let mut m = meta.split(' ');
    match (m.next(), m.next(), m.next()) {
        (Some(mode @ ("100644" | "100755")), Some("blob"), Some(oid)) if listed == path => {
            Ok(Some((mode.to_string(), oid.to_string())))
        }
        _ => Ok(None),
    }
}

fn short(oid: &str) -> &str {
    &oid[..oid.len().min(12)]
}

/// Text from Redis made fit for one line of a commit message: terminal controls escaped,
/// whitespace runs made single spaces.
fn one_line(s: &str) -> String {
    escape(s).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `Resolve TODO in <path>: <text>`, at most [`SUBJECT_MAX`] characters (the text, then if
/// need be the whole, clipped with `…`).
pub fn subject(tag: &str, path: &str, text: &str) -> String {
    let head = format!("Resolve {} in {}: ", one_line(tag), one_line(path));
    let text = one_line(text);
    let clip = |s: &str, max: usize| -> String {
        if s.chars().count() <= max {
            s.to_string()
        } else {
            let mut c: String = s.chars().take(max.saturating_sub(1)).collect();
            c = c.trim_end().to_string();
            c.push('…');
            c
        }
    };
    let room = SUBJECT_MAX.saturating_sub(head.chars().count());
    if room >= 12 {
        format!("{head}{}", clip(&text, room))
    } else {
        clip(&format!("{head}{text}"), SUBJECT_MAX)
    }
}

/// The commit message of one landed patch: subject, the TODO in full with its place, what
/// made and checked the patch, and trailers (`git interpret-trailers --parse` reads them).
pub fn commit_message(t: &TaskRecord, info: &RunInfo) -> String {
    let s = &t.spec;
    let o = &t.outcome;
    let model = one_line(o.model.as_deref().unwrap_or("unknown"));
    let verified = o.verified.as_deref().unwrap_or("skipped");
    let verified_trailer = match (&info.verify_command, verified) {
        (Some(cmd), v) => format!("{} ({})", one_line(v), one_line(cmd)),
        (None, _) => "skipped (the run did not verify)".to_string(),
    };
    let mut m = subject(&s.tag, &s.path, &s.text);
    m.push_str("\n\n");
    let _ = write!(
        m,
        "{} at {}:{}",
        one_line(&s.tag),
        one_line(&s.path),
        s.line
    );
    if let Some(sym) = &s.symbol {
        let _ = write!(m, ", in `{}`", one_line(sym));
    }
    m.push_str(":\n\n");
    for line in escape(&s.text).split("\\n") {
        let _ = writeln!(m, "    {}", line.trim_end());
    }
    let _ = write!(
        m,
        "\nThe patch is a local model's answer ({model}, {} prompt and {} answer tokens), \
         gated by tars-fleet",
        o.prompt_tokens.unwrap_or(0),
        o.completion_tokens.unwrap_or(0)
    );
    match &info.verify_command {
        Some(cmd) => {
            let _ = writeln!(
                m,
                " and checked with `{}`: {}.",
                one_line(cmd),
                one_line(verified)
            );
        }
        None => m.push_str("; no check was run.\n"),
    }
    let _ = write!(
        m,
        "\nTars-Run: {}\nTars-Task: {}\nTars-Model: {model}\nTars-Verified: {verified_trailer}\n",
        one_line(&t.run),
        one_line(&s.id),
    );
    m
}

/// The Markdown review page: per TODO its place, text, diff, verification, model and tokens;
/// then the skipped ones with their reasons.
pub fn review_page(r: &LandReport, tasks: &[TaskRecord], info: &RunInfo) -> String {
    let by_id: HashMap<&str, &TaskRecord> = tasks.iter().map(|t| (t.spec.id.as_str(), t)).collect();
    let mut p = String::new();
    let _ = writeln!(p, "# Review: run {}\n", one_line(&r.run));
    let _ = writeln!(
        p,
        "{} of {} done patches landed on `{}` (base `{}`{}).\n",
        r.landed(),
        r.patches.len(),
        r.branch.as_deref().unwrap_or("no branch"),
        short(&r.base),
        r.tip
            .as_deref()
            .map(|t| format!(", tip `{}`", short(t)))
            .unwrap_or_default()
    );
    if let Some(cmd) = &info.verify_command {
        let _ = writeln!(p, "Every patch was checked with `{}`.\n", one_line(cmd));
    }
    for l in r.patches.iter().filter(|l| l.skipped.is_none()) {
        let Some(t) = by_id.get(l.task.as_str()) else {
            continue;
        };
        let o = &t.outcome;
        let _ = writeln!(
            p,
            "## `{}:{}` {}\n",
            one_line(&l.path),
            l.line,
            one_line(&t.spec.tag)
        );
        let _ = writeln!(p, "> {}\n", one_line(&t.spec.text));
        let _ = writeln!(
            p,
            "- commit `{}`, task `{}`\n- model {}, {} prompt / {} answer tokens, {} ms\n- verified: {}\n",
            short(l.commit.as_deref().unwrap_or("")),
            one_line(&l.task),
            one_line(o.model.as_deref().unwrap_or("unknown")),
            o.prompt_tokens.unwrap_or(0),
            o.completion_tokens.unwrap_or(0),
            o.llm_ms.unwrap_or(0),
            one_line(o.verified.as_deref().unwrap_or("skipped")),
        );
        let diff = t.patch.as_deref().unwrap_or_default();
        let fence = "`".repeat(longest_backtick_run(diff).max(2) + 1);
        let _ = writeln!(p, "{fence}diff\n{}{fence}\n", escape_block(diff));
    }
    let skipped: Vec<&Landing> = r.patches.iter().filter(|l| l.skipped.is_some()).collect();
    if !skipped.is_empty() {
        let _ = writeln!(p, "## Skipped\n");
        for l in skipped {
            let _ = writeln!(
                p,
                "- `{}:{}` (task `{}`): {}",
                one_line(&l.path),
                l.line,
                one_line(&l.task),
                one_line(l.skipped.as_deref().unwrap_or(""))
            );
        }
    }
    p
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// A diff for a Markdown block: each line's terminal controls escaped, newlines kept.
fn escape_block(s: &str) -> String {
    s.split_inclusive('\n')
        .map(|l| {
            let (body, nl) = l.strip_suffix('\n').map_or((l, ""), |b| (b, "\n"));
            format!("{}{nl}", escape(body))
        })
        .collect()
}

/// Writes `bytes` to `path` whole or not at all (a temp file next to it, then renamed).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), LandError> {
    let err = |e: std::io::Error| LandError::Write {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_bounded_single_lines() {
        assert_eq!(
            subject("TODO", "src/a.rs", "handle overflow"),
            "Resolve TODO in src/a.rs: handle overflow"
        );
        let long = subject("FIXME", "src/a.rs", &"word ".repeat(40));
        assert!(
            long.chars().count() <= SUBJECT_MAX && long.ends_with('…'),
            "{long}"
        );
        let evil = subject("TODO", "a\nb.rs", "x\x1b[2J\ny");
        assert!(!evil.contains(['\n', '\x1b']), "{evil:?}");
        let deep = subject("TODO", &"dir/".repeat(30), "text");
        assert!(deep.chars().count() <= SUBJECT_MAX, "{deep}");
    }

    #[test]
    fn authors_must_be_a_name_and_an_address() {
        assert_eq!(
            parse_author("Ada Lovelace <ada@example.org>").unwrap(),
            ("Ada Lovelace", "ada@example.org")
        );
        for bad in [
            "ada@example.org",
            "<a@b>",
            "Ada <>",
            "Ada <a@b",
            "A\n <a@b>",
        ] {
            assert!(parse_author(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn task_paths_must_stay_plain_and_out_of_git_directories() {
        let p = Path::new("sub");
        assert_eq!(repo_path(p, "src/a.rs").unwrap(), "sub/src/a.rs");
        for bad in [
            "../x",
            "/etc/passwd",
            "a/./b",
            ".git/config",
            "a/.GIT/hooks/x",
            "",
            "a\\b",
        ] {
            assert!(repo_path(p, bad).is_err(), "{bad:?}");
        }
    }
}
