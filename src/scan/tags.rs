//! Recognising a tag inside comment text. The rules lean towards silence: a missed TODO costs
//! nothing, a false one sends an LLM to rewrite code nobody asked it to touch.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};
use memchr::memchr_iter;

use super::lex::has_prefix;

/// The configured tags, canonicalised once per scan and shared by every walker thread.
pub(crate) struct TagSet {
    /// Upper case, longest first so `FIXME` wins over a configured `FIX` at the same spot.
    tags: Vec<String>,
    /// First bytes of the tags, so most comment bytes are dismissed with one lookup.
    firsts: [bool; 256],
    /// The upper-case tags then the lower-case forms, for the whole-file prefilter; `Ok(None)`
    /// when there are no tags, `Err` when the automaton cannot be built (absurdly many or long
    /// tags), which only turns the prefilter off.
    /// Built on first use: a single file scanned through `scan_source` never needs it.
    words: OnceLock<Result<Option<AhoCorasick>, aho_corasick::BuildError>>,
    /// Lower-case forms (`todo`, `fixme`) accepted only as the first word of a comment, with
    /// the canonical tag each stands for.
    lower: Vec<(String, String)>,
}

/// A tag found in one comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TagMatch {
    pub tag: String,
    pub author: Option<String>,
    /// `#123`, `GH-12`, `ABC-123`: from `TODO(#123)`, `TODO(alice, GH-12)` or `TODO #123:`.
    pub issue: Option<String>,
    pub text: String,
    /// Byte offset of the tag in the comment text, to tell continuation lines by indentation.
    pub at: usize,
}

/// Tags whose lower-case form is still a tag when it opens a comment (`// todo: x`); other
/// words (`bug`, `hack`, `xxx`) open ordinary prose too often.
const LOWER_CASE_TAGS: [&str; 2] = ["TODO", "FIXME"];

impl TagSet {
    pub fn new(tags: &[String]) -> Self {
        let mut canon: Vec<String> = tags
            .iter()
            .map(|t| t.trim().to_uppercase())
            .filter(|t| !t.is_empty())
            .collect();
        canon.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        canon.dedup();
        let lower: Vec<(String, String)> = canon
            .iter()
            .filter(|t| LOWER_CASE_TAGS.contains(&t.as_str()))
            .map(|t| (t.to_ascii_lowercase(), t.clone()))
            .collect();
        let mut firsts = [false; 256];
        for tag in canon.iter().chain(lower.iter().map(|(l, _)| l)) {
            if let Some(&c) = tag.as_bytes().first() {
                firsts[usize::from(c)] = true;
            }
        }
        TagSet {
            tags: canon,
            firsts,
            words: OnceLock::new(),
            lower,
        }
    }

    /// Cheap rejection of the files that cannot hold a tag, which is nearly all of them, judged
    /// on the raw bytes: an occurrence glued to a word (`DEBUG`, `TODOS`, `todo_list`,
    /// `x.todo`) cannot be a tag, and a lower-case `todo` can only be one as the first word of
    /// a comment.
    ///
    /// Sorted offsets in `hay` where [`TagSet::find`] may find a tag (the tag word, or the `@`
    /// of `@todo`); every tag it finds starts at one of them, so comment text holding none need
    /// not be searched. `None` when there is no prefilter: everything must be searched.
    pub fn candidates(&self, hay: &[u8]) -> Option<Vec<usize>> {
        let words = match self.words.get_or_init(|| self.build_words()) {
            Ok(words) => words,
            Err(_) => return None,
        };
        let mut found = Vec::new();
        if let Some(words) = words {
            // One pass for every form. A match hides no tag: tags are words and a tag needs a
            // non-word byte on each side, so no match can overlap one.
            for m in words.find_iter(hay) {
                let lower = m.pattern().as_usize() >= self.tags.len();
                if may_be_tag(hay, m.start(), m.end(), lower) {
                    found.push(m.start());
                }
            }
        }
        let before = found.len();
        for p in memchr_iter(b'@', hay) {
            let tagged = self.tags.iter().any(|t| {
                let end = p + 1 + t.len();
                hay.get(p + 1..end)
                    .is_some_and(|w| w.eq_ignore_ascii_case(t.as_bytes()))
                    && may_end_tag(hay, end)
            });
            if tagged {
                found.push(p);
            }
        }
        if found.len() > before && before > 0 {
            found.sort_unstable();
        }
        Some(found)
    }

    fn build_words(&self) -> Result<Option<AhoCorasick>, aho_corasick::BuildError> {
        let patterns: Vec<&str> = self
            .tags
            .iter()
            .map(String::as_str)
            .chain(self.lower.iter().map(|(l, _)| l.as_str()))
            .collect();
        if patterns.is_empty() {
            return Ok(None);
        }
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&patterns)
            .map(Some)
    }

    /// The first tag in one line of comment text.
    pub fn find(&self, seg: &str) -> Option<TagMatch> {
        let b = seg.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c == b'@' {
                for tag in &self.tags {
                    let end = i + 1 + tag.len();
                    let word_matches = b
                        .get(i + 1..end)
                        .is_some_and(|w| w.eq_ignore_ascii_case(tag.as_bytes()));
                    if word_matches && is_tag_at(seg, i, end) {
                        return Some(parse_rest(seg, tag, i, end));
                    }
                }
                continue;
            }
            if !self.firsts[usize::from(c)] {
                continue;
            }
            for tag in &self.tags {
                let end = i + tag.len();
                if has_prefix(&b[i..], tag.as_bytes()) && is_tag_at(seg, i, end) {
                    return Some(parse_rest(seg, tag, i, end));
                }
            }
            for (low, tag) in &self.lower {
                let end = i + low.len();
                if has_prefix(&b[i..], low.as_bytes()) && is_lower_tag_at(seg, i, end) {
                    return Some(parse_rest(seg, tag, i, end));
                }
            }
        }
        None
    }
}

/// Whether the tag word spanning `start..end` is a tag rather than a mention of one.
///
/// At the head of a comment (or of a comment nested in commented-out code) any form counts
/// (`TODO fix`); further in, prose like "where XXX is replaced" or "this is a TODO list" is far
/// more common than a real tag, so only explicit forms count there: `TODO:`, `TODO(name)`,
/// `FIXME!`, `(TODO)`, `[TODO]`.
fn is_tag_at(seg: &str, start: usize, end: usize) -> bool {
    if !boundary_before(seg, start) || !boundary_after(seg, end) || in_url(seg.as_bytes(), start) {
        return false;
    }
    let head = seg.get(..start).unwrap_or("");
    let before = head.chars().next_back();
    let after = seg.get(end..).and_then(|t| t.chars().next());
    // `TODO` in backticks or quotes is a mention, as in "grep for `TODO`".
    if matches!(before, Some('`')) || (matches!(before, Some('"' | '\'')) && before == after) {
        return false;
    }
    let trimmed = head.trim_end();
    head.bytes().all(is_decoration)
        || trimmed.ends_with("//")
        || trimmed.ends_with('#')
        || trimmed.ends_with("--")
        || trimmed.ends_with("/*")
        || matches!(before, Some('(' | '['))
        || matches!(after, Some(':' | '(' | '!'))
        || issue_after(seg.get(end..).unwrap_or("")).is_some()
}

/// Whether a lower-case `todo`/`fixme` at `start..end` is a tag: only as the first word of the
/// comment, and followed by a separator, `(`, or nothing (`// todo: x`, `# fixme x`).
fn is_lower_tag_at(seg: &str, start: usize, end: usize) -> bool {
    let head = seg.get(..start).unwrap_or("");
    let after = seg.get(end..).and_then(|t| t.chars().next());
    head.bytes().all(is_decoration)
        && boundary_before(seg, start)
        && boundary_after(seg, end)
        && matches!(after, None | Some(':' | '(' | '!' | ' ' | '\t'))
}

/// `#123` (after optional spaces) at the start of `rest`, then a separator or the end: the
/// issue of `TODO #123: text`.
fn issue_after(rest: &str) -> Option<(&str, &str)> {
    let trimmed = rest.trim_start_matches([' ', '\t']);
    if trimmed.len() == rest.len() && !rest.starts_with('#') {
        return None;
    }
    let digits = trimmed.strip_prefix('#')?;
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let tail = &digits[n..];
    if tail.chars().next().is_some_and(is_word_char) {
        return None;
    }
    Some((&trimmed[..n + 1], tail))
}

/// `#123`, or a tracker key such as `GH-12` / `ABC-123`.
fn is_issue(s: &str) -> bool {
    if let Some(d) = s.strip_prefix('#') {
        return !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit());
    }
    let Some((key, num)) = s.split_once('-') else {
        return false;
    };
    key.bytes().next().is_some_and(|c| c.is_ascii_uppercase())
        && key
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
        && !num.is_empty()
        && num.bytes().all(|c| c.is_ascii_digit())
}

fn is_ascii_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The byte-level part of [`boundary_after`]; a non-ASCII byte is given the benefit of the
/// doubt.
fn may_end_tag(hay: &[u8], end: usize) -> bool {
    match hay.get(end) {
        None => true,
        Some(&c) if is_ascii_word(c) => false,
        Some(b'.' | b'-' | b'/') => !hay.get(end + 1).is_some_and(|&c| is_ascii_word(c)),
        Some(_) => true,
    }
}

/// Whether the occurrence `start..end` of a tag word in a whole file might be reported by
/// [`TagSet::find`]: the byte-level parts of [`boundary_before`], [`boundary_after`] and, for
/// a lower-case form, [`is_lower_tag_at`] (only comment openers, decoration or a line start
/// may precede it on its line).
fn may_be_tag(hay: &[u8], start: usize, end: usize, lower: bool) -> bool {
    if start > 0 {
        let prev = hay[start - 1];
        if is_ascii_word(prev) || matches!(prev, b'\\' | b'.' | b'$' | b'@') {
            return false;
        }
    }
    if !may_end_tag(hay, end) {
        return false;
    }
    if !lower {
        return true;
    }
    let line_start = memchr::memrchr(b'\n', &hay[..start]).map_or(0, |p| p + 1);
    let head = &hay[line_start..start];
    match head.iter().rposition(|c| !matches!(c, b' ' | b'\t')) {
        None => true,
        // `=begin todo` (Ruby, Perl POD): the opener is a word.
        Some(_) if head.trim_ascii_start().starts_with(b"=") => true,
        // `rem todo` (batch files): the opener is a word.
        Some(p) if p >= 2 && head[p - 2..=p].eq_ignore_ascii_case(b"rem") => true,
        Some(p) => matches!(
            head[p],
            b'/' | b'!'
                | b'*'
                | b'#'
                | b'-'
                | b'<'
                | b'>'
                | b';'
                | b'%'
                | b'+'
                | b'['
                | b'\''
                | b'"'
                | b':'
        ),
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Comment decoration that may sit before a tag at the head of a comment: `///TODO`,
/// `//!TODO`, ` * TODO` inside a block, `;; TODO`, `- TODO` in a list.
fn is_decoration(c: u8) -> bool {
    matches!(
        c,
        b'/' | b'!' | b'*' | b'#' | b'-' | b'<' | b'>' | b';' | b'%' | b'+' | b' ' | b'\t'
    )
}

fn boundary_before(seg: &str, i: usize) -> bool {
    let Some(head) = seg.get(..i) else {
        return false;
    };
    let Some(prev) = head.chars().next_back() else {
        return true;
    };
    if is_word_char(prev) {
        return false;
    }
    match prev {
        // A path segment (`docs/TODO`) unless everything before is comment decoration.
        '/' => head.bytes().all(is_decoration),
        '\\' | '.' | '$' | '@' => false,
        _ => true,
    }
}

fn boundary_after(seg: &str, end: usize) -> bool {
    let Some(tail) = seg.get(end..) else {
        return false;
    };
    let mut chars = tail.chars();
    match chars.next() {
        None => true,
        Some(c) if is_word_char(c) => false,
        // `TODO.md`, `XXX-large`, `TODO/FIXME` read as names, not tags.
        Some('.' | '-' | '/') => !chars.next().is_some_and(is_word_char),
        Some(_) => true,
    }
}

/// Whether the whitespace-delimited token around `i` looks like a URL.
fn in_url(b: &[u8], i: usize) -> bool {
    let start = b[..i]
        .iter()
        .rposition(|c| c.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    let end = b[i..]
        .iter()
        .position(|c| c.is_ascii_whitespace())
        .map_or(b.len(), |p| i + p);
    let token = &b[start..end];
    token.windows(3).any(|w| w == b"://") || token.starts_with(b"www.")
}

/// Splits `(author)`, `(#123)`, `(alice, GH-12)` or ` #123` and the separator off what
/// follows the tag.
fn parse_rest(seg: &str, tag: &str, at: usize, end: usize) -> TagMatch {
    let mut rest = seg.get(end..).unwrap_or("");
    let mut author = None;
    let mut issue = None;
    if let Some(inner) = rest.strip_prefix('(')
        && let Some(close) = inner.find(')')
    {
        let mut names = Vec::new();
        for part in inner[..close]
            .split([',', ' ', '\t'])
            .filter(|p| !p.is_empty())
        {
            if issue.is_none() && is_issue(part) {
                issue = Some(part.to_string());
            } else {
                names.push(part);
            }
        }
        let name = names.join(" ");
        if !name.is_empty() && name.chars().count() <= 64 {
            author = Some(name);
        }
        rest = &inner[close + 1..];
    }
    if issue.is_none()
        && let Some((found, tail)) = issue_after(rest)
    {
        issue = Some(found.to_string());
        rest = tail;
    }
    let text = rest
        .trim_start()
        // `)` and `]` close a bracketed tag: `(FIXME!)`, `[TODO] text`.
        .trim_start_matches([':', '!', '-', ')', ']', '\u{2013}', '\u{2014}'])
        .trim();
    TagMatch {
        tag: tag.to_string(),
        author,
        issue,
        text: text.to_string(),
        at,
    }
}
