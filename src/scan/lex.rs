//! One table-driven lexer for every language: it only has to tell code, strings and comments
//! apart well enough that a tag in a string is never reported and a tag in a comment is never
//! missed, so it ignores everything else about the grammar.

use memchr::{memchr, memchr3};

use super::lang::{CommentRule, Escape, Language, StringKind};

/// What the lexer was inside of when a line began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineStart {
    Code,
    Comment,
    Str,
}

/// Per-line facts the block finder works from; offsets are into the BOM-stripped text.
#[derive(Debug, Clone)]
pub(crate) struct LineInfo {
    pub start: usize,
    /// End of the visible text: before `\r\n` or `\n`.
    pub end: usize,
    /// Start of the next line (just after the `\n`), or the text length on the last line.
    pub next: usize,
    pub indent: usize,
    pub blank: bool,
    /// Holds something other than whitespace and comments (string contents count as code).
    pub code: bool,
    pub start_state: LineStart,
    /// A comment opens on this line.
    pub comment: bool,
    /// Where the comment still open at the end of the line begins: a header's text is cut there
    /// so `fn f() { // TODO` yields the symbol `fn f() {`.
    pub comment_at: Option<usize>,
}

impl LineInfo {
    /// A line that can open a scope: it starts outside any comment or string and holds code.
    pub fn is_code(&self) -> bool {
        self.code && !self.blank && self.start_state == LineStart::Code
    }

    /// A line that belongs to a comment and nothing else.
    pub fn is_comment_only(&self) -> bool {
        !self.code && (self.comment || self.start_state == LineStart::Comment)
    }
}

/// The text of one comment on one line, opener and closer excluded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    pub line: usize,
    pub start: usize,
    pub end: usize,
    /// Line where the comment began: a tag on the third line of a `/* */` block belongs to the
    /// scope of the line that opened it.
    pub comment_line: usize,
}

pub(crate) struct Lexed {
    pub lines: Vec<LineInfo>,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Code,
    Line,
    Block {
        idx: usize,
        depth: usize,
    },
    Str {
        idx: usize,
    },
    /// Inside a docstring (`lang.strings[idx]`), lexed as a block comment.
    Doc {
        idx: usize,
    },
}

const TAB_WIDTH: usize = 4;

pub(crate) fn split_lines(text: &str) -> Vec<LineInfo> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    while start < b.len() {
        let (nl, next) = match memchr(b'\n', &b[start..]) {
            Some(p) => (start + p, start + p + 1),
            None => (b.len(), b.len()),
        };
        let end = if nl > start && b[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let mut indent = 0;
        for &c in &b[start..end] {
            match c {
                b' ' => indent += 1,
                b'\t' => indent += TAB_WIDTH - indent % TAB_WIDTH,
                _ => break,
            }
        }
        let blank = b[start..end].iter().all(|c| c.is_ascii_whitespace());
        out.push(LineInfo {
            start,
            end,
            next,
            indent,
            blank,
            code: false,
            start_state: LineStart::Code,
            comment: false,
            comment_at: None,
        });
        start = next;
    }
    out
}

/// `starts_with` for the few-byte openers and closers the lexer tests at almost every byte; a
/// byte loop beats the `memcmp` call a slice comparison compiles to.
#[inline]
pub(crate) fn has_prefix(hay: &[u8], pat: &[u8]) -> bool {
    hay.len() >= pat.len() && hay.iter().zip(pat).all(|(a, b)| a == b)
}

/// First byte of a table delimiter; a newline for an (invalid) empty one, which only makes the
/// lexer stop more often.
fn first_byte(delim: &str) -> u8 {
    delim.as_bytes().first().copied().unwrap_or(b'\n')
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

fn at_line_start(b: &[u8], i: usize) -> bool {
    i == 0 || b[i - 1] == b'\n'
}

/// Length of a complete char literal whose opener ends at `i`, or `None` when the quote is
/// something else (a lifetime, a prime, a digit separator).
fn char_literal_len(b: &[u8], i: usize, close: &[u8]) -> Option<usize> {
    let first = *b.get(i)?;
    if first == b'\n' || first == b'\r' || has_prefix(&b[i..], close) {
        return None;
    }
    if first == b'\\' {
        // The escaped byte is not a newline either: the lexer counts lines at each `\n`, and
        // a literal must not jump over one.
        if b.get(i + 1) == Some(&b'\n') {
            return None;
        }
        let limit = (i + 12).min(b.len());
        let mut j = i + 2;
        while j < limit {
            if b[j] == b'\n' {
                return None;
            }
            if has_prefix(&b[j..], close) {
                return Some(j + close.len() - i);
            }
            j += 1;
        }
        return None;
    }
    let width = match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    };
    if has_prefix(b.get(i + width..)?, close) {
        Some(width + close.len())
    } else {
        None
    }
}

/// The terminator word of a here-document opener at `i` (which holds `<<`), when there is one.
/// Unquoted words must be upper case so `x << y` in Ruby or Perl is not taken for one.
fn heredoc_word(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut j = i + 2;
    if b.get(j) == Some(&b'<') {
        j += 1;
    }
    if matches!(b.get(j), Some(b'-' | b'~')) {
        j += 1;
    }
    while matches!(b.get(j), Some(b' ' | b'\t')) {
        j += 1;
    }
    let quote = match b.get(j) {
        Some(&q @ (b'\'' | b'"')) => {
            j += 1;
            Some(q)
        }
        _ => None,
    };
    let start = j;
    while b
        .get(j)
        .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
    {
        j += 1;
    }
    let word = &b[start..j];
    let first_ok = word
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_');
    if !first_ok {
        return None;
    }
    match quote {
        Some(q) => (b.get(j) == Some(&q)).then_some((start, j)),
        None => word
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
            .then_some((start, j)),
    }
}

fn comment_rule_allows(rule: CommentRule, b: &[u8], i: usize, len: usize) -> bool {
    match rule {
        CommentRule::Anywhere => true,
        CommentRule::WordStart => i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r' | b';'),
        CommentRule::NotAfter(set) => i == 0 || !set.contains(&b[i - 1]),
        CommentRule::NotBefore(set) => b.get(i + len).is_none_or(|c| !set.contains(c)),
        CommentRule::CommandStart(separators) => command_start(b, i, separators),
        CommentRule::CommandStartOrUnclosed(separators) => {
            let end = memchr(b'\n', &b[i + len..]).map_or(b.len(), |p| i + len + p);
            command_start(b, i, separators) || memchr(b[i], &b[i + len..end]).is_none()
        }
    }
}

/// Nothing but whitespace before `i` on its line, or a separator as the last thing before it.
fn command_start(b: &[u8], i: usize, separators: &[u8]) -> bool {
    let line = b[..i]
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |p| p + 1);
    match b[line..i].iter().rposition(|c| !c.is_ascii_whitespace()) {
        None => true,
        Some(p) => separators.contains(&b[line + p]),
    }
}

fn trim_cr(b: &[u8], start: usize, end: usize) -> usize {
    if end > start && b[end - 1] == b'\r' {
        end - 1
    } else {
        end
    }
}

pub(crate) fn lex(text: &str, lang: &Language) -> Lexed {
    let b = text.as_bytes();
    let n = b.len();
    let mut lines = split_lines(text);
    let mut segments = Vec::new();
    if lines.is_empty() {
        return Lexed { lines, segments };
    }
    let last_line = lines.len() - 1;
    let mut state = State::Code;
    let mut ln = 0;
    let mut i = 0;
    let mut seg_start = 0;
    let mut comment_line = 0;
    let mut continued = false;
    let mut heredoc: Option<(usize, usize)> = None;
    let starts = opener_bytes(lang);
    let mut stops = starts;
    stops[usize::from(b'\n')] = true;
    if lang.code_escapes {
        stops[usize::from(b'\\')] = true;
    }
    let bounded = bounded_only(lang);
    // Bracket depth, kept only where a string's meaning depends on it: a Python docstring is a
    // statement, and nothing inside `(`, `[` or `{` is one.
    let track_depth = lang.strings.iter().any(|s| s.kind == StringKind::Docstring);
    let mut depth = 0usize;
    if track_depth {
        for c in *b"()[]{}" {
            stops[usize::from(c)] = true;
        }
    }
    // A byte that opens nothing here: not an opener's first byte, or one whose every opener
    // needs a word boundary and follows an identifier character (the `r` of `for` in Rust,
    // where `r"` would open a raw string).
    let inert = |i: usize| {
        let c = usize::from(b[i]);
        !stops[c] || (bounded[c] && i > 0 && is_ident(b[i - 1]))
    };

    while i < n {
        let c = b[i];
        if c == b'\n' {
            match state {
                State::Line => {
                    segments.push(Segment {
                        line: ln,
                        start: seg_start,
                        end: trim_cr(b, seg_start, i),
                        comment_line,
                    });
                    state = State::Code;
                }
                State::Block { .. } | State::Doc { .. } => segments.push(Segment {
                    line: ln,
                    start: seg_start,
                    end: trim_cr(b, seg_start, i),
                    comment_line,
                }),
                State::Str { idx } => {
                    if !lang.strings[idx].multiline && !continued {
                        state = State::Code;
                    }
                }
                State::Code => {}
            }
            continued = false;
            i += 1;
            if ln < last_line {
                ln += 1;
            }
            lines[ln].start_state = match state {
                State::Code | State::Line => LineStart::Code,
                State::Block { .. } | State::Doc { .. } => LineStart::Comment,
                State::Str { .. } => LineStart::Str,
            };
            seg_start = i;
            // An opener the lexer misread must not hide every later docstring: a definition
            // at column 0 cannot be inside brackets.
            if depth > 0 && matches!(state, State::Code) && starts_definition(&b[i..]) {
                depth = 0;
            }
            if let (State::Code, Some((ws, we))) = (state, heredoc.take())
                && let Some(term_line) = find_heredoc_end(text, &lines, ln, &b[ws..we])
            {
                for info in &mut lines[ln..=term_line] {
                    info.start_state = LineStart::Str;
                    info.code = !info.blank;
                }
                ln = term_line;
                i = lines[term_line].end;
            }
            continue;
        }
        match state {
            State::Code => {
                if matches!(c, b' ' | b'\t' | b'\r' | 0x0c) {
                    i += 1;
                    continue;
                }
                if inert(i) {
                    lines[ln].code = true;
                    // The line is code now, so whitespace no longer matters: skip to the next
                    // byte that may open something or end the line.
                    i += 1;
                    while i < n && inert(i) {
                        i += 1;
                    }
                    continue;
                }
                if track_depth && matches!(c, b'(' | b'[' | b'{' | b')' | b']' | b'}') {
                    depth = match c {
                        b'(' | b'[' | b'{' => depth + 1,
                        _ => depth.saturating_sub(1),
                    };
                    lines[ln].code = true;
                    i += 1;
                    continue;
                }
                let rest = &b[i..];
                if lang.code_escapes && c == b'\\' {
                    lines[ln].code = true;
                    // The escaped byte is plain code, unless it ends the line.
                    i += if matches!(b.get(i + 1), Some(b'\n') | None) {
                        1
                    } else {
                        2
                    };
                    continue;
                }
                if let Some((idx, bc)) = lang.block_comments.iter().enumerate().find(|(_, bc)| {
                    has_prefix(rest, bc.open.as_bytes())
                        && (!bc.line_start || at_line_start(b, i))
                        && rest
                            .get(bc.open.len())
                            .is_none_or(|c| !bc.not_before.contains(c))
                }) {
                    lines[ln].comment = true;
                    lines[ln].comment_at = Some(i);
                    state = State::Block { idx, depth: 1 };
                    comment_line = ln;
                    i += bc.open.len();
                    seg_start = i;
                    continue;
                }
                if let Some(lc) = lang.line_comments.iter().find(|lc| {
                    has_prefix(rest, lc.open.as_bytes())
                        && comment_rule_allows(lc.rule, b, i, lc.open.len())
                }) {
                    lines[ln].comment = true;
                    lines[ln].comment_at = Some(i);
                    state = State::Line;
                    comment_line = ln;
                    i += lc.open.len();
                    seg_start = i;
                    // Nothing inside a line comment matters until the newline.
                    let stop = memchr(b'\n', &b[i..]).map_or(n, |p| i + p);
                    i = stop;
                    continue;
                }
                lines[ln].code = true;
                let prev_ident = i > 0 && is_ident(b[i - 1]);
                let mut matched = false;
                for (idx, s) in lang.strings.iter().enumerate() {
                    if (s.needs_boundary && prev_ident) || !has_prefix(rest, s.open.as_bytes()) {
                        continue;
                    }
                    match s.kind {
                        StringKind::Char => {
                            let after = i + s.open.len();
                            if let Some(len) = char_literal_len(b, after, s.close.as_bytes()) {
                                i = after + len;
                                matched = true;
                                break;
                            }
                        }
                        StringKind::Docstring
                            if depth == 0 && opens_statement(b, &lines, ln, i) =>
                        {
                            // At most a string prefix (`r"""`) stands before it on the line,
                            // and that is part of the docstring.
                            lines[ln].code = false;
                            lines[ln].comment = true;
                            lines[ln].comment_at = Some(i);
                            state = State::Doc { idx };
                            comment_line = ln;
                            i += s.open.len();
                            seg_start = i;
                            matched = true;
                            break;
                        }
                        StringKind::Plain | StringKind::Docstring => {
                            state = State::Str { idx };
                            i += s.open.len();
                            matched = true;
                            break;
                        }
                    }
                }
                if matched {
                    continue;
                }
                if lang.heredocs
                    && has_prefix(rest, b"<<")
                    && heredoc.is_none()
                    && let Some(word) = heredoc_word(b, i)
                {
                    heredoc = Some(word);
                    i = word.1;
                    continue;
                }
                i += 1;
            }
            State::Line => {
                i = memchr(b'\n', &b[i..]).map_or(n, |p| i + p);
            }
            State::Block { idx, depth } => {
                let bc = &lang.block_comments[idx];
                let rest = &b[i..];
                let placed = !bc.line_start || at_line_start(b, i);
                if bc.nests && placed && has_prefix(rest, bc.open.as_bytes()) {
                    state = State::Block {
                        idx,
                        depth: depth + 1,
                    };
                    i += bc.open.len();
                } else if placed && has_prefix(rest, bc.close.as_bytes()) {
                    if depth <= 1 {
                        close_comment(&mut lines, &mut segments, ln, comment_line, seg_start, i);
                        state = State::Code;
                    } else {
                        state = State::Block {
                            idx,
                            depth: depth - 1,
                        };
                    }
                    i += bc.close.len();
                } else {
                    // Nothing can happen before the next opener, closer or newline.
                    let o = first_byte(bc.open);
                    let c = first_byte(bc.close);
                    i = memchr3(o, c, b'\n', &b[i + 1..]).map_or(n, |p| i + 1 + p);
                }
            }
            State::Doc { idx } => {
                let close = lang.strings[idx].close.as_bytes();
                if c == b'\\' {
                    // `\"""` does not close; the newline after a backslash still ends a line.
                    i += if b.get(i + 1) == Some(&b'\n') { 1 } else { 2 };
                } else if has_prefix(&b[i..], close) {
                    close_comment(&mut lines, &mut segments, ln, comment_line, seg_start, i);
                    state = State::Code;
                    i += close.len();
                } else {
                    i = memchr3(b'\\', close[0], b'\n', &b[i + 1..]).map_or(n, |p| i + 1 + p);
                }
            }
            State::Str { idx } => {
                let s = &lang.strings[idx];
                if !c.is_ascii_whitespace() {
                    lines[ln].code = true;
                }
                if s.escape == Escape::Backslash && c == b'\\' {
                    if matches!(b.get(i + 1), Some(b'\n' | b'\r')) {
                        continued = true;
                        i += 1;
                    } else {
                        i += 2;
                    }
                } else if has_prefix(&b[i..], s.close.as_bytes()) {
                    state = State::Code;
                    i += s.close.len();
                } else {
                    let close = first_byte(s.close);
                    let next = memchr3(b'\\', close, b'\n', &b[i + 1..]).map_or(n, |p| i + 1 + p);
                    if b[i..next].iter().any(|c| !c.is_ascii_whitespace()) {
                        lines[ln].code = true;
                    }
                    i = next;
                }
            }
        }
    }
    if matches!(state, State::Line | State::Block { .. } | State::Doc { .. }) {
        segments.push(Segment {
            line: ln,
            start: seg_start,
            end: trim_cr(b, seg_start, n),
            comment_line,
        });
    }
    Lexed { lines, segments }
}

/// Ends a block comment or docstring at `end` on line `ln`. One that closes on the line it
/// opened leaves that line's code whole (`fn f() { /* x */ }` keeps its `}` in the header).
fn close_comment(
    lines: &mut [LineInfo],
    segments: &mut Vec<Segment>,
    ln: usize,
    comment_line: usize,
    start: usize,
    end: usize,
) {
    if comment_line == ln {
        lines[ln].comment_at = None;
    }
    segments.push(Segment {
        line: ln,
        start,
        end,
        comment_line,
    });
}

/// A line that opens a Python definition at column 0.
fn starts_definition(line: &[u8]) -> bool {
    [&b"def "[..], b"class ", b"async def ", b"@"]
        .iter()
        .any(|w| line.starts_with(w))
}

/// Whether a string opening at `i` on line `ln` is a statement of its own: nothing but a string
/// prefix before it on the line, and the code line above does not leave an expression open
/// (`f(`, `x = \\`, `a,`). A `:` above is the usual case: the docstring of a `def` or `class`.
fn opens_statement(b: &[u8], lines: &[LineInfo], ln: usize, i: usize) -> bool {
    if !only_prefix(b, lines[ln].start, i) {
        return false;
    }
    let Some(prev) = lines[..ln].iter().rev().find(|l| l.code && !l.blank) else {
        return true;
    };
    let end = prev.comment_at.unwrap_or(prev.end).min(prev.end);
    let code = b[prev.start..end].trim_ascii_end();
    !matches!(
        code.last(),
        Some(
            b'(' | b'['
                | b'{'
                | b','
                | b'\\'
                | b'='
                | b'+'
                | b'-'
                | b'*'
                | b'/'
                | b'%'
                | b'|'
                | b'&'
                | b'<'
                | b'>'
                | b'.'
        )
    )
}

/// Whether `b[start..i]` is blank apart from at most one string prefix letter.
fn only_prefix(b: &[u8], start: usize, i: usize) -> bool {
    let head = b[start..i].trim_ascii();
    head.is_empty() || (head.len() == 1 && matches!(head[0], b'r' | b'R' | b'u' | b'U'))
}

/// Bytes whose every opener is a string that needs a word boundary before it (Rust's `r"`,
/// `b'`): after an identifier character they open nothing, which the lexer checks cheaply
/// before trying each opener in turn.
fn bounded_only(lang: &Language) -> [bool; 256] {
    let mut table = [false; 256];
    for s in lang.strings.iter().filter(|s| s.needs_boundary) {
        if let Some(&c) = s.open.as_bytes().first() {
            table[usize::from(c)] = true;
        }
    }
    let unbounded = lang
        .block_comments
        .iter()
        .map(|c| c.open)
        .chain(lang.line_comments.iter().map(|c| c.open))
        .chain(
            lang.strings
                .iter()
                .filter(|s| !s.needs_boundary)
                .map(|s| s.open),
        )
        .filter_map(|open| open.as_bytes().first());
    for &c in unbounded {
        table[usize::from(c)] = false;
    }
    if lang.heredocs {
        table[usize::from(b'<')] = false;
    }
    table
}

/// Bytes that can begin an opener in code; every other byte is plain code and skipped cheaply.
fn opener_bytes(lang: &Language) -> [bool; 256] {
    let mut table = [false; 256];
    let firsts = lang
        .block_comments
        .iter()
        .map(|c| c.open)
        .chain(lang.line_comments.iter().map(|c| c.open))
        .chain(lang.strings.iter().map(|s| s.open))
        .filter_map(|open| open.as_bytes().first());
    for &c in firsts {
        table[usize::from(c)] = true;
    }
    if lang.heredocs {
        table[usize::from(b'<')] = true;
    }
    table
}

/// The line that ends a here-document begun on the line before `from`, if the file has one; an
/// opener without a terminator is treated as a misreading and ignored.
fn find_heredoc_end(text: &str, lines: &[LineInfo], from: usize, word: &[u8]) -> Option<usize> {
    let b = text.as_bytes();
    // The word alone on its line, or (PHP) followed by what ends the expression: `SQL;`.
    (from..lines.len()).find(|&l| {
        let info = &lines[l];
        let t = b[info.start..info.end].trim_ascii();
        t.strip_prefix(word)
            .is_some_and(|rest| rest.is_empty() || matches!(rest.first(), Some(b';' | b',' | b')')))
    })
}
