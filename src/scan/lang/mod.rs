//! The language table. Everything the lexer knows about a language is data here, so adding a
//! language means adding a row, not writing another lexer.
//!
//! The types and [`detect_language`] are here; the rows are in `table`.

mod db;
mod table;

pub use db::{SOURCE as DATABASE, db};

pub use table::LANGUAGES;

/// How a line-comment opener must be placed to count, for languages where the opener character
/// also has a non-comment meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentRule {
    /// The opener always starts a comment outside strings.
    Anywhere,
    /// Shell-style: only at line start or after whitespace or `;`, so `$#` and `${#x}` stay code.
    WordStart,
    /// Not when the previous byte is one of these (Perl's `$#array`).
    NotAfter(&'static [u8]),
    /// Not when the next byte is one of these (PHP 8 attributes `#[...]`).
    NotBefore(&'static [u8]),
    /// Only where a command starts: first on its line (after whitespace), or after one of
    /// these separators (Tcl's `;`, Vim script's `|`, batch's `&`). Elsewhere the opener is an
    /// argument (`set url http://x/#y`, `echo "..."`).
    CommandStart(&'static [u8]),
    /// Vim script's `"`: a comment where a command starts, and after a command when no other
    /// `"` follows on the line (`set ts=4  " comment`); else it opens a string.
    CommandStartOrUnclosed(&'static [u8]),
}

/// A line comment opener and the rule deciding when it really opens a comment.
#[derive(Debug, Clone, Copy)]
pub struct LineComment {
    pub open: &'static str,
    pub rule: CommentRule,
}

/// A block comment; `nests` for Rust, Swift, Kotlin, Scala and Haskell where an inner opener must
/// be matched before the outer closer counts; `line_start` for Ruby's `=begin`/`=end` and Perl's
/// POD, which only count at column 0.
#[derive(Debug, Clone, Copy)]
pub struct BlockComment {
    pub open: &'static str,
    pub close: &'static str,
    pub nests: bool,
    pub line_start: bool,
    /// Not when the opener is followed by one of these: F#'s `(*)` is the multiplication
    /// operator, not `(*` opening a comment.
    pub not_before: &'static [u8],
}

/// Whether a backslash protects the next byte inside a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    Backslash,
    /// Raw strings and languages that double the quote instead (`''` in SQL): doubling needs no
    /// special case because closing and reopening lands in the same place.
    None,
}

/// Plain strings run to their closer; char literals are only taken when they are complete and
/// short, because the same quote is also a Rust lifetime, a Haskell prime or a C++ digit separator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringKind {
    Plain,
    Char,
    /// Python's triple-quoted string: documentation, searched like a comment, when it is a
    /// statement of its own (the docstring of a module, class or function, or a bare string
    /// used as a multi-line comment); a plain string anywhere else (`x = """..."""`, an
    /// argument).
    Docstring,
}

/// One string literal syntax. Openers are tried in table order, so longer ones (`"""`) come first.
#[derive(Debug, Clone, Copy)]
pub struct StringLiteral {
    pub open: &'static str,
    pub close: &'static str,
    pub escape: Escape,
    /// Single-line strings end at a newline even when unterminated, which confines the damage of
    /// a quote the lexer misread (a regex, an apostrophe in YAML prose) to one line.
    pub multiline: bool,
    pub kind: StringKind,
    /// The opener does not count right after an identifier character (`don't` in YAML, `r"` in
    /// `bar"`).
    pub needs_boundary: bool,
}

/// Comment and string syntax of one language, as the lexer and block finder need it.
#[derive(Debug)]
pub struct Language {
    /// The id in tasks and output: lower case (`rust`, `cpp`, `fortranmodern`).
    pub name: &'static str,
    /// The name a person knows it by (`C++`, `FORTRAN Modern`), for `scan --languages`.
    pub display: &'static str,
    /// Lower-case extensions without the dot.
    pub extensions: &'static [&'static str],
    /// Exact file names for extension-less conventions (`Makefile`, `Dockerfile`).
    pub file_names: &'static [&'static str],
    /// Interpreter names accepted in a shebang, version suffixes stripped (`python3` -> `python`).
    pub interpreters: &'static [&'static str],
    pub line_comments: &'static [LineComment],
    pub block_comments: &'static [BlockComment],
    pub strings: &'static [StringLiteral],
    /// `<<EOF` here-documents: their bodies are prose where a stray apostrophe must not open a
    /// string that swallows the rest of the file.
    pub heredocs: bool,
    /// A backslash in code makes the next byte plain code: TeX's `\%` is a percent sign, not a
    /// comment; Lisp's and Clojure's `\"` and `#\"` are characters, not a string's start.
    pub code_escapes: bool,
    /// `name:` alone on a line is a goto label or an access specifier (`public:`), outdented by
    /// convention; the block finder must not read it as the end or start of a scope. Off for
    /// Python and YAML, where that same line does open a scope.
    pub labels: bool,
}

/// Language by file name or extension, else by shebang; extension wins because a shebang in a
/// `.py` file cannot make it anything but Python. At each step the hand-written table
/// ([`LANGUAGES`]) is asked first, then tokei's database ([`db`]).
pub fn detect_language(path: &str, first_line: &str) -> Option<&'static Language> {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    if let Some(lang) = LANGUAGES.iter().find(|l| l.file_names.contains(&name)) {
        return Some(lang);
    }
    let db = db();
    let ext = extension(name);
    if let Some(ext) = ext {
        let ext = ext.to_ascii_lowercase();
        if let Some(lang) = LANGUAGES
            .iter()
            .find(|l| l.extensions.contains(&ext.as_str()))
        {
            return Some(lang);
        }
        // `meson.build` and `CMakeLists.txt` are named files first, whatever their extension.
        if let Some(lang) = db.by_file_name(&name.to_ascii_lowercase()) {
            return Some(lang);
        }
        if let Some(lang) = db.by_extension(&ext) {
            return Some(lang);
        }
    }
    // `Dockerfile.dev`, `Makefile.inc`: the convention is in the stem.
    if let Some((stem, _)) = name.split_once('.')
        && let Some(lang) = LANGUAGES.iter().find(|l| l.file_names.contains(&stem))
    {
        return Some(lang);
    }
    if ext.is_none()
        && let Some(lang) = db.by_file_name(&name.to_ascii_lowercase())
    {
        return Some(lang);
    }
    let interpreter = shebang_interpreter(first_line)?;
    LANGUAGES
        .iter()
        .find(|l| l.interpreters.contains(&interpreter))
        .or_else(|| db.by_interpreter(interpreter))
}

/// The language of a file whose name is ambiguous, from its first bytes: a `.m` file is
/// Objective-C (as tokei's database says) unless it reads like MATLAB or Octave: a line that
/// starts with `%`, `function` or `classdef`, and none with `#import`, `#include`, `@interface`,
/// `@implementation`, `//` or `/*`.
pub fn refine(lang: &'static Language, head: &[u8]) -> &'static Language {
    const OBJC: [&str; 7] = [
        "#import",
        "#include",
        "@interface",
        "@implementation",
        "@protocol",
        "//",
        "/*",
    ];
    if lang.name != "objectivec" {
        return lang;
    }
    let mut matlab = false;
    for line in head.split(|&c| c == b'\n') {
        let t = line.trim_ascii_start();
        if OBJC.iter().any(|p| t.starts_with(p.as_bytes())) {
            return lang;
        }
        matlab |= t.starts_with(b"%") || t.starts_with(b"function") || t.starts_with(b"classdef");
    }
    match LANGUAGES.iter().find(|l| l.name == "matlab") {
        Some(m) if matlab => m,
        _ => lang,
    }
}

/// The extension of a file name, if it has one (`.bashrc` has none: it is all stem).
pub fn extension(name: &str) -> Option<&str> {
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then_some(ext)
}

/// Whether the language has any comment syntax: files of one without (JSON, plain text) are
/// known but not worth reading.
pub fn has_comments(lang: &Language) -> bool {
    !lang.line_comments.is_empty() || !lang.block_comments.is_empty()
}

/// `#!/usr/bin/env -S python3.11 -u` -> `python`.
pub(super) fn shebang_interpreter(first_line: &str) -> Option<&str> {
    let rest = first_line
        .trim_start_matches('\u{feff}')
        .strip_prefix("#!")?;
    let mut words = rest.split_whitespace();
    let mut program = basename(words.next()?);
    if program == "env" {
        program = basename(words.find(|w| !w.starts_with('-') && !w.contains('='))?);
    }
    let trimmed = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    Some(if trimmed.is_empty() { program } else { trimmed })
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// One row of `dispatcher scan --languages`: a language, where its definition comes from, and
/// what of it is in use.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LanguageInfo {
    pub name: &'static str,
    pub display: &'static str,
    /// `hand-written` or the database ([`DATABASE`]).
    pub source: &'static str,
    /// The extensions and file names this row gets (a database row loses those the
    /// hand-written table has).
    pub extensions: Vec<&'static str>,
    pub file_names: Vec<&'static str>,
    pub interpreters: Vec<&'static str>,
    pub line_comments: Vec<&'static str>,
    pub block_comments: Vec<(&'static str, &'static str)>,
    pub nested_comments: bool,
    /// False for a language without comment syntax (JSON): its files are not read.
    pub scanned: bool,
}

/// Every language known, hand-written rows first, then the database's by name; a database row
/// whose every extension, file name and interpreter the hand-written table has is left out.
pub fn language_list() -> Vec<LanguageInfo> {
    let info = |l: &'static Language, source: &'static str| LanguageInfo {
        name: l.name,
        display: l.display,
        source,
        extensions: l.extensions.to_vec(),
        file_names: l.file_names.to_vec(),
        interpreters: l.interpreters.to_vec(),
        line_comments: l.line_comments.iter().map(|c| c.open).collect(),
        block_comments: l.block_comments.iter().map(|c| (c.open, c.close)).collect(),
        nested_comments: l.block_comments.iter().any(|c| c.nests),
        scanned: has_comments(l),
    };
    let mut out: Vec<LanguageInfo> = LANGUAGES.iter().map(|l| info(l, "hand-written")).collect();
    // MATLAB gets `.m` from [`refine`], by content.
    for row in out.iter_mut().filter(|r| r.name == "matlab") {
        row.extensions.push("m");
    }
    for l in &db().languages {
        let mut row = info(l, DATABASE);
        let this = |d: &'static Language| std::ptr::eq(d, *l);
        row.extensions
            .retain(|e| detect_language(&format!("f.{e}"), "").is_some_and(this));
        row.file_names
            .retain(|f| detect_language(f, "").is_some_and(this));
        row.interpreters
            .retain(|i| detect_language("f", &format!("#!/usr/bin/env {i}")).is_some_and(this));
        if row.extensions.is_empty() && row.file_names.is_empty() && row.interpreters.is_empty() {
            continue;
        }
        out.push(row);
    }
    out
}
