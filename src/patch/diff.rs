//! The unified diff we compute ourselves, and a second, independent, strict applier that proves
//! the diff is exactly the edit we meant (and lets `apply` write it).

/// A git-style unified diff of one file (`diff --git a/P b/P`), as `git apply` wants it.
///
/// Lines end at `\n` only, as git and [`apply_unified`] see them: `similar`'s own line diff
/// also ends a line at a lone `\r`, which cut such a line in two in the diff and shifted its
/// hunk numbers, so the lines are split here and only the matching is `similar`'s.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let diff = similar::TextDiff::from_slices(&old_lines, &new_lines);
    let mut out = format!("diff --git a/{path} b/{path}\n");
    for (i, ops) in diff.grouped_ops(3).iter().enumerate() {
        if ops.is_empty() {
            continue;
        }
        if i == 0 {
            out.push_str(&format!("--- a/{path}\n+++ b/{path}\n"));
        }
        out.push_str(&format!(
            "{}\n",
            similar::udiff::UnifiedHunkHeader::new(ops)
        ));
        for op in ops {
            for change in diff.iter_changes(op) {
                out.push(match change.tag() {
                    similar::ChangeTag::Equal => ' ',
                    similar::ChangeTag::Delete => '-',
                    similar::ChangeTag::Insert => '+',
                });
                let line = change.value();
                out.push_str(line);
                if !line.ends_with('\n') {
                    out.push_str("\n\\ No newline at end of file\n");
                }
            }
        }
    }
    out
}

/// Checks that `diff` is what [`unified_diff`] makes for `path` and nothing more: exactly the
/// three header lines naming `path`, then hunks. A patch read back from Redis may have been
/// rewritten by anyone on its network; one that also creates, deletes, renames or changes the
/// mode of a file, or edits another path, would do so when a reviewer runs `git apply` on it.
pub fn check_single_file(diff: &str, path: &str) -> Result<(), String> {
    let mut lines = diff.split_inclusive('\n');
    let header = [
        format!("diff --git a/{path} b/{path}\n"),
        format!("--- a/{path}\n"),
        format!("+++ b/{path}\n"),
    ];
    for want in &header {
        match lines.next() {
            Some(l) if l == want => {}
            Some(l) => {
                return Err(format!(
                    "its header line {:?} is not {:?}",
                    l.trim_end(),
                    want.trim_end()
                ));
            }
            None => return Err("it has no hunk".into()),
        }
    }
    let mut hunks = 0;
    for l in lines {
        match l.as_bytes().first() {
            Some(b'@') if l.starts_with("@@ ") => hunks += 1,
            Some(b' ' | b'-' | b'+' | b'\\') if hunks > 0 => {}
            _ => return Err(format!("it holds a line that is not part of a hunk: {l:?}")),
        }
    }
    if hunks == 0 {
        return Err("it has no hunk".into());
    }
    Ok(())
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
            // Split after the one-byte op only: a line may open with a multi-byte character.
            let (op, rest) = match l.as_bytes().first() {
                Some(b' ' | b'-' | b'+' | b'\\') => l.split_at(1),
                _ => return Err(format!("unexpected diff line {l:?}")),
            };
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
