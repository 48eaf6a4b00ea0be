//! Several patches to one file, one after another: the stacking that `apply` and `land` share.
//!
//! Every patch of a run was made against the file as it was scanned. Two of them can both
//! land when their TODOs' blocks do not overlap: each patch's new block is taken from the
//! patch applied to the scanned file (it must change nothing outside its block), and spliced
//! into the file as the earlier patches left it. The diff of each step is computed again and
//! re-applied by the independent applier, as the gates do, so each step is exactly the
//! change meant. A patch whose block overlaps one already stacked, or that does not apply, is
//! skipped with its reason; it is never forced.

use std::ops::Range;

use crate::patch::{apply_unified, check_single_file, unified_diff};

/// One patch to stack: the task it resolves, its block's byte range in the scanned file, and
/// its diff against the scanned file.
#[derive(Debug, Clone)]
pub struct Edit<'a> {
    pub task: &'a str,
    pub block: Range<usize>,
    pub patch: &'a str,
}

/// One step of a stack: the file before and after it, and the step's own diff (against the
/// file as the earlier steps left it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub after: String,
    pub diff: String,
}

/// Stacks `edits` (in the order given: the callers sort by line) onto `scanned`, the file at
/// `path` as it was scanned. One result per edit, in order: its step, or why it was skipped.
pub fn stack(path: &str, scanned: &str, edits: &[Edit<'_>]) -> Vec<Result<Step, String>> {
    let mut current = scanned.to_string();
    // The blocks stacked so far, in scanned coordinates, with what each changed the length by.
    let mut stacked: Vec<(Range<usize>, isize, &str)> = Vec::new();
    let mut out = Vec::with_capacity(edits.len());
    for e in edits {
        let step = new_block(path, scanned, e).and_then(|block| {
            if let Some((r, _, other)) = stacked
                .iter()
                .find(|(r, _, _)| e.block.start < r.end && r.start < e.block.end)
            {
                return Err(format!(
                    "its block (lines {}) overlaps the block of task {other} (lines {}), \
                     which lands before it: run again after this lands to resolve it",
                    lines(scanned, &e.block),
                    lines(scanned, r)
                ));
            }
            let shift: isize = stacked
                .iter()
                .filter(|(r, _, _)| r.end <= e.block.start)
                .map(|(_, d, _)| d)
                .sum();
            let at = |i: usize| i.checked_add_signed(shift).filter(|&j| j <= current.len());
            let (Some(start), Some(end)) = (at(e.block.start), at(e.block.end)) else {
                return Err("its block lies outside the file as stacked so far".into());
            };
            let after = format!("{}{}{}", &current[..start], block, &current[end..]);
            let diff = unified_diff(path, &current, &after);
            match apply_unified(&current, &diff) {
                Ok(re) if re == after => Ok(Step { after, diff }),
                Ok(_) => Err("the stacked diff does not reproduce the edit".into()),
                Err(why) => Err(format!("the stacked diff does not apply: {why}")),
            }
        });
        if let Ok(s) = &step {
            let delta = s.after.len() as isize - current.len() as isize;
            stacked.push((e.block.clone(), delta, e.task));
            current = s.after.clone();
        }
        out.push(step);
    }
    out
}

/// The new text of the edit's block: the patch applied to the scanned file, which must leave
/// everything outside the block as it was (a patch from Redis is untrusted).
fn new_block(path: &str, scanned: &str, e: &Edit<'_>) -> Result<String, String> {
    check_single_file(e.patch, path)
        .map_err(|why| format!("the patch is not one this run made for the file: {why}"))?;
    let Range { start, end } = e.block;
    if start > end
        || end > scanned.len()
        || !scanned.is_char_boundary(start)
        || !scanned.is_char_boundary(end)
    {
        return Err("the task's block is not a range of the scanned file".into());
    }
    let patched = apply_unified(scanned, e.patch)
        .map_err(|why| format!("the patch does not apply: {why}"))?;
    let tail = scanned.len() - end;
    let inside = patched.len() >= start + tail
        && patched.is_char_boundary(start)
        && patched.is_char_boundary(patched.len() - tail)
        && patched[..start] == scanned[..start]
        && patched[patched.len() - tail..] == scanned[end..];
    if !inside {
        return Err("the patch changes the file outside its TODO's block".into());
    }
    Ok(patched[start..patched.len() - tail].to_string())
}

/// `a-b`, the 1-based lines a byte range of `text` spans.
fn lines(text: &str, r: &Range<usize>) -> String {
    let line = |i: usize| text[..i.min(text.len())].matches('\n').count() + 1;
    let last = if r.end > r.start { r.end - 1 } else { r.end };
    format!("{}-{}", line(r.start), line(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "a\n// TODO one\nb\n\nc\n// TODO two\nd\n\ne\n// TODO three\nf\n";

    /// The byte range of the `n`th paragraph (blocks are separated by blank lines).
    fn block(n: usize) -> Range<usize> {
        let mut start = 0;
        for (i, para) in FILE.split_inclusive("\n\n").enumerate() {
            if i == n {
                let body = para.trim_end_matches('\n').len() + 1;
                return start..start + body;
            }
            start += para.len();
        }
        unreachable!()
    }

    fn patch_for(r: &Range<usize>, new: &str) -> String {
        let after = format!("{}{}{}", &FILE[..r.start], new, &FILE[r.end..]);
        unified_diff("f.rs", FILE, &after)
    }

    #[test]
    fn patches_to_separate_blocks_stack_into_the_file_they_make_together() {
        let (b0, b1, b2) = (block(0), block(1), block(2));
        let (p0, p1, p2) = (
            patch_for(&b0, "a\nx1\ny1\nb\n"),
            patch_for(&b1, "c\nd\n"),
            patch_for(&b2, "e\nz\nz\nz\nf\n"),
        );
        let edits = [
            Edit {
                task: "t0",
                block: b0,
                patch: &p0,
            },
            Edit {
                task: "t1",
                block: b1,
                patch: &p1,
            },
            Edit {
                task: "t2",
                block: b2,
                patch: &p2,
            },
        ];
        let steps = stack("f.rs", FILE, &edits);
        let last = steps.last().unwrap().as_ref().unwrap();
        assert_eq!(last.after, "a\nx1\ny1\nb\n\nc\nd\n\ne\nz\nz\nz\nf\n");
        // Each step's diff takes the file from the previous step to its own.
        let mut file = FILE.to_string();
        for s in &steps {
            let s = s.as_ref().unwrap();
            file = apply_unified(&file, &s.diff).unwrap();
            assert_eq!(file, s.after);
        }
    }

    #[test]
    fn an_overlapping_patch_is_skipped_with_the_task_it_overlaps() {
        let b1 = block(1);
        let p1 = patch_for(&b1, "c\nd\n");
        let p1b = patch_for(&b1, "c\nother\nd\n");
        let edits = [
            Edit {
                task: "first",
                block: b1.clone(),
                patch: &p1,
            },
            Edit {
                task: "second",
                block: b1,
                patch: &p1b,
            },
        ];
        let steps = stack("f.rs", FILE, &edits);
        assert!(steps[0].is_ok());
        let why = steps[1].as_ref().unwrap_err();
        assert!(
            why.contains("overlaps the block of task first (lines 5-7)"),
            "{why}"
        );
    }

    #[test]
    fn a_patch_reaching_outside_its_block_or_for_another_file_is_refused() {
        let b0 = block(0);
        // Claims block 0 but edits block 2.
        let p = patch_for(&block(2), "e\nf\n");
        let steps = stack(
            "f.rs",
            FILE,
            &[Edit {
                task: "t",
                block: b0.clone(),
                patch: &p,
            }],
        );
        assert!(
            steps[0]
                .as_ref()
                .unwrap_err()
                .contains("outside its TODO's block")
        );
        let other = unified_diff("g.rs", FILE, "x\n");
        let steps = stack(
            "f.rs",
            FILE,
            &[Edit {
                task: "t",
                block: b0,
                patch: &other,
            }],
        );
        assert!(
            steps[0]
                .as_ref()
                .unwrap_err()
                .contains("not one this run made")
        );
        let p = patch_for(&block(0), "a\nb\n");
        let steps = stack(
            "f.rs",
            FILE,
            &[Edit {
                task: "t",
                block: 3..10_000,
                patch: &p,
            }],
        );
        assert!(steps[0].as_ref().unwrap_err().contains("not a range"));
    }
}
