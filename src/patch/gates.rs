//! The gates an answer must pass before it counts as a patch: the TODO is gone, the block
//! still defines its name, nothing is elided, the file still parses, every definition of the
//! block is kept.

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
    /// Byte range in the file it was found in: the whole definition from a tree, its header
    /// line from [`line_definition`].
    pub bytes: std::ops::Range<usize>,
    pub local: bool,
}

/// The definitions of a block before and after a rewrite.
pub(super) struct Split {
    /// In the original block.
    pub before: Vec<Def>,
    /// In the rewritten block.
    pub after: Vec<Def>,
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
                bytes: d.bytes,
                local: d.local,
            };
            let before = old
                .list
                .into_iter()
                .map(conv)
                .filter(|d| inside(&self.old, &d.bytes))
                .collect();
            let after = new
                .list
                .into_iter()
                .map(conv)
                .filter(|d| inside(&self.new, &d.bytes))
                .collect();
            return Split { before, after };
        }
        let before = line_defs(self.content)
            .into_iter()
            .filter(|d| inside(&self.old, &d.bytes))
            .collect();
        let after = line_defs(self.new_content)
            .into_iter()
            .filter(|d| inside(&self.new, &d.bytes))
            .collect();
        Split { before, after }
    }
}

/// [`line_definition`] over every line of `text`.
fn line_defs(text: &str) -> Vec<Def> {
    let mut out = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if let Some(name) = line_definition(line) {
            out.push(Def {
                name: name.to_string(),
                bytes: at..at + line.len(),
                local: false,
            });
        }
        at += line.len();
    }
    out
}

/// The gate on definitions: every definition the block had is still there (unless the TODO
/// asks to remove it).
pub(super) fn check_definitions(rw: &Rewrite<'_>, todo_text: &str) -> Result<(), Rejection> {
    use std::collections::HashSet;
    let Split { before, after } = rw.definitions();
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
    Ok(())
}
