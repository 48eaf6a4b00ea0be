//! The TODO scanner behind `dispatcher scan`.
//!
//! It finds tags only where a human left them for later, in comments, because every hit becomes
//! an LLM rewrite: a tag inside a string, an identifier or a URL must never be reported. For each
//! hit it records the byte range of the code an LLM may rewrite, and an id that survives edits
//! elsewhere in the file so a re-scan recognises work already queued.
//!
//! Layout: `walk` finds the files (ripgrep's walker) and reads them, `text` finds the tags in
//! one file's text and makes them [`Todo`]s; under it, `lang/` holds the language table (the
//! types and [`detect_language`] in its `mod.rs`, the rows in `table`), `lex` is one
//! table-driven lexer that tells comments from code, `tags` reads the comment text, `block`
//! picks the range with an indentation heuristic, and `syntax/` picks it from a tree-sitter
//! tree for the languages that have a grammar (`grammar` has the per-language tables, `unit`
//! finds the block in a tree, `errors` counts syntax errors for the patch gate, `tests` checks
//! the trees). The other tests are in `tests/`, one file per topic (language families, tags,
//! blocks, ids, edge inputs, detection, the walk), with the helpers they share in its `mod.rs`.

mod block;
mod lang;
mod lex;
mod syntax;
mod tags;
mod text;
mod walk;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use syntax::{Definition, Definitions, SyntaxErrors, definitions, has_grammar, syntax_errors};

pub use lang::{
    BlockComment, CommentRule, DATABASE, Escape, LANGUAGES, Language, LanguageInfo, LineComment,
    StringKind, StringLiteral, db, detect_language, has_comments, language_list,
};

pub use text::scan_source;
pub use walk::{build_overrides, scan_path};

/// Lower-case hex SHA-256 of `bytes`: a file's content hash, and the base of ids and block
/// hashes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Tunables of one scan; also the `[scan]` section of the configuration (the last two fields
/// are not configuration: each command sets them).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    #[serde(skip)]
    pub keep_content: bool,
    /// Take each tag's block and symbol from a syntax tree where the language has a grammar
    /// (see [`has_grammar`]), the indentation heuristic elsewhere. It parses every file with a
    /// tag, several times the cost of the rest of the scan, so a plain listing turns it off;
    /// ids do not depend on it. Default: true.
    #[serde(skip)]
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
    /// Not in `scan --json`, which lists TODOs rather than file states.
    #[serde(skip_serializing, default)]
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
    /// Not a regular file when opened (a FIFO, a device, a socket or a symbolic link swapped
    /// in after the listing).
    SpecialFile,
    /// A path that a task could not name exactly: not valid UTF-8, or with a control
    /// character (a newline, a tab) in it.
    BadPath,
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
    /// Files in a known language that were not searched (those in no known language are in
    /// `unknown_language`).
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Files in no language the scanner knows, by extension in lower case ("" for none): what
    /// a scan could not look into, so a user sees it.
    pub unknown_language: BTreeMap<String, u64>,
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
