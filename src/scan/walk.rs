//! Finding and reading the files: ripgrep's walker (`.gitignore` even outside git, `.ignore`,
//! hidden files skipped, symlinks not followed) in parallel, a NUL sniff for binaries, a size
//! bound, and a whole-file prefilter before any lexing.

use std::io::Read;
use std::path::Path;
use std::sync::mpsc;

use ignore::overrides::{Override, OverrideBuilder};
use ignore::{DirEntry, WalkBuilder, WalkState};

use super::lang::detect_language;
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

enum Outcome {
    Searched(Option<FileTodos>),
    Skipped(SkipReason),
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
    let (tx, rx) = mpsc::channel::<Outcome>();
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
        .run(|| {
            let tx = tx.clone();
            let tags = &tags;
            Box::new(move |entry| {
                let outcome = match entry {
                    Ok(entry) => visit(root, &entry, tags, opts),
                    Err(err) => Some(Outcome::WalkError(err.to_string())),
                };
                if let Some(outcome) = outcome {
                    // The receiver outlives the walk; a failed send cannot happen.
                    let _ = tx.send(outcome);
                }
                WalkState::Continue
            })
        });
    drop(tx);

    let mut report = ScanReport::default();
    for outcome in rx {
        match outcome {
            Outcome::Searched(file) => {
                report.files_scanned += 1;
                report.files.extend(file);
            }
            Outcome::Skipped(reason) => *report.skipped.entry(reason).or_default() += 1,
            Outcome::WalkError(err) => report.errors.push(err),
        }
    }
    report.files.sort_by(|a, b| a.path.cmp(&b.path));
    report.errors.sort();
    Ok(report)
}

fn visit(root: &Path, entry: &DirEntry, tags: &TagSet, opts: &ScanOptions) -> Option<Outcome> {
    if !entry.file_type().is_some_and(|t| t.is_file()) {
        return None;
    }
    let path = entry.path();
    let rel = relative_path(root, path);
    let lang = match detect_language(&rel, "") {
        Some(lang) => lang,
        None => detect_language(&rel, &first_line_of(path)?)?,
    };
    // Size from the open file, not the path: one path lookup per file instead of three (a stat
    // by the walker's entry and one inside `fs::read`), which is most of the kernel's share.
    let Ok(mut file) = std::fs::File::open(path) else {
        return Some(Outcome::Skipped(SkipReason::Unreadable));
    };
    let Ok(meta) = file.metadata() else {
        return Some(Outcome::Skipped(SkipReason::Unreadable));
    };
    if meta.len() > opts.max_file_bytes {
        return Some(Outcome::Skipped(SkipReason::TooLarge));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    if file.read_to_end(&mut bytes).is_err() {
        return Some(Outcome::Skipped(SkipReason::Unreadable));
    }
    // The file may have grown since the metadata was read.
    if bytes.len() as u64 > opts.max_file_bytes {
        return Some(Outcome::Skipped(SkipReason::TooLarge));
    }
    let sniff = &bytes[..bytes.len().min(BINARY_SNIFF_BYTES)];
    if memchr::memchr(0, sniff).is_some() {
        return Some(Outcome::Skipped(SkipReason::Binary));
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

/// The first line of a file without a known extension, for shebang detection; `None` when it
/// cannot be read, which only means the file is not scanned.
fn first_line_of(path: &Path) -> Option<String> {
    let mut head = Vec::with_capacity(SHEBANG_SNIFF_BYTES);
    std::fs::File::open(path)
        .ok()?
        .take(SHEBANG_SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .ok()?;
    if !head.starts_with(b"#!") && !head.starts_with(b"\xef\xbb\xbf#!") {
        return None;
    }
    let end = memchr::memchr(b'\n', &head).unwrap_or(head.len());
    Some(String::from_utf8_lossy(&head[..end]).into_owned())
}

fn relative_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}
