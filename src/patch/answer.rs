//! Reading the model's answer: the code block it holds, and that code fitted to the block it
//! replaces (indentation and line endings).

use super::Rejection;

/// Extracts the code of the answer: the longest fenced block (models sometimes echo a short
/// snippet before the real answer). See [`extract_rewrite`] for choosing by the original.
pub fn extract_code_block(answer: &str) -> Result<String, Rejection> {
    extract_rewrite(answer, None)
}

/// The fenced block of `answer` that rewrites the definition named `name`: among the blocks
/// that define it (a definition header naming `name`), the longest; without such a block, or
/// without a name, the longest of all. Longest alone let a longer block of test code that
/// calls `add()` replace the function `add`.
pub fn extract_rewrite(answer: &str, name: Option<&str>) -> Result<String, Rejection> {
    let mut blocks: Vec<String> = Vec::new();
    // The open fence: its backticks, its indentation (in characters) and the lines so far.
    let mut open: Option<(usize, usize, Vec<&str>)> = None;
    for line in answer.lines() {
        let t = line.trim_start();
        let ticks = t.chars().take_while(|&c| c == '`').count();
        match &mut open {
            None if ticks >= 3 => open = Some((ticks, line.len() - t.len(), Vec::new())),
            None => {}
            Some((n, indent, body)) => {
                if ticks >= *n && t[ticks..].trim().is_empty() {
                    blocks.push(body.join("\n"));
                    open = None;
                } else {
                    // A fence indented by N (in a list item, say) indents its code by N too:
                    // up to N of each line's indentation is the fence's, not the code's
                    // (CommonMark).
                    body.push(strip_indent(line, *indent));
                }
            }
        }
    }
    let defines = |b: &String| {
        name.is_some_and(|n| b.lines().any(|l| super::gates::defined_name(l) == Some(n)))
    };
    // `(defines it, length)`: a block that defines the name beats any that does not.
    if let Some(best) = blocks.into_iter().max_by_key(|b| (defines(b), b.len())) {
        return Ok(best);
    }
    if open.is_some() {
        return Err(Rejection::UnclosedCodeBlock);
    }
    Err(Rejection::NoCodeBlock)
}

/// `line` without up to `n` characters of its leading whitespace.
fn strip_indent(line: &str, n: usize) -> &str {
    let cut = line
        .char_indices()
        .take(n)
        .take_while(|(_, c)| c.is_whitespace())
        .map(|(i, c)| i + c.len_utf8())
        .last()
        .unwrap_or(0);
    &line[cut..]
}

fn leading_ws(s: &str) -> &str {
    &s[..s.len() - s.trim_start().len()]
}

/// The line ending of the block: its own first one, or, for a one-line block without one (the
/// file's last line), the file's (`content`).
fn line_ending(original: &str, content: &str) -> &'static str {
    let of = |s: &str| {
        s.find('\n')
            .map(|i| if s[..i].ends_with('\r') { "\r\n" } else { "\n" })
    };
    of(original).or_else(|| of(content)).unwrap_or("\n")
}

/// Puts the block's indentation back when the model dropped it, its line endings (those of
/// the block, else of the file `content`) and its final newline, if it had one.
pub(super) fn conform(original: &str, code: &str, content: &str) -> String {
    let eol = line_ending(original, content);
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
            out.push_str(eol);
        }
        if reindent && !l.trim().is_empty() {
            out.push_str(base);
        }
        out.push_str(l.trim_end_matches('\r'));
    }
    // Trailing blank lines of the answer carry no meaning; the original's ending decides.
    while out.ends_with('\n') || out.ends_with('\r') {
        out.pop();
    }
    if original.ends_with('\n') {
        out.push_str(eol);
    }
    out
}
