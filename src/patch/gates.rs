//! The gates an answer must pass before it counts as a patch: the TODO is gone, the block
//! still defines its name, nothing is elided, the file still parses, every definition of the
//! block is kept, and none is pasted from the rest of the file or shadows one there.

use super::Rejection;
use crate::scan;

/// Phrases that, in a short comment or one with an ellipsis, stand for code left out. Each was
/// seen in a model's answer (or an attack on this gate) standing in for code that was there.
const ELISION_MARKERS: &[&str] = &[
    "rest of",
    "existing code",
    "remains the same",
    "remain the same",
    "unchanged",
    "same as before",
    "as before",
    "omitted",
    "other code",
    "previous code",
    "same as the original",
    "same as original",
    "as in the original",
    "original version",
    "original implementation",
    "remaining lines",
    "as they were",
    "left out",
    "more lines",
    "lines omitted",
    "snip",
    "not shown",
    "elided",
];

/// A line that stands for code the model left out rather than being code: an ellipsis alone
/// (`...`, `[...]`, `(…)`), or a comment with one of [`ELISION_MARKERS`] that is short or
/// holds an ellipsis.
pub(super) fn elision_line(line: &str) -> bool {
    let t = line.trim();
    let body = t
        .trim_start_matches(['/', '#', '*', '-', '<', '!', ';', '('])
        .trim_end_matches(['/', '*', '>', '-', ')'])
        .trim();
    let bare = body.trim_matches(['[', ']', '(', ')', ' ']);
    if bare == "..." || bare == "…" || body == "// ..." {
        return true;
    }
    let is_comment = t.starts_with("//")
        || t.starts_with('#')
        || t.starts_with("/*")
        || t.starts_with("--")
        || t.starts_with('*')
        || t.starts_with("<!--");
    if !is_comment {
        return false;
    }
    let lower = body.to_lowercase();
    let marked = ELISION_MARKERS.iter().any(|m| {
        // `snip` as a word: not `snippet`.
        lower.contains(m)
            && (*m != "snip"
                || lower
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| w == "snip"))
    });
    (lower.contains("...") || lower.contains('…') || lower.len() < 60) && marked
}

/// The lines of `block` that stand in for a body that is not written: `unimplemented!()`,
/// `todo!()`, `raise NotImplementedError`, `throw new Error("not implemented")`, and `pass` as
/// the first line of a `def`'s body (a `pass` under `except:` is code). Such a line replacing
/// code that was there is a rewrite that deletes the code.
pub(super) fn stub_lines(block: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut prev = "";
    for line in block.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let l = t.to_lowercase();
        let p = prev.trim_start();
        let stub = (l == "pass" && (p.starts_with("def ") || p.starts_with("async def ")))
            || l.starts_with("unimplemented!(")
            || l.starts_with("todo!(")
            || l.starts_with("raise notimplemented")
            || ((l.starts_with("throw ") || l.starts_with("panic!(") || l.starts_with("raise "))
                && (l.contains("not implemented") || l.contains("unimplemented")));
        if stub {
            out.push(t);
        }
        prev = t;
    }
    out
}

/// Counts whole-word occurrences of `tag` (so `TODOS` or `todo_list` do not count). An empty
/// word occurs nowhere (searching for it would never advance).
pub(super) fn count_tag(text: &str, tag: &str) -> usize {
    if tag.is_empty() {
        return 0;
    }
    let bytes = text.as_bytes();
    let mut n = 0;
    let mut from = 0;
    while let Some(i) = text[from..].find(tag) {
        let at = from + i;
        let end = at + tag.len();
        let before_ok = at == 0 || !is_word(bytes[at - 1]);
        let after_ok = end >= bytes.len() || !is_word(bytes[end]);
        if before_ok && after_ok {
            n += 1;
        }
        from = end;
    }
    n
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Words after which the next word is the name a type-like definition defines.
const DEFINERS: &[&str] = &[
    "class",
    "struct",
    "impl",
    "interface",
    "enum",
    "trait",
    "type",
    "module",
    "namespace",
    "object",
];

/// Words that open a function's definition, in the languages the scanner knows.
const FUNCTION_KEYWORDS: &[&str] = &[
    "fn",
    "def",
    "function",
    "func",
    "sub",
    "proc",
    "fun",
    "defp",
    "defmodule",
];

/// The name a block's header defines (`parse_port` in `pub fn parse_port(s: &str) -> u16 {`,
/// `Cart` in `class Cart:`), so a rewrite that deletes the definition can be recognised. A
/// changed signature is fine; a vanished name is not.
pub(super) fn symbol_name(header: &str) -> Option<&str> {
    const NOT_NAMES: &[&str] = &[
        "if", "for", "while", "switch", "catch", "match", "function", "fn", "def", "func",
        "return", "with", "elif", "else", "foreach", "unless", "until", "sizeof",
    ];
    let ident = |s: &str| -> Option<(usize, usize)> {
        let end = s.len();
        let start = s
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
            .last()
            .map(|(i, _)| i)?;
        Some((start, end))
    };
    if let Some(paren) = header.find('(') {
        let before = header[..paren].trim_end();
        if let Some((a, b)) = ident(before) {
            let name = &before[a..b];
            if !NOT_NAMES.contains(&name) && !name.chars().all(|c| c.is_ascii_digit()) {
                return Some(name);
            }
        }
    }
    // Generic parameters are not the name: `impl<T> Queue<T>` defines Queue.
    let mut depth = 0usize;
    let plain: String = header
        .chars()
        .map(|c| {
            match c {
                '<' => depth += 1,
                '>' => depth = depth.saturating_sub(1),
                _ if depth == 0 => return c,
                _ => {}
            }
            ' '
        })
        .collect();
    let words: Vec<&str> = plain
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .find(|w| DEFINERS.contains(&w[0]))
        .and_then(|w| header.find(w[1]).map(|i| &header[i..i + w[1].len()]))
}

/// The name `line` defines, if it is a definition's header: [`symbol_name`] of a line that
/// has a defining keyword before the name (`fn`, `def`, `class`, `function`...) or ends as a
/// header does (`{`, `:`), so a call such as `assert add(1, 2) == 3` defines nothing.
pub(super) fn defined_name(line: &str) -> Option<&str> {
    let t = line.trim();
    let name = symbol_name(t)?;
    let at = t.find(name)?;
    let keyword_before = t[..at]
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| FUNCTION_KEYWORDS.contains(&w) || DEFINERS.contains(&w));
    let header_end = t.ends_with('{') || t.ends_with(':') || t.ends_with("=>");
    (keyword_before || header_end).then_some(name)
}

/// Whether the syntax gate applies. Not to C and C++: their grammars cannot follow macros
/// that stand in for control flow (`list_for_each_entry(p, h, n) {`) or GNU extensions
/// (`case 1 ... 9:`), so a valid rewrite in a project's own idiom would count as broken.
pub(super) fn gated_by_syntax(language: &str) -> bool {
    scan::has_grammar(language) && !matches!(language, "c" | "cpp")
}

/// Words with which a TODO asks for code to go (`remove the legacy parser`).
const REMOVAL_WORDS: &[&str] = &["remove", "delete", "drop", "get rid of", "eliminate"];

/// Whether the TODO's `text` asks to remove the definition `name`: a removal word, and the
/// name itself (its last word: `impl Queue` is named by `Queue`). Without the name a TODO such
/// as "remove the retry loop" would license deleting the function around the loop.
pub(super) fn asks_removal(text: &str, name: &str) -> bool {
    let lower = text.to_lowercase();
    let word = name.rsplit(' ').next().unwrap_or(name);
    REMOVAL_WORDS.iter().any(|w| lower.contains(w)) && count_tag(text, word) > 0
}

/// Words that may stand before a defining keyword (`pub(crate) async fn`, `export default
/// function`, `local function`, `private static def`).
const MODIFIERS: &[&str] = &[
    "pub",
    "crate",
    "super",
    "async",
    "export",
    "default",
    "static",
    "private",
    "public",
    "protected",
    "internal",
    "local",
    "abstract",
    "final",
    "override",
    "open",
    "inline",
    "extern",
    "unsafe",
    "sealed",
    "data",
    "case",
    "partial",
    "virtual",
    "suspend",
];

/// The name a line defines, for languages without a grammar (or a tree that failed): only a
/// header that opens with its defining keyword, after modifiers (`def f(`, `function f {`,
/// `sub f {`, `class Cart < Base`), or a shell function (`name() {`). Stricter than
/// [`defined_name`], which also takes `if check(x):` for a definition of `check`: comparing
/// names before and after a rewrite, such a false definition would reject an honest change of
/// the condition; and prose (`class attribute for x` in a docstring) is no header.
pub(super) fn line_definition(line: &str) -> Option<&str> {
    let t = line.trim();
    let ident_end = |s: &str| {
        s.find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let mut rest = t;
    loop {
        let end = ident_end(rest);
        let (word, after) = rest.split_at(end);
        if word.is_empty() {
            break;
        }
        if FUNCTION_KEYWORDS.contains(&word) || DEFINERS.contains(&word) {
            if !after.starts_with([' ', '\t']) {
                return None;
            }
            let mut after = after.trim_start();
            // Ruby's `def self.name`.
            if let Some(r) = after.strip_prefix("self.") {
                after = r;
            }
            let (name, tail) = after.split_at(ident_end(after));
            let tail = tail.trim_start();
            let header_tail = tail.is_empty()
                || tail.starts_with(['(', '{', ':', '<', '=', '[', '.', ';'])
                || ["extends", "implements", "inherits", "where", "do"]
                    .iter()
                    .any(|w| tail.starts_with(w));
            let named = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && !FUNCTION_KEYWORDS.contains(&name);
            return (named && header_tail).then_some(name);
        }
        if !MODIFIERS.contains(&word) {
            break;
        }
        rest = after.trim_start_matches([' ', '\t', '(', ')']);
    }
    // A shell function: `backup() {` or `backup () {`.
    let (head, rest) = t.split_once('(')?;
    let head = head.trim_end();
    let is_name = !head.is_empty()
        && head
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.'));
    let rest = rest.trim_start().strip_prefix(')')?;
    (is_name && rest.trim_start().starts_with('{')).then_some(head)
}

/// One definition as the gates compare them: from a syntax tree where the language has a
/// grammar that read the block cleanly, else from [`line_definition`] line by line.
#[derive(Debug, Clone)]
pub(super) struct Def {
    pub name: String,
    pub scope: String,
    /// `None`: never clashes with another definition of its name (see
    /// [`scan::Definition::key`]); line-found definitions clash only at the top level.
    pub key: Option<String>,
    /// Byte range in the file it was found in: the whole definition from a tree, its header
    /// line from [`line_definition`].
    pub bytes: std::ops::Range<usize>,
    pub line: usize,
    pub local: bool,
    /// Whether `bytes` hold the whole definition (a tree's), so two can be compared as text.
    pub whole: bool,
}

/// The definitions of a file before and after a rewrite, split by where they are.
pub(super) struct Split {
    /// In the original block.
    pub before: Vec<Def>,
    /// In the rewritten block.
    pub after: Vec<Def>,
    /// In the original file, outside the block (unchanged by the rewrite).
    pub outside: Vec<Def>,
}

/// A rewrite's file and block, as the definition gates need them.
pub(super) struct Rewrite<'a> {
    pub language: &'a str,
    pub path: &'a str,
    pub content: &'a str,
    pub new_content: &'a str,
    /// The block's byte range in `content`.
    pub old: std::ops::Range<usize>,
    /// The new block's byte range in `new_content`.
    pub new: std::ops::Range<usize>,
}

impl Rewrite<'_> {
    /// Through tree-sitter when both files parse cleanly where the block is; otherwise line by
    /// line, on both sides alike, so a grammar that failed on the answer cannot make a kept
    /// definition look dropped.
    pub(super) fn definitions(&self) -> Split {
        let trees = scan::definitions(self.language, self.path, self.content, self.old.clone())
            .filter(|d| d.focus_clean)
            .zip(
                scan::definitions(self.language, self.path, self.new_content, self.new.clone())
                    .filter(|d| d.focus_clean),
            );
        let inside = |r: &std::ops::Range<usize>, d: &std::ops::Range<usize>| {
            d.start >= r.start && d.start < r.end
        };
        if let Some((old, new)) = trees {
            let conv = |d: scan::Definition| Def {
                name: d.name,
                scope: d.scope,
                key: d.key,
                bytes: d.bytes,
                line: d.line,
                local: d.local,
                whole: true,
            };
            let (before, outside): (Vec<Def>, Vec<Def>) = old
                .list
                .into_iter()
                .map(conv)
                .partition(|d| inside(&self.old, &d.bytes));
            let after = new
                .list
                .into_iter()
                .map(conv)
                .filter(|d| inside(&self.new, &d.bytes))
                .collect();
            return Split {
                before,
                after,
                outside,
            };
        }
        let (before, outside): (Vec<Def>, Vec<Def>) = line_defs(self.content)
            .into_iter()
            .partition(|d| inside(&self.old, &d.bytes));
        let after = line_defs(self.new_content)
            .into_iter()
            .filter(|d| inside(&self.new, &d.bytes))
            .collect();
        Split {
            before,
            after,
            outside,
        }
    }
}

/// [`line_definition`] over every line of `text`; a header at column 0 is top level (and
/// clashes with another there), any other is scoped by what we cannot see: it never clashes.
fn line_defs(text: &str) -> Vec<Def> {
    let mut out = Vec::new();
    let mut at = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if let Some(name) = line_definition(line) {
            let top = !line.starts_with([' ', '\t']);
            out.push(Def {
                name: name.to_string(),
                scope: String::new(),
                key: top.then(String::new),
                bytes: at..at + line.len(),
                line: i + 1,
                local: false,
                whole: false,
            });
        }
        at += line.len();
    }
    out
}

/// Whether a trimmed line is a file-level header: a package clause, an import, a `use`, an
/// `#include`, a `require`. A file needs each once, at its top.
fn header_line(l: &str) -> bool {
    const STARTS: &[&str] = &[
        "package ",
        "import ",
        "import(",
        "from ",
        "use ",
        "pub use ",
        "extern crate ",
        "#include",
        "#import",
        "using ",
        "require ",
        "require(",
        "const {",
        "'use strict'",
        "\"use strict\"",
    ];
    STARTS.iter().any(|p| l.starts_with(p))
        && (!l.starts_with("from ") || l.contains(" import "))
        && (!l.starts_with("const {") || l.contains("require("))
}

/// The new block without the header lines (package, import, use, `'use strict'`) it starts
/// with that the file already has outside the block and the original block did not: a model
/// often repeats the top of the file above its rewrite, and dropping those lines leaves the
/// rewrite it meant (the file keeps its own). Blank lines among them go too.
pub(super) fn strip_leading_headers(
    content: &str,
    old: std::ops::Range<usize>,
    new_block: &str,
) -> Option<String> {
    let (before, block, after) = (
        content.get(..old.start)?,
        content.get(old.clone())?,
        content.get(old.end..)?,
    );
    let had: std::collections::HashSet<&str> = block.lines().map(str::trim).collect();
    let outside: std::collections::HashSet<&str> = before
        .lines()
        .chain(after.lines())
        .map(str::trim)
        .filter(|l| header_line(l))
        .collect();
    let mut cut = 0;
    let mut stripped = false;
    for line in new_block.split_inclusive('\n') {
        let t = line.trim();
        if t.is_empty() || (header_line(t) && outside.contains(t) && !had.contains(t)) {
            stripped |= !t.is_empty();
            cut += line.len();
        } else {
            break;
        }
    }
    (stripped && cut < new_block.len()).then(|| new_block[cut..].to_string())
}

/// A file-level header line (package, import, use, #include) of the new block that the file
/// already has outside the block, and the original block did not: the model pasted the top of
/// the file (or the context shown above the block) into its answer. Returns that line, 1-based,
/// outside the block. A header the file lacks is no paste: a rewrite may need a new import.
pub(super) fn pasted_header(
    content: &str,
    old: std::ops::Range<usize>,
    new_block: &str,
) -> Option<(String, usize)> {
    let (before, block, after) = (
        content.get(..old.start)?,
        content.get(old.clone())?,
        content.get(old.end..)?,
    );
    let had: std::collections::HashSet<&str> = block.lines().map(str::trim).collect();
    let after_line = before.lines().count() + block.lines().count() + 1;
    let outside = before
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .chain(
            after
                .lines()
                .enumerate()
                .map(|(i, l)| (after_line + i, l.trim())),
        );
    let outside: Vec<(usize, &str)> = outside.filter(|(_, l)| header_line(l)).collect();
    new_block
        .lines()
        .map(str::trim)
        .filter(|l| header_line(l) && !had.contains(l))
        .find_map(|l| {
            outside
                .iter()
                .find(|(_, o)| *o == l)
                .map(|(n, _)| (l.to_string(), *n))
        })
}

/// The comment markers a line-comment or a block comment's lines start with, by language,
/// for telling comment-only lines apart (`#` is a comment in Python, a directive in C).
fn comment_markers(language: &str) -> &'static [&'static str] {
    match language {
        "python" | "shell" | "ruby" | "perl" | "r" | "yaml" | "toml" | "make" | "cmake"
        | "dockerfile" | "elixir" | "nim" | "powershell" | "julia" | "tcl" => &["#"],
        "sql" | "lua" | "haskell" | "ada" | "elm" => &["--"],
        "lisp" | "clojure" | "scheme" | "elisp" | "asm" | "ini" => &[";"],
        "erlang" | "tex" | "latex" | "matlab" | "octave" | "prolog" => &["%"],
        "html" | "xml" | "vue" | "svelte" | "markdown" => &["<!--", "-->"],
        "vim" => &["\""],
        "fortran" => &["!"],
        _ => &["///", "//!", "//", "/*", "*/", "*"],
    }
}

/// Whether a patch changes no code: the new block's lines that are not comment-only are the
/// original's (compared without any whitespace). The TODO deleted, or reworded, or moved into
/// a comment that says it is handled: the TODO is hidden, not done, and no check of
/// existing behaviour can tell. A docstring counts as code here (it is a string).
pub(super) fn only_comments_changed(original: &str, new_block: &str, language: &str) -> bool {
    let markers = comment_markers(language);
    let code = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !markers.iter().any(|m| l.starts_with(m)))
            .map(|l| l.split_whitespace().collect())
            .collect()
    };
    let before = code(original);
    !before.is_empty() && code(new_block) == before
}

/// Lines in a run the paste check compares: at least this many consecutive non-blank lines.
const PASTE_RUN: usize = 4;

/// A run of [`PASTE_RUN`] or more consecutive non-blank lines of the new block (compared
/// trimmed, since a splice re-indents) that the file has outside the block and the original
/// block did not have: the model pasted the file, or the context shown above the block, into
/// its answer. Runs of closing braces and other short lines do not count: at least three lines
/// of the run must carry some code; nor does a run made only of lines the block had. Returns the 1-based line outside where the run starts and
/// the run's length.
pub(super) fn pasted_run(
    content: &str,
    old: std::ops::Range<usize>,
    new_block: &str,
) -> Option<(usize, usize)> {
    use std::collections::{HashMap, HashSet};
    let lines = |text: &str, first_line: usize| -> Vec<(usize, String)> {
        text.lines()
            .enumerate()
            .map(|(i, l)| (first_line + i, l.trim().to_string()))
            .filter(|(_, l)| !l.is_empty())
            .collect()
    };
    let (before, block, after) = (
        content.get(..old.start)?,
        content.get(old.clone())?,
        content.get(old.end..)?,
    );
    let after_line = before.lines().count() + block.lines().count() + 1;
    let outside = [lines(before, 1), lines(after, after_line)];
    let substantial = |w: &[(usize, String)]| {
        w.iter()
            .filter(|(_, l)| l.chars().filter(|c| c.is_alphanumeric()).count() >= 6)
            .count()
            >= 3
    };
    let key = |w: &[(usize, String)]| {
        w.iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for side in &outside {
        for w in side.windows(PASTE_RUN) {
            seen.entry(key(w)).or_insert(w[0].0);
        }
    }
    // Lines the block had, in any order: removing the TODO's line joins two runs of the
    // block into one the file may have elsewhere, which is no paste.
    let old_lines = lines(block, 1);
    let had: HashSet<String> = old_lines.windows(PASTE_RUN).map(key).collect();
    let had_line: HashSet<&str> = old_lines.iter().map(|(_, l)| l.as_str()).collect();
    let new = lines(new_block, 1);
    let mut i = 0;
    while i + PASTE_RUN <= new.len() {
        let w = &new[i..i + PASTE_RUN];
        let k = key(w);
        if substantial(w)
            && !had.contains(&k)
            && w.iter().any(|(_, l)| !had_line.contains(l.as_str()))
            && let Some(&line) = seen.get(&k)
        {
            // Report the run as far as it goes on.
            let mut len = PASTE_RUN;
            while i + len < new.len()
                && seen.contains_key(&key(&new[i + len + 1 - PASTE_RUN..=i + len]))
            {
                len += 1;
            }
            return Some((line, len));
        }
        i += 1;
    }
    None
}

/// The gates on definitions, in order: every definition the block had is still there (unless
/// the TODO asks to remove it); the block does not repeat the file around it; and a new
/// definition does not take a name the file defines elsewhere in the same scope.
pub(super) fn check_definitions(
    rw: &Rewrite<'_>,
    todo_text: &str,
    new_block: &str,
) -> Result<(), Rejection> {
    use std::collections::HashSet;
    let Split {
        before,
        after,
        outside,
    } = rw.definitions();
    // Local helpers (a closure, a nested def) are the function's own business: a rewrite may
    // inline them.
    let kept: HashSet<&str> = after.iter().map(|d| d.name.as_str()).collect();
    if let Some(d) = before
        .iter()
        .filter(|d| !d.local)
        .find(|d| !kept.contains(d.name.as_str()) && !asks_removal(todo_text, &d.name))
    {
        return Err(Rejection::DroppedSymbol {
            name: d.name.clone(),
        });
    }
    if let Some((line, lines)) = pasted_run(rw.content, rw.old.clone(), new_block) {
        return Err(Rejection::PastedContext {
            what: format!("{lines} lines"),
            line,
        });
    }
    let had: HashSet<&str> = before.iter().map(|d| d.name.as_str()).collect();
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    // A definition's node ends before the newline that ends the block.
    let old_end = rw.old.start
        + rw.content
            .get(rw.old.clone())
            .unwrap_or("")
            .trim_end()
            .len();
    for d in after.iter().filter(|d| !had.contains(d.name.as_str())) {
        // A definition of the name that holds the block, of the same kind (a Java constructor
        // is named like its class): the model wrapped its rewrite in the class (or function)
        // it was cut from.
        if let Some(o) = outside.iter().find(|o| {
            o.name == d.name
                && o.key == d.key
                && o.bytes.start <= rw.old.start
                && o.bytes.end >= old_end
        }) {
            return Err(Rejection::PastedContext {
                what: format!("the definition of `{}` around the block", d.name),
                line: o.line,
            });
        }
        if d.local || d.key.is_none() {
            continue;
        }
        if let Some(o) = outside
            .iter()
            .find(|o| !o.local && o.key == d.key && o.scope == d.scope && o.name == d.name)
        {
            let copy =
                |text: &str, r: &std::ops::Range<usize>| norm(text.get(r.clone()).unwrap_or(""));
            // Word for word the one outside: a paste; anything else: a second definition.
            return Err(
                if d.whole && copy(rw.new_content, &d.bytes) == copy(rw.content, &o.bytes) {
                    Rejection::PastedContext {
                        what: format!("the definition of `{}`", d.name),
                        line: o.line,
                    }
                } else {
                    Rejection::Shadows {
                        name: d.name.clone(),
                        line: o.line,
                    }
                },
            );
        }
    }
    Ok(())
}
