//! Syntax errors of a whole file, counted for the patch gate.

use super::SyntaxTree;

/// What a parser found wrong with a whole file: the patch gate compares a file before and
/// after a rewrite, so code that was already broken (macros a grammar cannot follow) does not
/// count against the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxErrors {
    /// Error and missing nodes: each is one place where the parser had to recover.
    pub count: usize,
    /// 1-based line to point a reader at: of the first error that reaches into the `focus`
    /// range (clamped to its start: a lost colon in a method can make the error begin at the
    /// class), else of the first after it, else of the first.
    pub first_line: Option<usize>,
}

/// Parses `text` (a whole file, BOM allowed) and counts its syntax errors; `None` for a
/// language without a grammar. `focus` (byte offsets into `text`, the rewritten block) picks
/// which error's line to report.
pub fn syntax_errors(
    language: &str,
    path: &str,
    text: &str,
    focus: std::ops::Range<usize>,
) -> Option<SyntaxErrors> {
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let tree = SyntaxTree::parse(language, path, &text[bom..])?;
    let focus = focus.start.saturating_sub(bom)..focus.end.saturating_sub(bom);
    Some(tree.errors(focus))
}

impl SyntaxTree<'_> {
    /// Error and missing nodes, and the line to report for them (see [`SyntaxErrors`]). Only
    /// subtrees that hold an error are entered, so a clean file costs one check.
    pub(super) fn errors(&self, focus: std::ops::Range<usize>) -> SyntaxErrors {
        let mut count = 0;
        let (mut first, mut first_after, mut first_inside) = (None, None, None);
        let line_of =
            |byte: usize| self.text[..byte.min(self.text.len())].matches('\n').count() + 1;
        let mut cursor = self.tree.walk();
        let mut descend = true;
        loop {
            let n = cursor.node();
            if descend && (n.is_error() || n.is_missing()) {
                count += 1;
                let line = n.start_position().row + 1;
                first.get_or_insert(line);
                if first_inside.is_none()
                    && n.start_byte() < focus.end.max(focus.start + 1)
                    && n.end_byte() > focus.start
                {
                    first_inside = Some(if n.start_byte() < focus.start {
                        line_of(focus.start)
                    } else {
                        line
                    });
                }
                if n.start_byte() >= focus.start {
                    first_after.get_or_insert(line);
                }
            }
            if descend && n.has_error() && cursor.goto_first_child() {
                continue;
            }
            if cursor.goto_next_sibling() {
                descend = true;
                continue;
            }
            if !cursor.goto_parent() {
                break;
            }
            descend = false;
        }
        SyntaxErrors {
            count,
            first_line: first_inside.or(first_after).or(first),
        }
    }
}
