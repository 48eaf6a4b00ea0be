//! One file's text to [`Todo`]s: lex it, find the tags in comments, follow a TODO onto its
//! continuation lines, pick each block (tree or heuristic) and give each a stable id.

use std::collections::HashMap;

use super::block::{BlockFinder, collapse_whitespace};
use super::lang::{Language, detect_language, refine};
use super::tags::TagSet;
use super::{ByteRange, ScanOptions, Todo, lex, sha256_hex, syntax};

/// Scans one file's text. The language comes from `path` (or the shebang); an unknown language
/// yields nothing.
///
/// Ids hash the path, tag, text, enclosing symbol and the count of identical earlier tags, and
/// deliberately not the line number, so that edits elsewhere in the file keep them.
pub fn scan_source(path: &str, content: &str, opts: &ScanOptions) -> Vec<Todo> {
    let text = content.strip_prefix('\u{feff}').unwrap_or(content);
    let first_line = text.lines().next().unwrap_or("");
    let Some(lang) = detect_language(path, first_line) else {
        return Vec::new();
    };
    let lang = refine(lang, &text.as_bytes()[..text.len().min(8 << 10)]);
    // No whole-file prefilter for a single file: setting it up costs more than it saves.
    scan_text(path, content, lang, &TagSet::new(&opts.tags), None, opts)
}

pub(super) fn scan_text(
    path: &str,
    content: &str,
    lang: &Language,
    tags: &TagSet,
    candidates: Option<&[usize]>,
    opts: &ScanOptions,
) -> Vec<Todo> {
    let bom = if content.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let text = &content[bom..];
    let lexed = lex::lex(text, lang);
    let mut hits = Vec::new();
    let mut last_hit_line = None;
    let mut k = 0;
    // Index of the first candidate at or after the current segment.
    let mut cand = 0;
    while k < lexed.segments.len() {
        let seg = &lexed.segments[k];
        k += 1;
        if last_hit_line == Some(seg.line) {
            continue;
        }
        if let Some(cands) = candidates {
            while cands.get(cand).is_some_and(|&c| c < seg.start) {
                cand += 1;
            }
            if cands.get(cand).is_none_or(|&c| c >= seg.end) {
                continue;
            }
        }
        let Some(comment) = text.get(seg.start..seg.end) else {
            continue;
        };
        if let Some(mut found) = tags.find(comment) {
            last_hit_line = Some(seg.line);
            let tag_col = column(text, &lexed.lines, seg.line, seg.start + found.at);
            let mut prev = seg;
            while let Some(next) = lexed.segments.get(k)
                && let Some(more) = continuation(text, &lexed, prev, next, tag_col, tags)
            {
                if !more.is_empty() {
                    if !found.text.is_empty() {
                        found.text.push(' ');
                    }
                    found.text.push_str(more);
                }
                prev = next;
                k += 1;
            }
            let pos = seg.start + found.at;
            hits.push((seg.line, seg.comment_line, pos, found));
        }
    }
    if hits.is_empty() {
        return Vec::new();
    }

    // Only a run stores files and checks them against this hash; a listing skips the cost.
    let content_hash = if opts.keep_content {
        sha256_hex(content.as_bytes())
    } else {
        String::new()
    };
    let mut finder = BlockFinder::new(text, &lexed.lines, lang.labels);
    let tree = if opts.syntax_context {
        syntax::SyntaxTree::parse(lang.name, path, text)
    } else {
        None
    };
    let mut occurrences: HashMap<(String, String, String), usize> = HashMap::new();
    let mut todos = Vec::with_capacity(hits.len());
    for (line, comment_line, pos, found) in hits {
        let heuristic = finder.block(line, comment_line, opts.max_block_lines);
        let mut block = tree
            .as_ref()
            .and_then(|t| t.block(pos, opts.max_block_lines))
            .filter(|b| b.first <= line && line <= b.last)
            .unwrap_or_else(|| heuristic.clone());
        // A tag lower in a block comment than the scope its first line opens: the block runs
        // on to the tag's line, or no answer could remove the tag. Past `max_block_lines` it
        // is only a window ending there.
        if line < block.first || line > block.last {
            block.first = block.first.min(line);
            block.last = block.last.max(line);
            if block.last - block.first >= opts.max_block_lines.max(1) {
                block.first = line + 1 - opts.max_block_lines.max(1).min(line + 1);
                block.last = line;
                block.symbol = None;
            }
        }
        let (Some(first), Some(last)) = (lexed.lines.get(block.first), lexed.lines.get(block.last))
        else {
            continue;
        };
        let norm_text = collapse_whitespace(&found.text);
        // The heuristic's symbol, which every language and both settings of `syntax_context`
        // compute the same way: a listing and a run must agree on ids.
        let norm_symbol = collapse_whitespace(heuristic.symbol.as_deref().unwrap_or(""));
        let key = (found.tag.clone(), norm_text, norm_symbol);
        let seen = occurrences.entry(key.clone()).or_default();
        let id = stable_id(path, &key.0, &key.1, &key.2, *seen);
        *seen += 1;
        todos.push(Todo {
            id,
            path: path.to_string(),
            line: line + 1,
            tag: found.tag,
            text: found.text,
            author: found.author,
            issue: found.issue,
            language: lang.name.to_string(),
            symbol: block.symbol,
            block: ByteRange {
                start: bom + first.start,
                end: bom + last.next,
            },
            block_lines: (block.first + 1, block.last + 1),
            content_hash: content_hash.clone(),
        });
    }
    todos
}

/// Visual column (tabs to the next multiple of four) of byte `pos` on line `line`.
fn column(text: &str, lines: &[lex::LineInfo], line: usize, pos: usize) -> usize {
    let start = lines.get(line).map_or(0, |l| l.start);
    text.get(start..pos).map_or(0, |head| {
        head.chars().fold(0, |col, c| match c {
            '\t' => col + 4 - col % 4,
            _ => col + 1,
        })
    })
}

/// The text `next` adds to a TODO whose last line is `prev`, when it continues it: the line
/// directly below, holding only comment, of the same comment or one opened the same way
/// (`//` under `//`), carrying no tag, with its words indented deeper than the tag
/// (`# TODO: a` / `#   b`). An empty comment line ends the TODO.
fn continuation<'t>(
    text: &'t str,
    lexed: &lex::Lexed,
    prev: &lex::Segment,
    next: &lex::Segment,
    tag_col: usize,
    tags: &TagSet,
) -> Option<&'t str> {
    let prev_line = lexed.lines.get(prev.line)?;
    let next_line = lexed.lines.get(next.line)?;
    if next.line != prev.line + 1 || prev.end != prev_line.end || !next_line.is_comment_only() {
        return None;
    }
    let same_comment = next.comment_line == prev.comment_line && next.comment_line < next.line;
    if !same_comment {
        // A new comment: it must open the line and use the same opener as the one above.
        let opener = |line: &lex::LineInfo, seg: &lex::Segment| {
            line.comment_at
                .and_then(|at| text.get(at..seg.start))
                .map(str::trim)
        };
        let (Some(a), Some(b)) = (opener(prev_line, prev), opener(next_line, next)) else {
            return None;
        };
        if a != b || next.comment_line != next.line {
            return None;
        }
        let before = text.get(next_line.start..next_line.comment_at?)?;
        if !before.trim().is_empty() {
            return None;
        }
    }
    let body = text.get(next.start..next.end)?;
    let words = body.trim_start_matches([' ', '\t', '*', '/', '!', '#', ';', '%']);
    let words_trimmed = words.trim_end();
    if words_trimmed.is_empty() || tags.find(body).is_some() {
        return None;
    }
    let at = next.start + (body.len() - words.len());
    if column(text, &lexed.lines, next.line, at) <= tag_col {
        return None;
    }
    Some(words_trimmed)
}

fn stable_id(path: &str, tag: &str, text: &str, symbol: &str, occurrence: usize) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in [path, tag, text, symbol] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher.update(occurrence.to_string().as_bytes());
    let mut id = hex::encode(hasher.finalize());
    id.truncate(16);
    id
}
