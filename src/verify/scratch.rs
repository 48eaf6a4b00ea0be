//! A verifier's scratch tree: a copy of the repository as scanned, where patches are tried.
//!
//! It is made once per run and verifier: the repository's files as the scanner sees them
//! (`.gitignore` honoured, `.git` left out, so build outputs are not copied and the first
//! build is the baseline's), then each patched file is written at its scanned content (the
//! run's blob) before its patch. Build outputs (`target/`, `node_modules`, `__pycache__`)
//! stay between checks, so checks after the first are incremental. After a check the patched
//! file is put back.
//!
//! The repository is untrusted and so is what its tests do in the tree: every write goes
//! through [`Scratch::write`], which refuses a path that leaves the tree or crosses a link,
//! and replaces the file by renaming a new one over it (a link planted there is replaced,
//! never followed).

use std::io::Write;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error("cannot copy the repository {repo} into the scratch tree {dir}: {source}")]
    Copy {
        repo: String,
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the task's path {path:?} cannot be written in the scratch tree: {why} (the task in \
         Redis is damaged or hostile)"
    )]
    BadPath { path: String, why: &'static str },
    #[error("cannot write {path} in the scratch tree: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A scratch tree, ready for checks.
#[derive(Debug)]
pub struct Scratch {
    root: PathBuf,
    /// Files copied, for the log.
    pub files: usize,
}

/// Written once the copy is complete: a tree without it is half made and is made again.
const READY: &str = ".tars-scratch-ready";
/// Beside the tree while a check runs on a patched file: that file's path.
const PATCHED: &str = ".tars-scratch-patched";

/// A regular file's bytes, not through a symbolic link at its name.
fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

impl Scratch {
    /// The scratch tree at `dir` for `repo`: reused when a complete one is there (a verifier
    /// restarted mid-run keeps its build outputs), else made afresh.
    pub fn prepare(repo: &Path, dir: &Path) -> Result<Scratch, ScratchError> {
        let root = dir.join("tree");
        let err = |source| ScratchError::Copy {
            repo: repo.display().to_string(),
            dir: root.display().to_string(),
            source,
        };
        if dir.join(READY).is_file() && root.is_dir() {
            let s = Scratch { root, files: 0 };
            s.recover(repo, dir)?;
            return Ok(s);
        }
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(err)?;
        }
        std::fs::create_dir_all(&root).map_err(err)?;
        let files = copy_tree(repo, &root).map_err(err)?;
        std::fs::write(dir.join(READY), b"").map_err(err)?;
        Ok(Scratch { root, files })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The marker that names the file a check has patched, while it is patched.
    fn marker(&self) -> PathBuf {
        self.root.with_file_name(PATCHED)
    }

    /// Writes `content` (a patch applied to the scanned file) at `path`, noting first that the
    /// file is patched, so that a verifier killed mid-check leaves a tree it can mend.
    pub fn write_patched(&self, path: &str, content: &[u8]) -> Result<(), ScratchError> {
        std::fs::write(self.marker(), path).map_err(|source| ScratchError::Write {
            path: PATCHED.to_string(),
            source,
        })?;
        self.write(path, content)
    }

    /// Puts the scanned `content` back at `path` after a check, and drops the marker.
    pub fn restore(&self, path: &str, content: &[u8]) -> Result<(), ScratchError> {
        self.write(path, content)?;
        let _ = std::fs::remove_file(self.marker());
        Ok(())
    }

    /// A tree reused after a verifier died mid-check still holds that check's patch: the file
    /// the marker names is copied back from the repository (as the tree was made).
    fn recover(&self, repo: &Path, _dir: &Path) -> Result<(), ScratchError> {
        let Ok(path) = std::fs::read_to_string(self.marker()) else {
            return Ok(());
        };
        let original = read_regular(&repo.join(&path)).map_err(|source| ScratchError::Write {
            path: path.clone(),
            source,
        })?;
        self.restore(&path, &original)
    }

    /// Writes `content` at the repository-relative `path` (a task's path: `/`-separated,
    /// relative, no `..`), creating missing directories, never through a link.
    pub fn write(&self, path: &str, content: &[u8]) -> Result<(), ScratchError> {
        let bad = |why| ScratchError::BadPath {
            path: path.to_string(),
            why,
        };
        let rel = Path::new(path);
        if path.is_empty() || path.contains('\0') {
            return Err(bad("it is empty or holds a NUL byte"));
        }
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(bad("it is absolute or has `.` or `..` components"));
        }
        let werr = |source| ScratchError::Write {
            path: path.to_string(),
            source,
        };
        let mut dir = self.root.clone();
        let parts: Vec<_> = rel.components().collect();
        for c in &parts[..parts.len() - 1] {
            dir.push(c);
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(bad("a directory on its way is a symbolic link"));
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(bad("a directory on its way is a file")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir(&dir).map_err(werr)?;
                }
                Err(e) => return Err(werr(e)),
            }
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".tars-")
            .tempfile_in(&dir)
            .map_err(werr)?;
        tmp.write_all(content).map_err(werr)?;
        // Keep an executable file executable (a script the tests run).
        let target = self.root.join(rel);
        if let Ok(m) = std::fs::symlink_metadata(&target)
            && m.is_file()
        {
            let _ = tmp.as_file().set_permissions(m.permissions());
        }
        tmp.persist(&target).map_err(|e| werr(e.error))?;
        Ok(())
    }
}

/// Copies the repository's files that the scanner would walk (ignore rules honoured, hidden
/// files kept, `.git` left out) into `dest`: regular files with their permissions, and
/// symbolic links as links (after every file, so that no file is written through one).
fn copy_tree(repo: &Path, dest: &Path) -> std::io::Result<usize> {
    let walker = ignore::WalkBuilder::new(repo)
        .hidden(false)
        .parents(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    let mut files = 0;
    let mut links = Vec::new();
    for entry in walker {
        let entry = entry.map_err(std::io::Error::other)?;
        let Ok(rel) = entry.path().strip_prefix(repo) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let to = dest.join(rel);
        let Some(ft) = entry.file_type() else {
            continue;
        };
        if ft.is_dir() {
            std::fs::create_dir_all(&to)?;
        } else if ft.is_symlink() {
            links.push((std::fs::read_link(entry.path())?, to));
        } else if ft.is_file() {
            std::fs::copy(entry.path(), &to)?;
            files += 1;
        }
        // FIFOs, sockets and devices are not copied: no test needs to read one from a copy.
    }
    for (target, at) in links {
        std::os::unix::fs::symlink(target, at)?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_honours_gitignore_and_leaves_git_out() {
        let repo = tempfile::tempdir().unwrap();
        let r = repo.path();
        std::fs::create_dir_all(r.join(".git")).unwrap();
        std::fs::write(r.join(".git/config"), "x").unwrap();
        std::fs::write(r.join(".gitignore"), "target/\n").unwrap();
        std::fs::create_dir_all(r.join("target")).unwrap();
        std::fs::write(r.join("target/big"), "x").unwrap();
        std::fs::create_dir_all(r.join("src")).unwrap();
        std::fs::write(r.join("src/lib.rs"), "fn a() {}").unwrap();
        std::fs::write(r.join(".env.example"), "A=1").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let s = Scratch::prepare(r, dir.path()).unwrap();
        assert!(s.root().join("src/lib.rs").is_file());
        assert!(s.root().join(".env.example").is_file());
        assert!(!s.root().join(".git").exists());
        assert!(!s.root().join("target").exists());
        // Made once: a second prepare reuses it (build outputs survive).
        std::fs::create_dir_all(s.root().join("target")).unwrap();
        let again = Scratch::prepare(r, dir.path()).unwrap();
        assert!(again.root().join("target").is_dir());
    }

    #[test]
    fn a_tree_left_patched_by_a_killed_verifier_is_mended_on_reuse() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::write(repo.path().join("a.py"), "scanned\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let s = Scratch::prepare(repo.path(), dir.path()).unwrap();
        s.write_patched("a.py", b"patched\n").unwrap();
        // The verifier dies here, before `restore`; a new one takes the same slot.
        drop(s);
        let again = Scratch::prepare(repo.path(), dir.path()).unwrap();
        let text = std::fs::read_to_string(again.root().join("a.py")).unwrap();
        assert_eq!(text, "scanned\n");
        // After a clean check nothing is mended (the marker is gone).
        again.write_patched("a.py", b"patched\n").unwrap();
        again.restore("a.py", b"scanned\n").unwrap();
        std::fs::write(repo.path().join("a.py"), "edited since\n").unwrap();
        let third = Scratch::prepare(repo.path(), dir.path()).unwrap();
        let text = std::fs::read_to_string(third.root().join("a.py")).unwrap();
        assert_eq!(text, "scanned\n");
    }

    #[test]
    fn writes_never_leave_the_tree_or_follow_a_link() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::write(repo.path().join("a.txt"), "a").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let s = Scratch::prepare(repo.path(), dir.path()).unwrap();
        for bad in ["../x", "/etc/passwd", "a/../../x", "", "./a.txt"] {
            assert!(
                matches!(s.write(bad, b"x"), Err(ScratchError::BadPath { .. })),
                "{bad}"
            );
        }
        // A test planted links in the tree: a directory link is refused, a file link is
        // replaced by the file, and the target outside stays untouched.
        std::os::unix::fs::symlink(outside.path(), s.root().join("sub")).unwrap();
        assert!(matches!(
            s.write("sub/f.rs", b"x"),
            Err(ScratchError::BadPath { .. })
        ));
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, s.root().join("b.txt")).unwrap();
        s.write("b.txt", b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(
            std::fs::read_to_string(s.root().join("b.txt")).unwrap(),
            "new"
        );
        s.write("deep/new/file.py", b"y").unwrap();
        assert!(s.root().join("deep/new/file.py").is_file());
    }
}
