//! From a TODO to a checked patch: the prompt, the answer's code block, the splice, the diff and
//! the gates.
//!
//! Local models write whole blocks far more reliably than diffs (Aider's leaderboards: ~99%
//! well-formed whole outputs against ~70% for SEARCH/REPLACE), and they cannot count lines. So
//! the model returns the complete rewritten block, we splice it over the block's byte range and
//! compute the diff ourselves, and then re-apply that diff with an independent applier to prove
//! it is exactly the change we meant.

use crate::llm::Message;
use crate::queue::TaskSpec;
use crate::scan;

/// Why an answer did not become a patch. These are permanent for that answer: asking again may
/// give a better one, but retrying the same answer cannot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("no code block in the answer: the model must reply with one fenced code block")]
    NoCodeBlock,
    #[error("the answer's code block is not closed (the answer was cut off)")]
    UnclosedCodeBlock,
    #[error("the rewritten block is empty")]
    Empty,
    #[error("the rewritten block is identical to the original")]
    Unchanged,
    #[error("the {tag} comment is still in the rewritten block")]
    TodoStillPresent { tag: String },
    #[error("the answer elides code ({line:?}): a patch must not drop the rest of the block")]
    Elision { line: String },
    #[error(
        "the rewritten block no longer defines `{name}`: the answer dropped the code around the TODO"
    )]
    DroppedSymbol { name: String },
    #[error(
        "the patched file does not parse as {language}: a new syntax error at line {line} \
         (the answer is not valid code)"
    )]
    SyntaxError { language: String, line: usize },
    #[error("the task's block range {start}..{end} does not fit the file ({len} bytes)")]
    BadRange {
        start: usize,
        end: usize,
        len: usize,
    },
    #[error("the computed diff does not reproduce the edit when applied: {0}")]
    DiffMismatch(String),
}

impl Rejection {
    /// A short stable word for summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::NoCodeBlock => "no_code_block",
            Rejection::UnclosedCodeBlock => "unclosed_code_block",
            Rejection::Empty => "empty",
            Rejection::Unchanged => "unchanged",
            Rejection::TodoStillPresent { .. } => "todo_still_present",
            Rejection::Elision { .. } => "elision",
            Rejection::DroppedSymbol { .. } => "dropped_symbol",
            Rejection::SyntaxError { .. } => "syntax_error",
            Rejection::BadRange { .. } => "bad_range",
            Rejection::DiffMismatch(_) => "diff_mismatch",
        }
    }
}

/// A patch that passed every gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// Git-style unified diff, paths relative to the repository root (`git apply` accepts it).
    pub diff: String,
    pub new_block: String,
    pub lines_added: usize,
    pub lines_removed: usize,
}

const SYSTEM_PROMPT: &str = "You are a careful senior software engineer. You get one block of \
code from a file and a TODO or FIXME comment inside it. Rewrite the block so that the TODO is \
done, and delete the TODO comment. Reply with the complete rewritten block in ONE fenced code \
block and nothing else. Keep the rest of the block as it is. Never shorten code with '...' or \
comments such as 'rest of the code'.";

/// Builds the chat messages. `budget_tokens` bounds the prompt: the block always goes in; the
/// lines before it are added, nearest first, while they fit, since they carry the imports and
/// types the rewrite needs.
pub fn build_prompt(spec: &TaskSpec, content: &str, budget_tokens: u64) -> Vec<Message> {
    let block = content
        .get(spec.block_start..spec.block_end)
        .unwrap_or_default();
    let fence = fence_for(block);
    let lang = spec.language.as_str();
    let tag_line = if spec.text.is_empty() {
        spec.tag.clone()
    } else {
        format!("{}: {}", spec.tag, spec.text)
    };
    let head = format!(
        "File: {}\nLanguage: {}\nTask (line {}): {}\n",
        spec.path, lang, spec.line, tag_line
    );
    let tail = format!(
        "\nBlock to rewrite:\n{fence}{lang}\n{}{}{fence}\n\nReply with the whole rewritten block \
         in one {fence}{lang} code block.",
        block,
        if block.ends_with('\n') { "" } else { "\n" },
    );
    let fixed = (SYSTEM_PROMPT.len() + head.len() + tail.len()) as u64 / 4 + 16;
    let mut context = String::new();
    if budget_tokens > fixed {
        let mut room = ((budget_tokens - fixed) * 4) as usize;
        let before = content.get(..spec.block_start).unwrap_or_default();
        let mut lines: Vec<&str> = Vec::new();
        for line in before.split_inclusive('\n').rev().take(200) {
            if line.len() + 1 > room {
                break;
            }
            room -= line.len();
            lines.push(line);
        }
        lines.reverse();
        if !lines.is_empty() {
            context = format!(
                "\nThe file before the block (context, do not repeat it):\n{fence}{lang}\n{}{fence}\n",
                lines.concat()
            );
        }
    }
    vec![
        Message::system(SYSTEM_PROMPT),
        Message::user(format!("{head}{context}{tail}")),
    ]
}

/// A fence longer than any backtick run in the block, so code that contains ``` stays intact.
fn fence_for(block: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in block.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat(longest.max(2) + 1)
}

/// Extracts the code of the answer: the longest fenced block (models sometimes echo a short
/// snippet before the real answer).
pub fn extract_code_block(answer: &str) -> Result<String, Rejection> {
    let mut blocks: Vec<String> = Vec::new();
    let mut open: Option<(usize, Vec<&str>)> = None;
    for line in answer.lines() {
        let t = line.trim_start();
        let ticks = t.chars().take_while(|&c| c == '`').count();
        match &mut open {
            None if ticks >= 3 => open = Some((ticks, Vec::new())),
            None => {}
            Some((n, body)) => {
                if ticks >= *n && t[ticks..].trim().is_empty() {
                    blocks.push(body.join("\n"));
                    open = None;
                } else {
                    body.push(line);
                }
            }
        }
    }
    if let Some(best) = blocks.into_iter().max_by_key(|b| b.len()) {
        return Ok(best);
    }
    if open.is_some() {
        return Err(Rejection::UnclosedCodeBlock);
    }
    Err(Rejection::NoCodeBlock)
}

fn leading_ws(s: &str) -> &str {
    &s[..s.len() - s.trim_start().len()]
}

/// Puts the block's indentation back when the model dropped it, and its final newline.
fn conform(original: &str, code: &str) -> String {
    let base = original
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(leading_ws)
        .unwrap_or("");
    let code_lines: Vec<&str> = code.lines().collect();
    let first = code_lines
        .iter()
        .find(|l| !l.trim().is_empty())
        .map(|l| leading_ws(l))
        .unwrap_or("");
    let mut out = String::with_capacity(code.len() + 64);
    let reindent = !base.is_empty() && first.is_empty();
    for (i, l) in code_lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if reindent && !l.trim().is_empty() {
            out.push_str(base);
        }
        out.push_str(l.trim_end_matches('\r'));
    }
    // Trailing blank lines of the answer carry no meaning; the original's ending decides.
    while out.ends_with('\n') {
        out.pop();
    }
    if original.ends_with("\r\n") {
        out = out.replace('\n', "\r\n");
        out.push_str("\r\n");
    } else if original.ends_with('\n') {
        out.push('\n');
    }
    out
}

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
];

/// A line that stands for code the model left out rather than being code.
fn elision_line(line: &str) -> bool {
    let t = line.trim();
    let body = t
        .trim_start_matches(['/', '#', '*', '-', '<', '!', ';', '('])
        .trim_end_matches(['/', '*', '>', '-', ')'])
        .trim();
    if body == "..." || body == "…" || body == "// ..." {
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
    (lower.contains("...") || lower.contains('…') || lower.len() < 60)
        && ELISION_MARKERS.iter().any(|m| lower.contains(m))
}

/// Counts whole-word occurrences of `tag` (so `TODOS` or `todo_list` do not count).
fn count_tag(text: &str, tag: &str) -> usize {
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

/// The name a block's header defines (`parse_port` in `pub fn parse_port(s: &str) -> u16 {`,
/// `Cart` in `class Cart:`), so a rewrite that deletes the definition can be recognised. A
/// changed signature is fine; a vanished name is not.
fn symbol_name(header: &str) -> Option<&str> {
    const NOT_NAMES: &[&str] = &[
        "if", "for", "while", "switch", "catch", "match", "function", "fn", "def", "func",
        "return", "with", "elif", "else", "foreach", "unless", "until", "sizeof",
    ];
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

/// Whether the syntax gate applies. Not to C and C++: their grammars cannot follow macros
/// that stand in for control flow (`list_for_each_entry(p, h, n) {`) or GNU extensions
/// (`case 1 ... 9:`), so a valid rewrite in a project's own idiom would count as broken.
fn gated_by_syntax(language: &str) -> bool {
    scan::has_grammar(language) && !matches!(language, "c" | "cpp")
}

/// Turns an answer into a patch, or says which gate it failed.
pub fn make_patch(spec: &TaskSpec, content: &str, answer: &str) -> Result<Patch, Rejection> {
    let (start, end) = (spec.block_start, spec.block_end);
    let original = match content.get(start..end) {
        Some(b) if start <= end => b,
        _ => {
            return Err(Rejection::BadRange {
                start,
                end,
                len: content.len(),
            });
        }
    };
    let code = extract_code_block(answer)?;
    if code.trim().is_empty() {
        return Err(Rejection::Empty);
    }
    let new_block = conform(original, &code);
    if new_block == original {
        return Err(Rejection::Unchanged);
    }
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = norm(&spec.text);
    let tag_gone = count_tag(&new_block, &spec.tag) < count_tag(original, &spec.tag);
    let text_gone = text.len() < 8 || !norm(&new_block).contains(&text);
    if !tag_gone || !text_gone {
        return Err(Rejection::TodoStillPresent {
            tag: spec.tag.clone(),
        });
    }
    if let Some(name) = spec.symbol.as_deref().and_then(symbol_name)
        && count_tag(original, name) > 0
        && count_tag(&new_block, name) == 0
    {
        return Err(Rejection::DroppedSymbol {
            name: name.to_string(),
        });
    }
    let had_elision: Vec<&str> = original.lines().filter(|l| elision_line(l)).collect();
    if let Some(line) = new_block
        .lines()
        .find(|l| elision_line(l) && !had_elision.contains(&l.trim()) && !had_elision.contains(l))
    {
        return Err(Rejection::Elision {
            line: line.trim().to_string(),
        });
    }
    let new_content = format!("{}{}{}", &content[..start], new_block, &content[end..]);
    // Small models often return code that looks right and does not compile: an unclosed brace,
    // a half-written expression. Where we have a grammar, the patched file must not have more
    // syntax errors than the original (which may have some a grammar cannot follow, such as C
    // macros).
    let errors = |text: &str, len: usize| {
        scan::syntax_errors(&spec.language, &spec.path, text, start..start + len)
    };
    // The original is parsed only when the patched file has errors to compare with.
    if gated_by_syntax(&spec.language)
        && let Some(after) = errors(&new_content, new_block.len())
        && after.count > 0
        && let Some(before) = errors(content, end - start)
        && after.count > before.count
    {
        return Err(Rejection::SyntaxError {
            language: spec.language.clone(),
            line: after.first_line.unwrap_or(spec.line),
        });
    }
    let diff = unified_diff(&spec.path, content, &new_content);
    match apply_unified(content, &diff) {
        Ok(applied) if applied == new_content => {}
        Ok(_) => {
            return Err(Rejection::DiffMismatch(
                "applying it gives a different file".into(),
            ));
        }
        Err(e) => return Err(Rejection::DiffMismatch(e)),
    }
    let (mut lines_added, mut lines_removed) = (0, 0);
    for l in diff.lines().skip(4) {
        if l.starts_with('+') {
            lines_added += 1;
        } else if l.starts_with('-') {
            lines_removed += 1;
        }
    }
    Ok(Patch {
        diff,
        new_block,
        lines_added,
        lines_removed,
    })
}

/// A git-style unified diff of one file (`diff --git a/P b/P`), as `git apply` wants it.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    let diff = similar::TextDiff::from_lines(old, new);
    let body = diff
        .unified_diff()
        .context_radius(3)
        .missing_newline_hint(true)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    format!("diff --git a/{path} b/{path}\n{body}")
}

/// Applies a single-file unified diff to `old`, strictly (context must match exactly). This is
/// a second, independent implementation that checks the diff we produced, not a general patch
/// tool.
pub fn apply_unified(old: &str, diff: &str) -> Result<String, String> {
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let mut out = String::with_capacity(old.len() + diff.len());
    let mut pos = 0usize; // next old line to copy (0-based)
    let mut lines = diff.split_inclusive('\n').peekable();
    // Skip headers up to the first hunk.
    while let Some(l) = lines.peek() {
        if l.starts_with("@@") {
            break;
        }
        lines.next();
    }
    let mut last_out_line_start: Option<usize> = None;
    while let Some(h) = lines.next() {
        let h = h.trim_end_matches('\n');
        if !h.starts_with("@@") {
            return Err(format!("expected a hunk header, got {h:?}"));
        }
        let old_start = parse_hunk_start(h).ok_or_else(|| format!("bad hunk header {h:?}"))?;
        let target = old_start.saturating_sub(1);
        if target < pos || target > old_lines.len() {
            return Err(format!("hunk {h:?} is out of order or out of range"));
        }
        for l in &old_lines[pos..target] {
            out.push_str(l);
        }
        pos = target;
        while let Some(l) = lines.peek() {
            if l.starts_with("@@") {
                break;
            }
            let l = lines.next().unwrap_or_default();
            let (op, rest) = l.split_at(1.min(l.len()));
            match op {
                " " | "-" => {
                    let want = old_lines
                        .get(pos)
                        .ok_or_else(|| "the diff runs past the end of the file".to_string())?;
                    let expect_no_nl = lines.peek().is_some_and(|n| n.starts_with('\\'));
                    let matches = if expect_no_nl {
                        *want == rest.trim_end_matches('\n')
                    } else {
                        *want == rest
                    };
                    if !matches {
                        return Err(format!(
                            "line {} does not match: {want:?} vs {rest:?}",
                            pos + 1
                        ));
                    }
                    pos += 1;
                    if op == " " {
                        last_out_line_start = Some(out.len());
                        out.push_str(want);
                    } else if expect_no_nl {
                        lines.next();
                    }
                }
                "+" => {
                    last_out_line_start = Some(out.len());
                    out.push_str(rest);
                }
                "\\" => {
                    // "\ No newline at end of file" after a context or added line.
                    if last_out_line_start.is_some() && out.ends_with('\n') {
                        out.pop();
                    }
                }
                _ => return Err(format!("unexpected diff line {l:?}")),
            }
        }
    }
    for l in &old_lines[pos..] {
        out.push_str(l);
    }
    Ok(out)
}

fn parse_hunk_start(h: &str) -> Option<usize> {
    let minus = h.split_whitespace().nth(1)?.strip_prefix('-')?;
    minus.split(',').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(content: &str, block: &str, text: &str) -> TaskSpec {
        let start = content.find(block).unwrap();
        TaskSpec {
            id: "t1".into(),
            path: "src/lib.rs".into(),
            line: 2,
            tag: "TODO".into(),
            text: text.into(),
            language: "rust".into(),
            symbol: None,
            block_start: start,
            block_end: start + block.len(),
            content_hash: String::new(),
            block_hash: String::new(),
        }
    }

    const FILE: &str = "use std::fmt;\n\nfn add(a: i32, b: i32) -> i32 {\n    // TODO: handle overflow\n    a + b\n}\n\nfn main() {}\n";
    const BLOCK: &str =
        "fn add(a: i32, b: i32) -> i32 {\n    // TODO: handle overflow\n    a + b\n}\n";

    #[test]
    fn good_answer_becomes_a_patch_that_applies() {
        let s = spec(FILE, BLOCK, "handle overflow");
        let answer = "Here you go:\n```rust\nfn add(a: i32, b: i32) -> i32 {\n    a.saturating_add(b)\n}\n```\n";
        let p = make_patch(&s, FILE, answer).unwrap();
        assert!(p.diff.starts_with(
            "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@"
        ));
        assert!(p.diff.contains("-    // TODO: handle overflow\n"));
        assert!(p.diff.contains("+    a.saturating_add(b)\n"));
        let applied = apply_unified(FILE, &p.diff).unwrap();
        assert!(applied.contains("saturating_add") && !applied.contains("TODO"));
        assert!(applied.ends_with("fn main() {}\n"));
        assert_eq!((p.lines_added, p.lines_removed), (1, 2));
    }

    #[test]
    fn gates_reject_bad_answers() {
        let s = spec(FILE, BLOCK, "handle overflow");
        assert_eq!(
            make_patch(&s, FILE, "I would use saturating_add."),
            Err(Rejection::NoCodeBlock)
        );
        assert_eq!(
            make_patch(&s, FILE, "```rust\nfn add(a: i32, b: i32) -> i32 {\n"),
            Err(Rejection::UnclosedCodeBlock)
        );
        assert_eq!(
            make_patch(&s, FILE, &format!("```rust\n{BLOCK}```")),
            Err(Rejection::Unchanged)
        );
        let still = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    // TODO: handle overflow\n    a.wrapping_add(b)\n}\n```";
        assert!(matches!(
            make_patch(&s, FILE, still),
            Err(Rejection::TodoStillPresent { .. })
        ));
        let elided =
            "```rust\nfn add(a: i32, b: i32) -> i32 {\n    // ... rest of the code\n}\n```";
        assert!(matches!(
            make_patch(&s, FILE, elided),
            Err(Rejection::Elision { .. })
        ));
        let dots = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    ...\n}\n```";
        assert!(matches!(
            make_patch(&s, FILE, dots),
            Err(Rejection::Elision { .. })
        ));
    }

    #[test]
    fn longest_block_wins_and_indentation_is_restored() {
        let content = "impl A {\n    fn f(&self) {\n        // TODO: log\n        g();\n    }\n}\n";
        let block = "    fn f(&self) {\n        // TODO: log\n        g();\n    }\n";
        let s = spec(content, block, "log");
        let answer = "```\ng();\n```\nFull:\n```rust\nfn f(&self) {\n    tracing::info!(\"f\");\n    g();\n}\n```";
        let p = make_patch(&s, content, answer).unwrap();
        assert_eq!(
            p.new_block,
            "    fn f(&self) {\n        tracing::info!(\"f\");\n        g();\n    }\n"
        );
    }

    #[test]
    fn file_without_final_newline_round_trips() {
        let content = "x = 1\n# TODO: fix\ny = 2";
        let block = "# TODO: fix\ny = 2";
        let s = spec(content, block, "fix");
        let p = make_patch(&s, content, "```python\ny = 3\n```").unwrap();
        assert!(p.diff.contains("No newline at end of file"), "{}", p.diff);
        assert_eq!(apply_unified(content, &p.diff).unwrap(), "x = 1\ny = 3");
    }

    #[test]
    fn applier_rejects_mismatched_context() {
        let diff = unified_diff("f", "a\nb\nc\n", "a\nB\nc\n");
        assert!(apply_unified("a\nx\nc\n", &diff).is_err());
        assert_eq!(apply_unified("a\nb\nc\n", &diff).unwrap(), "a\nB\nc\n");
    }

    #[test]
    fn deleting_the_function_is_rejected_but_changing_its_signature_is_not() {
        let mut s = spec(FILE, BLOCK, "handle overflow");
        s.symbol = Some("fn add(a: i32, b: i32) -> i32 {".into());
        let gone = "```rust\n// addition lives elsewhere now\n```";
        assert_eq!(
            make_patch(&s, FILE, gone),
            Err(Rejection::DroppedSymbol { name: "add".into() })
        );
        let resig =
            "```rust\nfn add(a: i32, b: i32) -> Option<i32> {\n    a.checked_add(b)\n}\n```";
        assert!(make_patch(&s, FILE, resig).is_ok());
        assert_eq!(symbol_name("backup() {"), Some("backup"));
        assert_eq!(symbol_name("class Cart(Base):"), Some("Cart"));
        assert_eq!(symbol_name("impl<T> Queue<T> {"), Some("Queue"));
        assert_eq!(symbol_name("if (x) {"), None);
    }

    #[test]
    fn an_answer_that_does_not_parse_is_rejected_with_its_line() {
        let s = spec(FILE, BLOCK, "handle overflow");
        let unclosed = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    a.checked_add(b).unwrap_or(i32::MAX\n}\n```";
        assert_eq!(
            make_patch(&s, FILE, unclosed),
            Err(Rejection::SyntaxError {
                language: "rust".into(),
                line: 4
            })
        );
        let fine = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    a.saturating_add(b)\n}\n```";
        assert!(make_patch(&s, FILE, fine).is_ok());

        // Python: a colon lost.
        let py = "import os\n\ndef f(x):\n    # TODO: check x\n    return x\n";
        let block = "def f(x):\n    # TODO: check x\n    return x\n";
        let mut s = spec(py, block, "check x");
        s.language = "python".into();
        s.path = "f.py".into();
        let no_colon =
            "```python\ndef f(x):\n    if x is None\n        raise ValueError\n    return x\n```";
        let r = make_patch(&s, py, no_colon);
        assert!(
            matches!(r, Err(Rejection::SyntaxError { line: 4, .. })),
            "{r:?}"
        );
        let good = "```python\ndef f(x):\n    if x is None:\n        raise ValueError(\"x\")\n    return x\n```";
        assert!(make_patch(&s, py, good).is_ok());
    }

    #[test]
    fn errors_the_file_already_had_do_not_count_against_the_answer() {
        // Something the Rust grammar cannot read, elsewhere in the file, left as it was.
        let rs = "macro_rules! m { ($x:tt) => { broken( }\n\nfn f(a: i32) -> i32 {\n    // TODO: clamp\n    a\n}\n";
        let block = "fn f(a: i32) -> i32 {\n    // TODO: clamp\n    a\n}\n";
        let s = spec(rs, block, "clamp");
        let before = scan::syntax_errors("rust", "src/lib.rs", rs, 0..0).unwrap();
        assert!(before.count > 0, "the fixture must start broken");
        let answer = "```rust\nfn f(a: i32) -> i32 {\n    a.max(0)\n}\n```";
        assert!(make_patch(&s, rs, answer).is_ok());
        // No grammar, no gate: Ruby is taken as it comes.
        let rb = "def f\n  # TODO: x\n  1\nend\n";
        let mut s = spec(rb, rb, "x");
        s.language = "ruby".into();
        s.path = "f.rb".into();
        assert!(make_patch(&s, rb, "```ruby\ndef f\n  2\n```").is_ok());
        // C and C++ are not gated: kernel-style iteration macros are valid code there.
        let c = "int count(struct list_head *head) {\n    int n = 0;\n    /* TODO: count */\n    return n;\n}\n";
        let mut s = spec(c, c, "count");
        s.language = "c".into();
        s.path = "list.c".into();
        let idiom = "```c\nint count(struct list_head *head) {\n    int n = 0;\n    struct item *pos;\n    list_for_each_entry(pos, head, node) { n++; }\n    return n;\n}\n```";
        assert!(make_patch(&s, c, idiom).is_ok());
    }

    #[test]
    fn a_syntax_error_is_reported_inside_the_rewritten_block() {
        // A lost colon in a method: the parser's error starts at the class line, above the
        // block; the reader is pointed at the block.
        let py = "class A:\n    x = 1\n\n    def f(self, x):\n        # TODO: check x\n        return x\n";
        let block = "    def f(self, x):\n        # TODO: check x\n        return x\n";
        let mut s = spec(py, block, "check x");
        s.language = "python".into();
        s.path = "a.py".into();
        let answer = "```python\n    def f(self, x)\n        return abs(x)\n```";
        match make_patch(&s, py, answer) {
            Err(Rejection::SyntaxError { line, .. }) => assert!((4..=5).contains(&line), "{line}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_range_is_rejected_not_panicking() {
        let mut s = spec(FILE, BLOCK, "handle overflow");
        s.block_end = FILE.len() + 10;
        assert!(matches!(
            make_patch(&s, FILE, "```\nx\n```"),
            Err(Rejection::BadRange { .. })
        ));
    }

    #[test]
    fn prompt_holds_block_and_fits_budget() {
        let s = spec(FILE, BLOCK, "handle overflow");
        let m = build_prompt(&s, FILE, 2000);
        assert_eq!(m.len(), 2);
        assert!(m[1].content.contains(BLOCK));
        assert!(m[1].content.contains("use std::fmt;"));
        let small = build_prompt(&s, FILE, 10);
        assert!(!small[1].content.contains("use std::fmt;"));
        assert!(small[1].content.contains(BLOCK));
    }
}
