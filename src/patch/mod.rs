//! From an answer to a checked patch: the answer's code block ([`answer`]), the gates it must
//! pass ([`gates`]), and the diff we compute and re-apply with an independent applier to prove
//! it is exactly the change we meant ([`diff`]).

mod answer;
mod diff;
mod gates;

#[cfg(test)]
mod tests;

pub use answer::{extract_code_block, extract_rewrite};
pub use diff::{apply_unified, check_single_file, unified_diff};

use crate::failure::FailureKind;
use crate::scan;
use crate::task::Target;
use answer::conform;
use gates::{count_tag, defined_name, elision_line, gated_by_syntax, stub_lines, symbol_name};

/// The largest rewritten block that becomes a patch (128 KiB of code: thousands of lines, far
/// beyond what resolving one TODO takes or a reviewer reads). It bounds what a passed answer
/// stores in Redis (its diff, its candidates) whatever the server sends under its read limit.
pub const MAX_REWRITE_BYTES: usize = 128 << 10;

/// The most of a raw answer stored on a task (64 KiB): enough to see what the model said, and a
/// bound on what a long answer costs Redis. Longer answers are stored clipped, saying so
/// ([`stored_answer`]).
pub const MAX_STORED_ANSWER_BYTES: usize = 64 << 10;

/// `answer` as stored on a task: whole up to [`MAX_STORED_ANSWER_BYTES`], else its start (cut at
/// a character boundary) and a last line saying how much was left out.
pub fn stored_answer(answer: &str) -> String {
    if answer.len() <= MAX_STORED_ANSWER_BYTES {
        return answer.to_string();
    }
    let mut end = MAX_STORED_ANSWER_BYTES;
    while !answer.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[tars: the answer's last {} of {} bytes are not stored]",
        &answer[..end],
        answer.len() - end,
        answer.len()
    )
}

/// Why an answer did not become a patch. Each is about the answer (retrying the same answer
/// cannot help; asking again may give a better one), so all are [`FailureKind::Answer`]; a
/// damaged task is refused before any answer ([`crate::task::TaskDefect`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("no code block in the answer: the model must reply with one fenced code block")]
    NoCodeBlock,
    #[error("the answer's code block is not closed (the answer was cut off)")]
    UnclosedCodeBlock,
    #[error(
        "the answer was cut off at llm.max_answer_tokens before its code block closed: raise \
         llm.max_answer_tokens or lower scan.max_block_lines"
    )]
    CutOff,
    #[error("the rewritten block is empty")]
    Empty,
    #[error(
        "the rewritten block is {bytes} bytes, more than the {limit} a reviewable change may be: \
         rewrite the block alone, keeping it about the size it is"
    )]
    TooLong { bytes: usize, limit: usize },
    #[error("the rewritten block is identical to the original")]
    Unchanged,
    #[error("the {tag} comment is still in the rewritten block")]
    TodoStillPresent { tag: String },
    #[error("the answer elides code ({line:?}): a patch must not drop the rest of the block")]
    Elision { line: String },
    #[error(
        "the answer replaces code with a stub ({line:?}): the TODO must be done, not the code deleted"
    )]
    Stub { line: String },
    #[error(
        "the rewrite changes only comments (the {tag} deleted or reworded) and leaves the code \
         as it was: do what the TODO asks"
    )]
    OnlyComments { tag: String },
    #[error(
        "the rewritten block no longer defines `{name}`: a rewrite must keep every definition \
         of the block (the answer dropped code)"
    )]
    DroppedSymbol { name: String },
    #[error(
        "the rewritten block repeats {what} of the file outside it (line {line}): reply with \
         the rewritten block alone, not the file or the context shown around the block"
    )]
    PastedContext { what: String, line: usize },
    #[error(
        "the rewritten block defines `{name}`, which the file already defines at line {line}: \
         the new definition would shadow that one; give new code a name of its own"
    )]
    Shadows { name: String, line: usize },
    #[error(
        "the patched file does not parse as {language}: a new syntax error at line {line} \
         (the answer is not valid code)"
    )]
    SyntaxError { language: String, line: usize },
    /// Our own diff did not reproduce the edit: a defect on our side that this answer set off
    /// (another answer may not).
    #[error("the computed diff does not reproduce the edit when applied: {0}")]
    DiffMismatch(String),
}

impl Rejection {
    /// Every rejection is about the answer: ask again while answers are left.
    pub fn failure_kind(&self) -> FailureKind {
        FailureKind::Answer
    }

    /// An unclosed code block from an answer the server cut at its token limit says so, and
    /// which setting to raise.
    pub fn explain_cut_off(self, finish_reason: Option<&str>) -> Rejection {
        match (self, finish_reason) {
            (Rejection::UnclosedCodeBlock, Some("length")) => Rejection::CutOff,
            (r, _) => r,
        }
    }

    /// A short stable word for summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::NoCodeBlock => "no_code_block",
            Rejection::UnclosedCodeBlock => "unclosed_code_block",
            Rejection::CutOff => "cut_off",
            Rejection::Empty => "empty",
            Rejection::TooLong { .. } => "too_long",
            Rejection::Unchanged => "unchanged",
            Rejection::TodoStillPresent { .. } => "todo_still_present",
            Rejection::Elision { .. } => "elision",
            Rejection::Stub { .. } => "stub",
            Rejection::DroppedSymbol { .. } => "dropped_symbol",
            Rejection::PastedContext { .. } => "pasted_context",
            Rejection::OnlyComments { .. } => "comments_only",
            Rejection::Shadows { .. } => "shadows",
            Rejection::SyntaxError { .. } => "syntax_error",
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

/// How many of the task's tag the scanner finds in `file` (the whole file, so the lexer sees
/// the block in its context): the same matcher that made the task, so every form it accepts
/// (`// todo:`, `@todo`, `TODO(alice)`) counts, and a rewrite that only turns `TODO` into
/// something the scanner does not report as this tag counts as removing it only if the TODO's
/// text went too (checked beside it).
fn tag_count(spec: &crate::task::TaskSpec, file: &str) -> usize {
    let opts = scan::ScanOptions {
        tags: vec![spec.tag.clone()],
        keep_content: false,
        syntax_context: false,
        ..scan::ScanOptions::default()
    };
    scan::scan_source(&spec.path, file, &opts)
        .iter()
        .filter(|t| t.tag == spec.tag)
        .count()
}

/// How many TODOs under any of the usual tags (and the task's own) the scanner finds in
/// `file` whose text holds `text` (whitespace-normalised, case ignored): a rewrite that
/// re-tags the TODO (`FIXME: same words`, `Todo: Same words`) keeps this count.
fn tagged_with_text(spec: &crate::task::TaskSpec, file: &str, text: &str) -> usize {
    let mut tags = scan::ScanOptions::default().tags;
    if !tags.contains(&spec.tag) {
        tags.push(spec.tag.clone());
    }
    let opts = scan::ScanOptions {
        tags,
        keep_content: false,
        syntax_context: false,
        ..scan::ScanOptions::default()
    };
    let text = text.to_lowercase();
    scan::scan_source(&spec.path, file, &opts)
        .iter()
        .filter(|t| {
            t.text
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
                .contains(&text)
        })
        .count()
}

/// Turns an answer into a patch, or says which gate it failed.
pub fn make_patch(target: &Target<'_>, answer: &str) -> Result<Patch, Rejection> {
    let Target {
        spec,
        content,
        block: original,
    } = *target;
    let (start, end) = (spec.block_start, spec.block_end);
    // The name the original block defines: its first definition header.
    let defined = original.lines().find_map(defined_name).map(str::to_string);
    let code = extract_rewrite(answer, defined.as_deref())?;
    if code.trim().is_empty() {
        return Err(Rejection::Empty);
    }
    if code.len() > MAX_REWRITE_BYTES {
        return Err(Rejection::TooLong {
            bytes: code.len(),
            limit: MAX_REWRITE_BYTES,
        });
    }
    let new_block = conform(original, &code, content);
    // The top of the file repeated above the rewrite (`'use strict';`, `package main`, an
    // import the file has): dropped, not held against an otherwise good answer.
    let new_block = gates::strip_leading_headers(content, start..end, &new_block)
        .map(|b| conform(original, &b, content))
        .unwrap_or(new_block);
    if new_block == original {
        return Err(Rejection::Unchanged);
    }
    let new_content = format!("{}{}{}", &content[..start], new_block, &content[end..]);
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = norm(&spec.text);
    // Where the scanner finds no tag in the original (a task whose path no longer tells its
    // language), whole words of the tag in the block decide, as before.
    let tag_gone = match tag_count(spec, content) {
        0 => count_tag(&new_block, &spec.tag) < count_tag(original, &spec.tag),
        before => tag_count(spec, &new_content) < before,
    };
    // The TODO's words may stay as a plain comment (a model often keeps them to explain the
    // new code); not under another tag, which the next scan would report again.
    let text_gone = text.len() < 8
        || match tagged_with_text(spec, content, &text) {
            0 => !norm(&new_block).contains(&text),
            before => tagged_with_text(spec, &new_content, &text) < before,
        };
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
    // A stub where the original had code: more stub lines than the original block had.
    let (was, now) = (stub_lines(original), stub_lines(&new_block));
    if now.len() > was.len()
        && let Some(line) = now.iter().find(|l| !was.contains(l)).or(now.last())
    {
        return Err(Rejection::Stub {
            line: line.to_string(),
        });
    }
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
    if gates::only_comments_changed(original, &new_block, &spec.language) {
        return Err(Rejection::OnlyComments {
            tag: spec.tag.clone(),
        });
    }
    // Definitions: each one of the block kept, none pasted from the file around it or
    // shadowing one there. After the syntax gate, so the trees compared are sound.
    gates::check_definitions(
        &gates::Rewrite {
            language: &spec.language,
            path: &spec.path,
            content,
            new_content: &new_content,
            old: start..end,
            new: start..start + new_block.len(),
        },
        &spec.text,
        &new_block,
    )?;
    // A lone package clause or import pasted from the top of the file: too short for the
    // runs above, and harmless-looking (the file still parses), but never needed twice.
    if let Some((line_text, line)) = gates::pasted_header(content, start..end, &new_block) {
        return Err(Rejection::PastedContext {
            what: format!("the header line `{line_text}`"),
            line,
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
