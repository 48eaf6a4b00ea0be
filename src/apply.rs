//! `dispatcher apply`: a run's done patches written into a git work tree, only where nothing
//! else has changed the file since the scan, so every change can be reviewed and undone with
//! git.
//!
//! The repository and every task field are untrusted (a hostile repository can commit
//! symlinks; anyone on Redis's network can rewrite a task's path), so a patch is written only
//! to a regular file reached without following any symlink, under the canonical work tree,
//! whose bytes are exactly what git's index and last commit hold, through an unnamed temp file
//! linked into place. git runs only commands that never execute anything a repository's
//! `.git/config` names (no `git status`: it runs clean filters), with `--literal-pathspecs` (a
//! file named `:x` is not pathspec magic), without fsmonitor or hooks, and without tars's
//! environment.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::git::{Git, GitError};
use crate::queue::{TaskRecord, TaskState};
use crate::stack::{Edit, stack};

/// What `apply` did with one patch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Applied {
    pub task: String,
    pub path: String,
    /// None when written; otherwise why the file was left untouched.
    pub skipped: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "{repo} is not a git work tree ({detail}): tars writes only where every change can be \
         reviewed and undone with git"
    )]
    NotGit { repo: String, detail: String },
    #[error(
        "{repo} does not exist here (is it the path the run scanned inside a container?): pass --repo PATH"
    )]
    NoSuchDir { repo: String },
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(
        "run {run} says it scanned {recorded}, but that is not where you are: apply writes only into a repository you chose. Run it from inside that repository, or pass --repo PATH"
    )]
    RepoNotChosen { run: String, recorded: String },
    /// The run scanned a path this machine does not have: most often `/repo`, where the compose
    /// file mounts the repository inside the dispatcher's container.
    #[error(
        "run {run} scanned {recorded}, which does not exist on this machine (a path inside a container, as docker compose's /repo?): pass --repo PATH, the same repository here"
    )]
    RecordedRepoMissing { run: String, recorded: String },
    #[error("cannot lock {path} for apply: {detail}")]
    Lock { path: String, detail: String },
}

/// The repository `apply` may write: the one named with `--repo`, or else the one the run
/// recorded, but only when the current directory is inside it. The recorded path comes from
/// Redis, which anyone on its network can write: without this, a rewritten run hash could steer
/// a plain `dispatcher apply` into another repository of the user's.
pub fn chosen_repo(
    named: Option<&Path>,
    run: &str,
    recorded: &str,
    cwd: &Path,
) -> Result<PathBuf, ApplyError> {
    if let Some(p) = named {
        return Ok(p.to_path_buf());
    }
    let refuse = || ApplyError::RepoNotChosen {
        run: run.to_string(),
        recorded: recorded.to_string(),
    };
    let rec = std::fs::canonicalize(recorded).map_err(|_| ApplyError::RecordedRepoMissing {
        run: run.to_string(),
        recorded: recorded.to_string(),
    })?;
    let here = std::fs::canonicalize(cwd).map_err(|_| refuse())?;
    if here.starts_with(&rec) {
        Ok(rec)
    } else {
        Err(refuse())
    }
}

fn git(repo: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    Git::new(repo).run(args, None)
}

fn git_with(
    repo: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> std::io::Result<std::process::Output> {
    Git::new(repo).run(args, stdin)
}

/// The object id of `rel` in git's index, or why apply may not write it (not tracked, a merge
/// conflict, a link or a submodule).
fn index_blob(root: &Path, rel: &str) -> Result<String, String> {
    let o = git(root, &["ls-files", "-s", "-z", "--", rel])
        .map_err(|e| format!("git ls-files failed: {e}"))?;
    let text = String::from_utf8_lossy(&o.stdout);
    let entries: Vec<&str> = text.split('\0').filter(|e| !e.is_empty()).collect();
    let [entry] = entries.as_slice() else {
        return Err(if entries.is_empty() {
            "git does not track it: apply writes only files whose change git can show".into()
        } else {
            "it has merge conflicts".into()
        });
    };
    // `<mode> <object> <stage>\t<path>`
    let mut f = entry.split(['\t', ' ']);
    match (f.next(), f.next(), f.next()) {
        (Some("100644" | "100755"), Some(oid), Some("0")) => Ok(oid.to_string()),
        _ => Err("git does not record it as a regular file".into()),
    }
}

/// Whether `content`, the file as it is in the work tree, is exactly what git's index and the
/// last commit hold: "no uncommitted work", decided without `git status` (see [`git_with`]).
/// A file that git converts on its way in (a filter or an end-of-line attribute) never looks
/// clean this way, and is left alone.
fn committed_and_clean(root: &Path, rel: &str, content: &[u8]) -> Result<(), String> {
    let index = index_blob(root, rel)?;
    let head = git(root, &["ls-tree", "-z", "HEAD", "--", rel])
        .map_err(|e| format!("git ls-tree failed: {e}"))?;
    let head = String::from_utf8_lossy(&head.stdout);
    let head_oid = head.split(['\t', ' ']).nth(2).unwrap_or_default();
    let work = git_with(
        root,
        &["hash-object", "--no-filters", "--stdin"],
        Some(content),
    )
    .map_err(|e| format!("git hash-object failed: {e}"))?;
    let work = String::from_utf8_lossy(&work.stdout);
    if work.trim() != index {
        return Err(
            "the file has uncommitted changes (or git converts it on commit: a filter or an end-of-line attribute)"
                .into(),
        );
    }
    if head_oid != index {
        return Err("the file has uncommitted changes (staged, or never committed)".into());
    }
    Ok(())
}

/// The top of the work tree holding `repo` (canonical) and `repo`'s place below it (task paths
/// are relative to the directory the run scanned, which may sit below the top), or why `repo`
/// is not one: it does not exist, git is missing, or git says it is not a repository.
pub(crate) fn work_tree(repo: &Path) -> Result<(PathBuf, PathBuf), ApplyError> {
    let shown = repo.display().to_string();
    if !repo.is_dir() {
        return Err(ApplyError::NoSuchDir { repo: shown });
    }
    let top = Git::new(repo)
        .out(&["rev-parse", "--show-toplevel"])
        .map_err(|e| match e {
            GitError::Spawn { .. } => ApplyError::Git(e),
            GitError::Failed { detail, .. } => ApplyError::NotGit {
                repo: shown.clone(),
                detail,
            },
        })?;
    let canon = |p: &Path| {
        std::fs::canonicalize(p).map_err(|e| ApplyError::NoSuchDir {
            repo: format!("{} ({e})", p.display()),
        })
    };
    let root = canon(Path::new(&top))?;
    let here = canon(repo)?;
    let base = here
        .strip_prefix(&root)
        .map_err(|_| ApplyError::NotGit {
            repo: shown,
            detail: format!("it is not inside the work tree {}", root.display()),
        })?
        .to_path_buf();
    Ok((root, base))
}

/// The file a task's `path` names inside the canonical work tree `root`, or why it may not be
/// written: the path must be relative, plain (no `..`, no `.`, no empty part), reach a regular
/// file through no symlink at all, outside any submodule or nested repository.
fn checked_file(root: &Path, rel: &str) -> Result<PathBuf, String> {
    if rel.is_empty() || rel.contains(['\0', '\n', '\r']) {
        return Err("the task's path is empty or holds control characters".into());
    }
    let p = Path::new(rel);
    if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err("the task's path is not a plain path inside the repository".into());
    }
    let mut at = root.to_path_buf();
    for c in p.components() {
        // A directory with its own `.git` is a submodule or a nested repository: the
        // superproject's `git status` does not see edits inside it, so "no uncommitted work"
        // could not be checked from here.
        if at != root && std::fs::symlink_metadata(at.join(".git")).is_ok() {
            return Err(format!(
                "it is inside the submodule or nested repository {}: apply there with --repo",
                at.strip_prefix(root).unwrap_or(&at).display()
            ));
        }
        at.push(c);
        let meta = std::fs::symlink_metadata(&at).map_err(|e| format!("cannot read it: {e}"))?;
        if meta.file_type().is_symlink() {
            return Err(format!(
                "{} is a symbolic link: apply never writes through one",
                at.strip_prefix(root).unwrap_or(&at).display()
            ));
        }
    }
    if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_file()) {
        return Err("it is not a regular file".into());
    }
    Ok(at)
}

/// Replaces `file` by `new` atomically, after checking once more that the file still holds
/// what was scanned (an editor may have saved it meanwhile).
///
/// The new content is written to an unnamed file (`O_TMPFILE`) in the file's directory, which
/// the kernel removes if `apply` is killed while writing; only when it is complete is it given
/// a fresh random name (`linkat`, which fails rather than replace or follow anything already
/// there) and renamed over the file, so a kill leaves at most that one name for the
/// microseconds between the two calls. Where the filesystem has no `O_TMPFILE`, a temp file
/// created exclusively with a random name is used instead, removed on any failure.
fn replace(file: &Path, new: &str, scanned_hash: &str) -> Result<(), String> {
    let dir = file.parent().ok_or("the file has no directory")?;
    let meta = std::fs::symlink_metadata(file).map_err(|e| format!("cannot read it: {e}"))?;
    let still_scanned = || -> Result<(), String> {
        let now = std::fs::read(file).map_err(|e| format!("cannot read it: {e}"))?;
        if crate::scan::sha256_hex(&now) != scanned_hash {
            return Err("the file changed while the patch was being written: scan again".into());
        }
        Ok(())
    };
    let write = |f: &std::fs::File| -> Result<(), String> {
        let mut f = f;
        f.write_all(new.as_bytes())
            .and_then(|()| f.set_permissions(meta.permissions()))
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("cannot write it: {e}"))
    };
    if let Ok(unnamed) = tempfile::tempfile_in(dir) {
        write(&unnamed)?;
        still_scanned()?;
        let name = dir.join(format!(".tars-{:016x}.tmp", rand::random::<u64>()));
        let proc_path = format!("/proc/self/fd/{}", unnamed.as_raw_fd());
        if rustix::fs::linkat(
            rustix::fs::CWD,
            proc_path.as_str(),
            rustix::fs::CWD,
            &name,
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        )
        .is_ok()
        {
            return std::fs::rename(&name, file).map_err(|e| {
                let _ = std::fs::remove_file(&name);
                format!("cannot write it: {e}")
            });
        }
    }
    let tmp = tempfile::Builder::new()
        .prefix(".tars-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot create a temp file next to it: {e}"))?;
    write(tmp.as_file())?;
    still_scanned()?;
    tmp.persist(file)
        .map(|_| ())
        .map_err(|e| format!("cannot write it: {}", e.error))
}

/// Holds an advisory `flock` on the work tree's root directory itself for the whole of one
/// `apply`, so two at once cannot both read a file as scanned and both write it, losing one
/// patch. Locking the directory creates nothing: a lock file in the git directory would be
/// created wherever a `.git` file in the tree points. The lock is released when the process
/// ends, however it ends.
fn lock_repo(root: &Path) -> Result<std::fs::File, ApplyError> {
    let cant = |e: std::io::Error| ApplyError::Lock {
        path: root.display().to_string(),
        detail: e.to_string(),
    };
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(root)
        .map_err(cant)?;
    match dir.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::warn!(
                repo = %root.display(),
                "waiting for another `dispatcher apply` in this repository to finish"
            );
            dir.lock().map_err(cant)?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(cant(e)),
    }
    Ok(dir)
}

/// Writes done patches into the working tree at `repo`. A file is touched only when its
/// content is still exactly what was scanned and git shows no uncommitted change to it; every
/// done patch of a file whose block does not overlap an earlier one's is stacked onto it
/// ([`crate::stack`]) and the file is replaced once, atomically. A patch that cannot be
/// applied is skipped with its reason; the others go on.
pub fn apply_patches(
    repo: &Path,
    tasks: &[TaskRecord],
    only: &[String],
    verified_only: bool,
) -> Result<Vec<Applied>, ApplyError> {
    let (root, base) = work_tree(repo)?;
    let _lock = lock_repo(&root)?;
    let mut out = Vec::new();
    let mut chosen: Vec<&TaskRecord> = Vec::new();
    for t in tasks {
        if !only.is_empty() && !only.contains(&t.spec.id) {
            continue;
        }
        if t.state != TaskState::Done || t.patch.is_none() {
            continue;
        }
        match unverified(t, verified_only) {
            Some(why) => out.push(Applied {
                task: t.spec.id.clone(),
                path: t.spec.path.clone(),
                skipped: Some(why),
            }),
            None => chosen.push(t),
        }
    }
    chosen.sort_by(|a, b| (&a.spec.path, a.spec.line).cmp(&(&b.spec.path, b.spec.line)));
    for group in chosen.chunk_by(|a, b| a.spec.path == b.spec.path) {
        let results = apply_file(&root, &base, group);
        out.extend(group.iter().zip(results).map(|(t, r)| Applied {
            task: t.spec.id.clone(),
            path: t.spec.path.clone(),
            skipped: r.err(),
        }));
    }
    Ok(out)
}

/// Why a done patch is not taken in a run that verifies (None when it is).
pub(crate) fn unverified(t: &TaskRecord, verified_only: bool) -> Option<String> {
    let verified = t.outcome.verified.as_deref().unwrap_or("skipped");
    (verified_only && verified != "passed").then(|| {
        format!(
            "not verified ({verified}): the run verifies, and only patches that passed the \
             check are taken; pass --unverified to take it anyway"
        )
    })
}

/// The stack's edits for tasks of one file: a task whose scanned content differs from the
/// first one's (a damaged or rewritten task) is refused here.
pub(crate) fn edits_of<'a>(group: &[&'a TaskRecord]) -> Vec<Result<Edit<'a>, String>> {
    let hash = group.first().map(|t| t.spec.content_hash.as_str());
    group
        .iter()
        .map(|t| {
            if Some(t.spec.content_hash.as_str()) != hash {
                return Err("the task's scanned content differs from the other tasks of its file (a damaged task)".into());
            }
            Ok(Edit {
                task: &t.spec.id,
                block: t.spec.block_start..t.spec.block_end,
                patch: t.patch.as_deref().unwrap_or_default(),
            })
        })
        .collect()
}

/// Applies the patches of one file (`group`, in line order, all with the same path), one
/// result per task.
fn apply_file(root: &Path, base: &Path, group: &[&TaskRecord]) -> Vec<Result<(), String>> {
    let Some(first) = group.first() else {
        return Vec::new();
    };
    let path = &first.spec.path;
    let scanned_hash = &first.spec.content_hash;
    let checked = (|| {
        let rel = base.join(path);
        let rel = rel
            .to_str()
            .ok_or("the task's path is not UTF-8")?
            .to_string();
        let file = checked_file(root, &rel)?;
        let content = std::fs::read_to_string(&file).map_err(|e| format!("cannot read it: {e}"))?;
        committed_and_clean(root, &rel, content.as_bytes())?;
        if crate::scan::sha256_hex(content.as_bytes()) != *scanned_hash {
            return Err(
                "the file changed since the scan (or its patches were applied already): scan again"
                    .to_string(),
            );
        }
        Ok((file, content))
    })();
    let (file, content) = match checked {
        Ok(x) => x,
        Err(why) => return group.iter().map(|_| Err(why.clone())).collect(),
    };
    let edits = edits_of(group);
    let valid: Vec<Edit<'_>> = edits
        .iter()
        .filter_map(|e| e.as_ref().ok().cloned())
        .collect();
    let mut steps = stack(path, &content, &valid).into_iter();
    let mut results: Vec<Result<(), String>> = Vec::new();
    let mut last = None;
    for e in &edits {
        match e {
            Err(why) => results.push(Err(why.clone())),
            Ok(_) => match steps.next() {
                Some(Ok(step)) => {
                    last = Some(step.after);
                    results.push(Ok(()));
                }
                Some(Err(why)) => results.push(Err(why)),
                None => results.push(Err("not stacked".into())),
            },
        }
    }
    if let Some(new) = last
        && let Err(why) = replace(&file, &new, scanned_hash)
    {
        for r in results.iter_mut().filter(|r| r.is_ok()) {
            *r = Err(why.clone());
        }
    }
    results
}
