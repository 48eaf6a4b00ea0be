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

fn leading_ws(s: &str) -> &str {
    &s[..s.len() - s.trim_start().len()]
}

/// Puts the block's indentation back when the model dropped it, and its final newline.
pub(super) fn conform(original: &str, code: &str) -> String {
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
