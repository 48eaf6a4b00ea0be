//! Choosing the code an LLM gets to rewrite for one tag. This is an indentation heuristic that
//! works across languages without parsing them; it lives alone so a syntax-tree implementation can
//! replace it per language without touching the lexer or the walker.

use std::collections::HashMap;

use super::lex::{LineInfo, LineStart};

/// Inclusive 0-based line span, plus the header of the scope it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    pub first: usize,
    pub last: usize,
    pub symbol: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Scope {
    /// First header line (a multi-line signature starts above `header`).
    start: usize,
    /// The line whose indentation defines the scope.
    header: usize,
    end: usize,
}

/// Longest symbol kept: a minified line would otherwise become a multi-kilobyte id input.
pub(super) const MAX_SYMBOL_CHARS: usize = 200;

/// Words that mark a header as a definition, which is the unit an LLM rewrites best.
const DEFINITION_WORDS: &[&str] = &[
    "fn",
    "def",
    "func",
    "function",
    "class",
    "impl",
    "struct",
    "interface",
    "trait",
    "enum",
    "fun",
    "sub",
    "object",
    "record",
    "protocol",
    "extension",
];

/// First words of headers that end like a signature but only open a statement block.
const CONTROL_WORDS: &[&str] = &[
    "if",
    "else",
    "elif",
    "for",
    "foreach",
    "while",
    "do",
    "switch",
    "match",
    "case",
    "when",
    "try",
    "catch",
    "except",
    "finally",
    "with",
    "loop",
    "unless",
    "until",
    "return",
    "select",
    "defer",
    "go",
    "synchronized",
    "lock",
    "using",
];

/// Words that close a scope at the header's indentation, besides brackets.
const CLOSING_WORDS: &[&str] = &[
    "end",
    "fi",
    "done",
    "esac",
    "endif",
    "endfor",
    "endwhile",
    "endfunction",
];

pub(crate) struct BlockFinder<'a> {
    text: &'a str,
    lines: &'a [LineInfo],
    /// Whether `name:` lines are labels (see [`super::Language::labels`]).
    labels: bool,
    /// Scope ends by header line: every tag of a file walks the same outer scopes.
    ends: HashMap<usize, usize>,
}

impl<'a> BlockFinder<'a> {
    pub fn new(text: &'a str, lines: &'a [LineInfo], labels: bool) -> Self {
        BlockFinder {
            text,
            lines,
            labels,
            ends: HashMap::new(),
        }
    }

    /// The block for a tag on `todo` whose comment began on `anchor`.
    pub fn block(&mut self, todo: usize, anchor: usize, max_lines: usize) -> Block {
        let max = max_lines.max(1);
        let Some(last_line) = self.lines.len().checked_sub(1) else {
            return Block {
                first: 0,
                last: 0,
                symbol: None,
            };
        };
        let todo = todo.min(last_line);
        let anchor = anchor.min(todo);
        let chain = self.scope_chain(todo, anchor);
        let fits = |s: &Scope| s.end - s.start < max;
        let pick = chain
            .iter()
            .rev()
            .find(|s| fits(s) && looks_like_definition(&self.header_text(s.start, s.header)))
            .or_else(|| chain.iter().rev().find(|s| fits(s)));
        if let Some(s) = pick {
            return Block {
                first: s.start,
                last: s.end,
                symbol: Some(self.header_text(s.start, s.header)),
            };
        }
        if chain.is_empty() && self.lines[anchor].indent == 0 {
            return self.top_level(todo, anchor, max);
        }
        self.window(todo, anchor, chain.first().copied(), max)
    }

    /// Enclosing scopes, innermost first.
    fn scope_chain(&mut self, todo: usize, anchor: usize) -> Vec<Scope> {
        let mut chain = Vec::new();
        // A tag on a line that itself opens a scope (`fn f() { // TODO`) belongs to that scope.
        let own = &self.lines[anchor];
        if own.is_code() && !self.is_pure_closer(anchor) && !self.is_transparent(anchor) {
            let end = self.scope_end(anchor);
            if end > anchor {
                let start = self.header_start(anchor);
                chain.push(Scope {
                    start,
                    header: anchor,
                    end,
                });
            }
        }
        let mut l = chain.first().map_or(anchor, |s| s.start);
        let mut indent = self.lines[l].indent;
        while indent > 0 && l > 0 {
            l -= 1;
            let info = &self.lines[l];
            if !info.is_code()
                || info.indent >= indent
                || self.is_pure_closer(l)
                || self.is_transparent(l)
            {
                continue;
            }
            let start = self.header_start(l);
            let end = self.scope_end(l);
            if end >= todo {
                chain.push(Scope {
                    start,
                    header: l,
                    end,
                });
            }
            indent = self.lines[start].indent;
            l = start;
        }
        chain
    }

    /// Last line of the scope opened by header line `h`: through the closer at the header's
    /// indentation when there is one, else through the last deeper line.
    fn scope_end(&mut self, h: usize) -> usize {
        if let Some(&end) = self.ends.get(&h) {
            return end;
        }
        let hi = self.lines[h].indent;
        let header_transparent = self.is_transparent(h);
        let mut last = h;
        let mut first_code = true;
        let mut end = None;
        for l in h + 1..self.lines.len() {
            let info = &self.lines[l];
            if info.blank {
                continue;
            }
            if info.start_state != LineStart::Code {
                last = l;
                continue;
            }
            if !info.code || (info.indent <= hi && !header_transparent && self.is_transparent(l)) {
                // Comments, `#if`/`#[attr]` lines and labels follow the code: one at column 0
                // inside a body ends nothing.
                if info.indent > hi {
                    last = l;
                }
                continue;
            }
            if info.indent > hi {
                last = l;
                first_code = false;
                continue;
            }
            if info.indent == hi {
                let t = self.code_text(l);
                if starts_with_closer(t) {
                    end = Some(l);
                    break;
                }
                // Allman style: the brace on its own line still belongs to the header.
                if first_code && t.starts_with('{') {
                    last = l;
                    first_code = false;
                    continue;
                }
            }
            break;
        }
        let end = end.unwrap_or(last);
        self.ends.insert(h, end);
        end
    }

    /// First line of a header that continues over several lines: `{` alone (Allman), `) -> T {`
    /// after a parameter list, `where` clauses.
    fn header_start(&self, h: usize) -> usize {
        let mut cur = h;
        for _ in 0..64 {
            let t = self.code_text(cur);
            let continues = t.starts_with('{')
                || t.starts_with(')')
                || t.starts_with(']')
                || t.starts_with("->")
                || starts_with_word(t, "where")
                || starts_with_word(t, "throws");
            if !continues {
                break;
            }
            let ind = self.lines[cur].indent;
            let Some(p) = (0..cur)
                .rev()
                .find(|&p| self.lines[p].is_code() && self.lines[p].indent <= ind)
            else {
                break;
            };
            if self.lines[p].indent != ind {
                break;
            }
            let pt = self.code_text(p);
            if pt.ends_with(';') || pt.ends_with('}') || (t.starts_with('{') && pt.ends_with('{')) {
                break;
            }
            cur = p;
        }
        cur
    }

    /// Comment lines around the tag that form one comment.
    fn comment_run(&self, todo: usize, anchor: usize) -> (usize, usize) {
        let lines = self.lines;
        let mut start = anchor.min(todo);
        if lines[start].is_comment_only() {
            while start > 0 && lines[start - 1].is_comment_only() {
                start -= 1;
            }
        }
        let mut end = todo;
        if lines[todo].is_comment_only() || lines[todo].start_state == LineStart::Comment {
            while end + 1 < lines.len() && lines[end + 1].is_comment_only() {
                end += 1;
            }
        }
        (start, end)
    }

    /// A column-0 tag outside any scope: the comment plus the item it annotates.
    fn top_level(&mut self, todo: usize, anchor: usize, max: usize) -> Block {
        let (run_start, run_end) = self.comment_run(todo, anchor);
        let item = if self.lines[todo].is_code() {
            Some(todo)
        } else {
            (run_end + 1..self.lines.len()).find(|&l| self.lines[l].is_code())
        };
        let Some(item) = item else {
            let (first, last) = cap_around(run_start, run_end, todo, max);
            return Block {
                first,
                last,
                symbol: None,
            };
        };
        // Attributes and decorators sit between a comment and the definition they decorate.
        let mut header = item;
        while is_decoration_line(self.code_text(header)) {
            match (header + 1..self.lines.len()).find(|&l| self.lines[l].is_code()) {
                Some(next) if self.lines[next].indent == self.lines[item].indent => header = next,
                _ => break,
            }
        }
        let end = if self.is_transparent(header) {
            header
        } else {
            self.scope_end(header)
        };
        let (last, symbol) = if end > header {
            (end, Some(self.header_text(header, header)))
        } else {
            let last = (item..self.lines.len())
                .take_while(|&l| !self.lines[l].blank)
                .last()
                .unwrap_or(item);
            (last, None)
        };
        if last - run_start < max {
            return Block {
                first: run_start,
                last,
                symbol,
            };
        }
        let (first, last) = cap_around(run_start, last, todo, max);
        Block {
            first,
            last,
            symbol: None,
        }
    }

    /// Lines around the tag when no scope fits, kept inside the innermost scope so the rewrite
    /// cannot spill into a neighbour.
    fn window(&self, todo: usize, anchor: usize, inner: Option<Scope>, max: usize) -> Block {
        let (run_start, run_end) = self.comment_run(todo, anchor);
        let (lo, hi) = inner.map_or((0, self.lines.len() - 1), |s| (s.start, s.end));
        let around = max / 4;
        let mut first = run_start.saturating_sub(around).max(lo).min(todo);
        let mut last = (run_end + around).min(hi).max(todo);
        while first < run_start.min(todo) && self.lines[first].blank {
            first += 1;
        }
        while last > run_end.max(todo) && self.lines[last].blank {
            last -= 1;
        }
        let (first, last) = cap_around(first, last, todo, max);
        Block {
            first,
            last,
            symbol: None,
        }
    }

    /// Lines whose indentation says nothing about scopes: preprocessor directives and
    /// attributes (C puts `#if` at column 0 in the middle of a function), and in C-like
    /// languages goto labels and access specifiers (`err:`, `public:`).
    fn is_transparent(&self, l: usize) -> bool {
        let t = self.code_text(l);
        t.starts_with('#') || (self.labels && is_label(t))
    }

    fn is_pure_closer(&self, l: usize) -> bool {
        let t = self.code_text(l);
        starts_with_closer(t) && !t.ends_with(['{', '(', '[', ':'])
    }

    /// A line's code, comment cut off, trimmed.
    fn code_text(&self, l: usize) -> &'a str {
        let info = &self.lines[l];
        let end = info.comment_at.unwrap_or(info.end).min(info.end);
        self.text.get(info.start..end).unwrap_or("").trim()
    }

    fn header_text(&self, start: usize, header: usize) -> String {
        let joined: Vec<&str> = (start..=header).map(|l| self.code_text(l)).collect();
        let collapsed = collapse_whitespace(&joined.join(" "));
        if collapsed.chars().count() > MAX_SYMBOL_CHARS {
            collapsed.chars().take(MAX_SYMBOL_CHARS).collect()
        } else {
            collapsed
        }
    }
}

/// Shrinks `first..=last` to at most `max` lines with `todo` kept inside, roughly centred.
fn cap_around(first: usize, last: usize, todo: usize, max: usize) -> (usize, usize) {
    let first = first.min(todo);
    let last = last.max(todo);
    if last - first < max {
        return (first, last);
    }
    let lo = first.max(todo.saturating_sub(max / 2));
    let hi = last.min(lo + max - 1);
    let lo = first.max((hi + 1).saturating_sub(max));
    (lo, hi)
}

pub(crate) fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn starts_with_word(t: &str, word: &str) -> bool {
    t.strip_prefix(word)
        .is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
}

fn starts_with_closer(t: &str) -> bool {
    t.starts_with(['}', ')', ']'])
        || t.starts_with("</")
        || CLOSING_WORDS.iter().any(|w| starts_with_word(t, w))
}

/// `name:` alone; `default:` is excluded because it sits at the indentation of the `case`
/// lines it ends.
fn is_label(t: &str) -> bool {
    t.strip_suffix(':').is_some_and(|name| {
        name != "default"
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn is_decoration_line(t: &str) -> bool {
    t.starts_with("#[") || t.starts_with('@') || t.starts_with("[[")
}

/// Whether a header introduces a function, method, class or similar definition.
fn looks_like_definition(symbol: &str) -> bool {
    let mut words = symbol
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty());
    if words.any(|w| DEFINITION_WORDS.contains(&w)) || symbol.contains("=>") {
        return true;
    }
    let s = symbol.trim_start_matches(['}', ' ']);
    let first = s
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("");
    if CONTROL_WORDS.contains(&first) {
        return false;
    }
    s.ends_with(") {") || s.ends_with("):") || (s.ends_with('{') && s.contains(')'))
}
