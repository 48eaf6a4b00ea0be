//! The TODO scanner behind `dispatcher scan`.
//!
//! It finds tags only where a human left them for later, in comments, because every hit becomes
//! an LLM rewrite: a tag inside a string, an identifier or a URL must never be reported. For each
//! hit it records the byte range of the code an LLM may rewrite, and an id that survives edits
//! elsewhere in the file so a re-scan recognises work already queued.
//!
//! Layout: `lang` holds the language table, `lex` is one table-driven lexer that tells comments
//! from code, `tags` reads the comment text, and `block` picks the range (an indentation
//! heuristic, kept apart so syntax trees can replace it per language).

mod block;
mod lang;
mod lex;
mod syntax;
mod tags;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod syntax_tests;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::mpsc;

use ignore::overrides::{Override, OverrideBuilder};
use ignore::{DirEntry, WalkBuilder, WalkState};
use sha2::{Digest, Sha256};

pub use syntax::{SyntaxErrors, has_grammar, syntax_errors};

pub use lang::{
    BlockComment, CommentRule, Escape, LANGUAGES, Language, LineComment, StringKind, StringLiteral,
    detect_language,
};

use block::{BlockFinder, collapse_whitespace};
use tags::TagSet;

/// Tunables of one scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Tags looked for, matched in upper case (plus `@tag` in any case); lower-case entries are
    /// upper-cased. Default: TODO, FIXME, HACK, XXX, BUG.
    pub tags: Vec<String>,
    /// Larger files are generated or vendored far more often than hand-written, so they are
    /// skipped as [`SkipReason::TooLarge`]. Default: 1 MiB.
    pub max_file_bytes: u64,
    /// An LLM rewrites a small block more reliably than a long one, so larger enclosing blocks
    /// are narrowed to an inner scope or a window around the tag. Default: 120.
    pub max_block_lines: usize,
    /// Gitignore-style globs relative to the root; when any is given, only matching files are
    /// scanned. Default: none.
    pub include: Vec<String>,
    /// Gitignore-style globs relative to the root whose files are not scanned; they win over
    /// `include`. Default: none.
    pub exclude: Vec<String>,
    /// Keep each file's text in [`FileTodos::content`] and its hash, as a run needs to store
    /// them; a plain listing turns it off so memory does not grow with the size of the files
    /// with tags, and no time goes into hashing them. Default: true.
    pub keep_content: bool,
    /// Take each tag's block and symbol from a syntax tree where the language has a grammar
    /// (see [`has_grammar`]), the indentation heuristic elsewhere. It parses every file with a
    /// tag, several times the cost of the rest of the scan, so a plain listing turns it off;
    /// ids do not depend on it. Default: true.
    pub syntax_context: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            tags: ["TODO", "FIXME", "HACK", "XXX", "BUG"]
                .map(String::from)
                .to_vec(),
            max_file_bytes: 1 << 20,
            max_block_lines: 120,
            include: Vec::new(),
            exclude: Vec::new(),
            keep_content: true,
            syntax_context: true,
        }
    }
}

/// Half-open byte range into the file content as read (BOM included in the offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ByteRange {
    pub start: usize,
    pub end: usize,
}

/// One tag found in a comment, with the block an LLM may rewrite to resolve it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Todo {
    /// Survives edits above the tag, reindenting and moving its function; see [`scan_source`].
    pub id: String,
    /// Relative to the scan root with `/` separators, so ids match across machines.
    pub path: String,
    /// 1-based line of the tag.
    pub line: usize,
    /// Canonical upper case, whatever case an `@todo` used.
    pub tag: String,
    /// What follows the tag, its `(author)` and separator.
    pub text: String,
    pub author: Option<String>,
    /// Issue reference from the tag: `#123` in `TODO(#123)` or `TODO #123:`, or a tracker key
    /// such as `GH-12` / `ABC-123` in the parentheses.
    pub issue: Option<String>,
    pub language: String,
    /// The chosen scope's header, whitespace-collapsed; `None` when the block is only a window
    /// around the tag, which tells the prompt it is not a complete unit.
    pub symbol: Option<String>,
    /// Starts at a line start and ends after a `\n` (or at EOF), so a splice keeps line
    /// structure.
    pub block: ByteRange,
    /// 1-based inclusive first and last line of `block`.
    pub block_lines: (usize, usize),
    /// SHA-256 of the whole file; lets a worker refuse to patch a file that changed since the
    /// scan. Empty when [`ScanOptions::keep_content`] is off, as nothing can be patched then.
    pub content_hash: String,
}

/// Why a file that looked like source was not searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    Binary,
    TooLarge,
    NotUtf8,
    Unreadable,
}

/// A file with at least one tag; the content travels along so the block ranges stay meaningful.
#[derive(Debug, Clone)]
pub struct FileTodos {
    pub path: String,
    /// The file as read; empty when [`ScanOptions::keep_content`] is off.
    pub content: String,
    /// Empty when [`ScanOptions::keep_content`] is off.
    pub content_hash: String,
    pub todos: Vec<Todo>,
}

#[derive(Debug, Default)]
pub struct ScanReport {
    /// Only files with at least one tag, sorted by path so output is deterministic despite the
    /// parallel walk.
    pub files: Vec<FileTodos>,
    /// Files whose text was searched, including those the prefilter dismissed.
    pub files_scanned: u64,
    /// Files in a known language that were not searched; files in no known language are not
    /// counted anywhere.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// A broken symlink or an unreadable directory should not cost the rest of the scan.
    pub errors: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("scan path {path} does not exist: pass a directory that holds the repository")]
    NotFound { path: String },
    #[error("scan path {path} is not a directory: pass the repository's root directory")]
    NotADirectory { path: String },
    #[error(
        "bad {flag} glob {glob:?}: {reason}; use gitignore syntax relative to the scan root, \
         such as `src/**` or `*.rs`"
    )]
    BadGlob {
        flag: &'static str,
        glob: String,
        reason: String,
    },
}

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

/// Scans one file's text. The language comes from `path` (or the shebang); an unknown language
/// yields nothing.
///
/// Ids hash the path, tag, text, enclosing symbol and the count of identical earlier tags, and
/// deliberately not the line number, so that edits elsewhere in the file keep them.
pub fn scan_source(path: &str, content: &str, opts: &ScanOptions) -> Vec<Todo> {
    let text = content.strip_prefix('\u{feff}').unwrap_or(content);
    let first_line = text.lines().next().unwrap_or("");
    let Some(lang) = detect_language(path, first_line) else {
        return Vec::new();
    };
    // No whole-file prefilter for a single file: setting it up costs more than it saves.
    scan_text(path, content, lang, &TagSet::new(&opts.tags), None, opts)
}

fn scan_text(
    path: &str,
    content: &str,
    lang: &Language,
    tags: &TagSet,
    candidates: Option<&[usize]>,
    opts: &ScanOptions,
) -> Vec<Todo> {
    let bom = if content.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let text = &content[bom..];
    let lexed = lex::lex(text, lang);
    let mut hits = Vec::new();
    let mut last_hit_line = None;
    let mut k = 0;
    // Index of the first candidate at or after the current segment.
    let mut cand = 0;
    while k < lexed.segments.len() {
        let seg = &lexed.segments[k];
        k += 1;
        if last_hit_line == Some(seg.line) {
            continue;
        }
        if let Some(cands) = candidates {
            while cands.get(cand).is_some_and(|&c| c < seg.start) {
                cand += 1;
            }
            if cands.get(cand).is_none_or(|&c| c >= seg.end) {
                continue;
            }
        }
        let Some(comment) = text.get(seg.start..seg.end) else {
            continue;
        };
        if let Some(mut found) = tags.find(comment) {
            last_hit_line = Some(seg.line);
            let tag_col = column(text, &lexed.lines, seg.line, seg.start + found.at);
            let mut prev = seg;
            while let Some(next) = lexed.segments.get(k)
                && let Some(more) = continuation(text, &lexed, prev, next, tag_col, tags)
            {
                if !more.is_empty() {
                    if !found.text.is_empty() {
                        found.text.push(' ');
                    }
                    found.text.push_str(more);
                }
                prev = next;
                k += 1;
            }
            let pos = seg.start + found.at;
            hits.push((seg.line, seg.comment_line, pos, found));
        }
    }
    if hits.is_empty() {
        return Vec::new();
    }

    // Only a run stores files and checks them against this hash; a listing skips the cost.
    let content_hash = if opts.keep_content {
        hex::encode(Sha256::digest(content.as_bytes()))
    } else {
        String::new()
    };
    let mut finder = BlockFinder::new(text, &lexed.lines, lang.labels);
    let tree = if opts.syntax_context {
        syntax::SyntaxTree::parse(lang.name, path, text)
    } else {
        None
    };
    let mut occurrences: HashMap<(String, String, String), usize> = HashMap::new();
    let mut todos = Vec::with_capacity(hits.len());
    for (line, comment_line, pos, found) in hits {
        let heuristic = finder.block(line, comment_line, opts.max_block_lines);
        let block = tree
            .as_ref()
            .and_then(|t| t.block(pos, opts.max_block_lines))
            .filter(|b| b.first <= line && line <= b.last)
            .unwrap_or_else(|| heuristic.clone());
        let (Some(first), Some(last)) = (lexed.lines.get(block.first), lexed.lines.get(block.last))
        else {
            continue;
        };
        let norm_text = collapse_whitespace(&found.text);
        // The heuristic's symbol, which every language and both settings of `syntax_context`
        // compute the same way: a listing and a run must agree on ids.
        let norm_symbol = collapse_whitespace(heuristic.symbol.as_deref().unwrap_or(""));
        let key = (found.tag.clone(), norm_text, norm_symbol);
        let seen = occurrences.entry(key.clone()).or_default();
        let id = stable_id(path, &key.0, &key.1, &key.2, *seen);
        *seen += 1;
        todos.push(Todo {
            id,
            path: path.to_string(),
            line: line + 1,
            tag: found.tag,
            text: found.text,
            author: found.author,
            issue: found.issue,
            language: lang.name.to_string(),
            symbol: block.symbol,
            block: ByteRange {
                start: bom + first.start,
                end: bom + last.next,
            },
            block_lines: (block.first + 1, block.last + 1),
            content_hash: content_hash.clone(),
        });
    }
    todos
}

/// Visual column (tabs to the next multiple of four) of byte `pos` on line `line`.
fn column(text: &str, lines: &[lex::LineInfo], line: usize, pos: usize) -> usize {
    let start = lines.get(line).map_or(0, |l| l.start);
    text.get(start..pos).map_or(0, |head| {
        head.chars().fold(0, |col, c| match c {
            '\t' => col + 4 - col % 4,
            _ => col + 1,
        })
    })
}

/// The text `next` adds to a TODO whose last line is `prev`, when it continues it: the line
/// directly below, holding only comment, of the same comment or one opened the same way
/// (`//` under `//`), carrying no tag, with its words indented deeper than the tag
/// (`# TODO: a` / `#   b`). An empty comment line ends the TODO.
fn continuation<'t>(
    text: &'t str,
    lexed: &lex::Lexed,
    prev: &lex::Segment,
    next: &lex::Segment,
    tag_col: usize,
    tags: &TagSet,
) -> Option<&'t str> {
    let prev_line = lexed.lines.get(prev.line)?;
    let next_line = lexed.lines.get(next.line)?;
    if next.line != prev.line + 1 || prev.end != prev_line.end || !next_line.is_comment_only() {
        return None;
    }
    let same_comment = next.comment_line == prev.comment_line && next.comment_line < next.line;
    if !same_comment {
        // A new comment: it must open the line and use the same opener as the one above.
        let opener = |line: &lex::LineInfo, seg: &lex::Segment| {
            line.comment_at
                .and_then(|at| text.get(at..seg.start))
                .map(str::trim)
        };
        let (Some(a), Some(b)) = (opener(prev_line, prev), opener(next_line, next)) else {
            return None;
        };
        if a != b || next.comment_line != next.line {
            return None;
        }
        let before = text.get(next_line.start..next_line.comment_at?)?;
        if !before.trim().is_empty() {
            return None;
        }
    }
    let body = text.get(next.start..next.end)?;
    let words = body.trim_start_matches([' ', '\t', '*', '/', '!', '#', ';', '%']);
    let words_trimmed = words.trim_end();
    if words_trimmed.is_empty() || tags.find(body).is_some() {
        return None;
    }
    let at = next.start + (body.len() - words.len());
    if column(text, &lexed.lines, next.line, at) <= tag_col {
        return None;
    }
    Some(words_trimmed)
}

fn stable_id(path: &str, tag: &str, text: &str, symbol: &str, occurrence: usize) -> String {
    let mut hasher = Sha256::new();
    for part in [path, tag, text, symbol] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher.update(occurrence.to_string().as_bytes());
    let mut id = hex::encode(hasher.finalize());
    id.truncate(16);
    id
}
