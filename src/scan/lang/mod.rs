//! The language table. Everything the lexer knows about a language is data here, so adding a
//! language means adding a row, not writing another lexer.
//!
//! The types and [`detect_language`] are here; the rows are in `table`.

mod table;

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
    pub name: &'static str,
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
    /// `name:` alone on a line is a goto label or an access specifier (`public:`), outdented by
    /// convention; the block finder must not read it as the end or start of a scope. Off for
    /// Python and YAML, where that same line does open a scope.
    pub labels: bool,
}

/// Language by file name or extension, else by shebang; extension wins because a shebang in a
/// `.py` file cannot make it anything but Python.
pub fn detect_language(path: &str, first_line: &str) -> Option<&'static Language> {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    if let Some(lang) = LANGUAGES.iter().find(|l| l.file_names.contains(&name)) {
        return Some(lang);
    }
    if let Some((stem, ext)) = name.rsplit_once('.')
        && !stem.is_empty()
    {
        let ext = ext.to_ascii_lowercase();
        if let Some(lang) = LANGUAGES
            .iter()
            .find(|l| l.extensions.contains(&ext.as_str()))
        {
            return Some(lang);
        }
    }
    // `Dockerfile.dev`, `Makefile.inc`: the convention is in the stem.
    if let Some((stem, _)) = name.split_once('.')
        && let Some(lang) = LANGUAGES.iter().find(|l| l.file_names.contains(&stem))
    {
        return Some(lang);
    }
    let interpreter = shebang_interpreter(first_line)?;
    LANGUAGES
        .iter()
        .find(|l| l.interpreters.contains(&interpreter))
}

/// `#!/usr/bin/env -S python3.11 -u` -> `python`.
fn shebang_interpreter(first_line: &str) -> Option<&str> {
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
