//! Finding and reading the files: ripgrep's walker (`.gitignore` even outside git, `.ignore`,
//! hidden files skipped, symlinks not followed) in parallel, a NUL sniff for binaries, a size
//! bound, and a whole-file prefilter before any lexing.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use ignore::overrides::{Override, OverrideBuilder};
use ignore::{DirEntry, ParallelVisitor, ParallelVisitorBuilder, WalkBuilder, WalkState};

use super::lang::{detect_language, extension, has_comments, refine};
use super::tags::TagSet;
use super::text::scan_text;
use super::{FileTodos, ScanError, ScanOptions, ScanReport, SkipReason};

/// The `include` / `exclude` globs as one override matcher rooted at `root`: includes are
/// whitelist globs, excludes are added after them negated, so they win.
pub fn build_overrides(
    root: &Path,
    include: &[String],
    exclude: &[String],
) -> Result<Override, ScanError> {
    let mut builder = OverrideBuilder::new(root);
    let globs = include
        .iter()
        .map(|g| ("--include", g, g.clone()))
        .chain(exclude.iter().map(|g| ("--exclude", g, format!("!{g}"))));
    for (flag, glob, pattern) in globs {
        let bad = |reason: String| ScanError::BadGlob {
            flag,
            glob: glob.clone(),
            reason,
        };
        if glob.trim().is_empty() {
            return Err(bad("it is empty".into()));
        }
        if flag == "--exclude" && glob.starts_with('!') {
            return Err(bad(
                "an exclude glob cannot start with `!`: pass it to --include instead".into(),
            ));
        }
        builder.add(&pattern).map_err(|e| bad(e.to_string()))?;
    }
    builder.build().map_err(|e| ScanError::BadGlob {
        flag: "--include/--exclude",
        glob: include
            .iter()
            .chain(exclude)
            .cloned()
            .collect::<Vec<_>>()
            .join(" "),
        reason: e.to_string(),
    })
}

/// Bytes searched for a NUL, as git and ripgrep do, to call a file binary.
const BINARY_SNIFF_BYTES: usize = 8 * 1024;
/// Enough for any sensible shebang line.
const SHEBANG_SNIFF_BYTES: usize = 256;
/// The most reserved up front for the rest of a file; a larger one grows as it is read.
const PREALLOC_MAX_BYTES: u64 = 16 << 20;

#[derive(Debug)]
pub(super) enum Outcome {
    Searched(Option<FileTodos>),
    Skipped(SkipReason),
    /// In no language either table knows: its extension in lower case, or "" for none.
    Unknown(String),
    WalkError(String),
}

/// Walks `root` the way ripgrep does (`.gitignore` even outside git, `.ignore`, hidden files
/// skipped, symlinks not followed) and scans every file in a known language.
pub fn scan_path(root: &Path, opts: &ScanOptions) -> Result<ScanReport, ScanError> {
    let shown = root.display().to_string();
    match std::fs::metadata(root) {
        Err(_) if !root.exists() => return Err(ScanError::NotFound { path: shown }),
        Ok(meta) if !meta.is_dir() => return Err(ScanError::NotADirectory { path: shown }),
        _ => {}
    }
    let overrides = build_overrides(root, &opts.include, &opts.exclude)?;
    let tags = TagSet::new(&opts.tags);
    // Each walker thread keeps its own tally and hands it over once, when it ends: no message
    // and no lock per file (a channel send per file grew with the tree and was drained by one
    // thread at the end).
    let parts: Mutex<Vec<ScanReport>> = Mutex::new(Vec::new());
    let mut builder = Tally {
        root,
        tags: &tags,
        opts,
        parts: &parts,
    };
    WalkBuilder::new(root)
        .overrides(overrides)
        .hidden(true)
        .ignore(true)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(true)
        .parents(true)
        .require_git(false)
        .follow_links(false)
        .build_parallel()
        .visit(&mut builder);

    let mut report = ScanReport::default();
    for part in parts.into_inner().unwrap_or_else(|e| e.into_inner()) {
        report.files_scanned += part.files_scanned;
        report.files.extend(part.files);
        for (k, v) in part.skipped {
            *report.skipped.entry(k).or_default() += v;
        }
        for (k, v) in part.unknown_language {
            *report.unknown_language.entry(k).or_default() += v;
        }
        report.errors.extend(part.errors);
    }
    report.files.sort_by(|a, b| a.path.cmp(&b.path));
    report.errors.sort();
    Ok(report)
}

/// Makes one [`ThreadTally`] per walker thread.
struct Tally<'s> {
    root: &'s Path,
    tags: &'s TagSet,
    opts: &'s ScanOptions,
    parts: &'s Mutex<Vec<ScanReport>>,
}

impl<'s> ParallelVisitorBuilder<'s> for Tally<'s> {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(ThreadTally {
            root: self.root,
            tags: self.tags,
            opts: self.opts,
            parts: self.parts,
            report: ScanReport::default(),
        })
    }
}

/// One walker thread's share of the report, handed over when the thread is done with it.
struct ThreadTally<'s> {
    root: &'s Path,
    tags: &'s TagSet,
    opts: &'s ScanOptions,
    parts: &'s Mutex<Vec<ScanReport>>,
    report: ScanReport,
}

impl ParallelVisitor for ThreadTally<'_> {
    fn visit(&mut self, entry: Result<DirEntry, ignore::Error>) -> WalkState {
        let outcome = match entry {
            Ok(entry) => visit(self.root, &entry, self.tags, self.opts),
            Err(err) => Some(Outcome::WalkError(err.to_string())),
        };
        let r = &mut self.report;
        match outcome {
            None => {}
            Some(Outcome::Searched(file)) => {
                r.files_scanned += 1;
                r.files.extend(file);
            }
            Some(Outcome::Skipped(reason)) => *r.skipped.entry(reason).or_default() += 1,
            Some(Outcome::Unknown(ext)) => *r.unknown_language.entry(ext).or_default() += 1,
            Some(Outcome::WalkError(err)) => r.errors.push(err),
        }
        WalkState::Continue
    }
}

impl Drop for ThreadTally<'_> {
    fn drop(&mut self) {
        let part = std::mem::take(&mut self.report);
        self.parts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(part);
    }
}

pub(super) fn visit(
    root: &Path,
    entry: &DirEntry,
    tags: &TagSet,
    opts: &ScanOptions,
) -> Option<Outcome> {
    if !entry.file_type().is_some_and(|t| t.is_file()) {
        return None;
    }
    let path = entry.path();
    let (rel, exact) = relative_path(root, path);
    let by_name = detect_language(&rel, "");
    let ext = extension(rel.rsplit('/').next().unwrap_or(&rel));
    match by_name {
        // JSON, plain text: known, and no comment can be in them.
        Some(lang) if !has_comments(lang) => return None,
        // Only a file without an extension is opened for a shebang (`bin/tool`); a `.png` or
        // a `.lock` is not read at all.
        None if ext.is_some() => {
            return Some(Outcome::Unknown(
                ext.unwrap_or_default().to_ascii_lowercase(),
            ));
        }
        _ => {}
    }
    // A task names its file by `rel`: a name it cannot hold exactly would be patched under
    // another name, or collide with one.
    if by_name.is_some() && !exact {
        return Some(Outcome::Skipped(SkipReason::BadPath));
    }
    // Only a file in a known language counts as skipped; the others are not ours to count.
    let skip = |reason| by_name.map(|_| Outcome::Skipped(reason));
    // One open per file: the size from the open file (no second path lookup), and the head,
    // which tells binaries and, for a file without a known name, its shebang.
    let (file, len) = match open_regular(path) {
        Ok(opened) => opened,
        Err(reason) => return skip(reason),
    };
    let mut file = file;
    // The head, in one read for most files: asking for one byte more than the open file's
    // size, a read that returns exactly that size has seen the whole file, and the read that
    // would return 0 is saved (a third of the reads on a tree of small files).
    let first = len.saturating_add(1).min(BINARY_SNIFF_BYTES as u64) as usize;
    let mut bytes = vec![0u8; first];
    let n = loop {
        match file.read(&mut bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return skip(SkipReason::Unreadable),
            Ok(n) => break n,
        }
    };
    bytes.truncate(n);
    let whole = n as u64 == len && n < first;
    let lang = match by_name {
        Some(lang) => lang,
        None => {
            let by_shebang = shebang_line(&bytes).and_then(|l| detect_language(&rel, &l));
            let Some(lang) = by_shebang.filter(|l| has_comments(l)) else {
                return Some(Outcome::Unknown(String::new()));
            };
            if !exact {
                return Some(Outcome::Skipped(SkipReason::BadPath));
            }
            lang
        }
    };
    // `.m`: Objective-C or MATLAB, told apart by the head.
    let lang = refine(lang, &bytes);
    if len > opts.max_file_bytes {
        return Some(Outcome::Skipped(SkipReason::TooLarge));
    }
    // Before reading on, so that a binary (a sparse file is all NULs) costs one read.
    if memchr::memchr(0, &bytes).is_some() {
        return Some(Outcome::Skipped(SkipReason::Binary));
    }
    if !whole {
        // At most one byte more than allowed, whatever the metadata said: the file may have
        // grown since, and a bound of a terabyte must not become an allocation of one.
        let room = opts
            .max_file_bytes
            .saturating_add(1)
            .saturating_sub(bytes.len() as u64);
        bytes.reserve(len.min(opts.max_file_bytes).min(PREALLOC_MAX_BYTES) as usize);
        if file.take(room).read_to_end(&mut bytes).is_err() {
            return Some(Outcome::Skipped(SkipReason::Unreadable));
        }
    }
    if bytes.len() as u64 > opts.max_file_bytes {
        return Some(Outcome::Skipped(SkipReason::TooLarge));
    }
    // Before the UTF-8 check, which is a full pass too: most files mention no tag at all (a
    // file in another encoding without a tag counts as searched).
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    let candidates = tags.candidates(text);
    if candidates.as_ref().is_some_and(Vec::is_empty) {
        return Some(Outcome::Searched(None));
    }
    let Ok(content) = String::from_utf8(bytes) else {
        return Some(Outcome::Skipped(SkipReason::NotUtf8));
    };
    let todos = scan_text(&rel, &content, lang, tags, candidates.as_deref(), opts);
    let file = todos
        .first()
        .map(|t| t.content_hash.clone())
        .map(|hash| FileTodos {
            path: rel,
            content: if opts.keep_content {
                content
            } else {
                String::new()
            },
            content_hash: hash,
            todos,
        });
    Some(Outcome::Searched(file))
}

/// Opens a listed file as it is now, with its size: the listing may be stale, and the path
/// may have become a FIFO (whose plain open waits for a writer forever), a device or a
/// symbolic link since. Nothing blocks in `open` (`O_NONBLOCK`), a link is not followed
/// (`O_NOFOLLOW`), a terminal does not become ours (`O_NOCTTY`), and the type is checked on the
/// open handle: anything but a regular file is [`SkipReason::SpecialFile`].
pub(super) fn open_regular(path: &Path) -> Result<(File, u64), SkipReason> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(path);
    let file = match file {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(SkipReason::SpecialFile),
        Err(_) => return Err(SkipReason::Unreadable),
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok((file, meta.len())),
        Ok(_) => Err(SkipReason::SpecialFile),
        Err(_) => Err(SkipReason::Unreadable),
    }
}

/// The shebang line at the start of `head` (a file without a known extension), or `None`.
fn shebang_line(head: &[u8]) -> Option<String> {
    let head = &head[..head.len().min(SHEBANG_SNIFF_BYTES)];
    if !head.starts_with(b"#!") && !head.starts_with(b"\xef\xbb\xbf#!") {
        return None;
    }
    let end = memchr::memchr(b'\n', head).unwrap_or(head.len());
    Some(String::from_utf8_lossy(&head[..end]).into_owned())
}

/// `path` relative to `root`, `/`-separated, and whether that string names the file exactly:
/// every component valid UTF-8 (else the string is lossy, and two names can become one) and
/// free of control characters (a newline or a tab would break a patch's header line).
fn relative_path(root: &Path, path: &Path) -> (String, bool) {
    let rel = path.strip_prefix(root).unwrap_or(path);
    // Nearly every path: UTF-8 already, `/`-separated, nothing to clean (one allocation).
    if let Some(s) = rel.to_str()
        && !s.contains(char::is_control)
        && !s.starts_with(['.', '/'])
        && !s.contains("//")
        && !s.contains("/./")
        && !s.ends_with('/')
    {
        return (s.to_owned(), true);
    }
    let mut exact = true;
    let parts: Vec<String> = rel
        .components()
        .map(|c| {
            let part = c.as_os_str().to_string_lossy();
            exact &= matches!(part, Cow::Borrowed(_)) && !part.contains(char::is_control);
            part.into_owned()
        })
        .collect();
    (parts.join("/"), exact)
}
