//! Recognising a tag inside comment text. The rules lean towards silence: a missed TODO costs
//! nothing, a false one sends an LLM to rewrite code nobody asked it to touch.

use memchr::memchr_iter;
use memchr::memmem::Finder;

use super::lex::has_prefix;

/// The configured tags, canonicalised once per scan and shared by every walker thread.
pub(crate) struct TagSet {
    /// Upper case, longest first so `FIXME` wins over a configured `FIX` at the same spot.
    tags: Vec<String>,
    finders: Vec<Finder<'static>>,
    /// First bytes of the tags, so most comment bytes are dismissed with one lookup.
    firsts: [bool; 256],
}

/// A tag found in one comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TagMatch {
    pub tag: String,
    pub author: Option<String>,
    pub text: String,
}

impl TagSet {
    pub fn new(tags: &[String]) -> Self {
        let mut canon: Vec<String> = tags
            .iter()
            .map(|t| t.trim().to_uppercase())
            .filter(|t| !t.is_empty())
            .collect();
        canon.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        canon.dedup();
        let finders = canon
            .iter()
            .map(|t| Finder::new(t.as_bytes()).into_owned())
            .collect();
        let mut firsts = [false; 256];
        for tag in &canon {
            if let Some(&c) = tag.as_bytes().first() {
                firsts[usize::from(c)] = true;
            }
        }
        TagSet {
            tags: canon,
            finders,
            firsts,
        }
    }

    /// Cheap rejection of the files that mention no tag at all, which is nearly all of them.
    pub fn may_contain(&self, hay: &[u8]) -> bool {
        if self.finders.iter().any(|f| f.find(hay).is_some()) {
            return true;
        }
        memchr_iter(b'@', hay).any(|p| {
            self.tags.iter().any(|t| {
                hay.get(p + 1..p + 1 + t.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(t.as_bytes()))
            })
        })
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
                        return Some(parse_rest(seg, tag, end));
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
                    return Some(parse_rest(seg, tag, end));
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

/// Splits `(author): text` off what follows the tag.
fn parse_rest(seg: &str, tag: &str, end: usize) -> TagMatch {
    let mut rest = seg.get(end..).unwrap_or("");
    let mut author = None;
    if let Some(inner) = rest.strip_prefix('(')
        && let Some(close) = inner.find(')')
    {
        let name = inner[..close].trim();
        if !name.is_empty() && name.chars().count() <= 64 {
            author = Some(name.to_string());
        }
        rest = &inner[close + 1..];
    }
    let text = rest
        .trim_start()
        // `)` and `]` close a bracketed tag: `(FIXME!)`, `[TODO] text`.
        .trim_start_matches([':', '!', '-', ')', ']', '\u{2013}', '\u{2014}'])
        .trim();
    TagMatch {
        tag: tag.to_string(),
        author,
        text: text.to_string(),
    }
}
