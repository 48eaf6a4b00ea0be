//! The gates an answer must pass before it counts as a patch: the TODO is gone, the block
//! still defines its name, nothing is elided, the file still parses.

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
