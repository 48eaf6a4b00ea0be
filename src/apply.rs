//! `dispatcher apply`: a run's done patches written into a git work tree, only where nothing
//! else has changed the file since the scan, so every change can be reviewed and undone with
//! git.

use std::path::Path;

use serde::Serialize;

use crate::queue::{TaskRecord, TaskState};

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
        "{repo} is not a git work tree: apply writes only where every change can be reviewed and undone (git diff, git checkout)"
    )]
    NotGit { repo: String },
    #[error("git failed in {repo}: {detail}")]
    Git { repo: String, detail: String },
}

fn git_out(repo: &Path, args: &[&str]) -> Result<String, ApplyError> {
    let o = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| ApplyError::Git {
            repo: repo.display().to_string(),
            detail: e.to_string(),
        })?;
    if !o.status.success() {
        return Err(ApplyError::Git {
            repo: repo.display().to_string(),
            detail: String::from_utf8_lossy(&o.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Writes done patches into the working tree at `repo`. A file is touched only when its
/// content is still exactly what was scanned (so a patch never lands on other work, including
/// an earlier patch to the same file) and git shows no uncommitted change to it. Each write
/// replaces the file atomically.
pub fn apply_patches(
    repo: &Path,
    tasks: &[TaskRecord],
    only: &[String],
) -> Result<Vec<Applied>, ApplyError> {
    let inside =
        git_out(repo, &["rev-parse", "--is-inside-work-tree"]).map_err(|_| ApplyError::NotGit {
            repo: repo.display().to_string(),
        })?;
    if inside.trim() != "true" {
        return Err(ApplyError::NotGit {
            repo: repo.display().to_string(),
        });
    }
    let mut out = Vec::new();
    let mut touched: std::collections::HashSet<String> = std::collections::HashSet::new();
    for t in tasks {
        if !only.is_empty() && !only.contains(&t.spec.id) {
            continue;
        }
        let (TaskState::Done, Some(patch)) = (t.state, &t.patch) else {
            continue;
        };
        let path = &t.spec.path;
        let skip = |why: String| Applied {
            task: t.spec.id.clone(),
            path: path.clone(),
            skipped: Some(why),
        };
        let file = repo.join(path);
        if touched.contains(path) {
            out.push(skip(
                "another patch of this run was just applied to this file; commit, then `dispatcher run` again for the rest"
                    .into(),
            ));
            continue;
        }
        let dirty = git_out(repo, &["status", "--porcelain", "--", path])?;
        if !dirty.trim().is_empty() {
            out.push(skip("the file has uncommitted changes".into()));
            continue;
        }
        let content = match std::fs::read_to_string(&file) {
            Ok(c) => c,
            Err(e) => {
                out.push(skip(format!("cannot read it: {e}")));
                continue;
            }
        };
        let hash = crate::scan::sha256_hex(content.as_bytes());
        if hash != t.spec.content_hash {
            out.push(skip(
                "the file changed since the scan (or another patch to it was applied): scan again"
                    .into(),
            ));
            continue;
        }
        let new = match crate::patch::apply_unified(&content, patch) {
            Ok(n) => n,
            Err(e) => {
                out.push(skip(format!("the patch does not apply: {e}")));
                continue;
            }
        };
        let tmp = file.with_extension(format!("tars-{}.tmp", &t.spec.id));
        let write = std::fs::write(&tmp, &new).and_then(|()| {
            if let Ok(meta) = std::fs::metadata(&file) {
                std::fs::set_permissions(&tmp, meta.permissions())?;
            }
            std::fs::rename(&tmp, &file)
        });
        match write {
            Ok(()) => {
                touched.insert(path.clone());
                out.push(Applied {
                    task: t.spec.id.clone(),
                    path: path.clone(),
                    skipped: None,
                })
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                out.push(skip(format!("cannot write it: {e}")));
            }
        }
    }
    Ok(out)
}
