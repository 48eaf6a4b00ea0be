//! The block for a tag from a parsed tree: the definition its comment stands above, else the
//! innermost one around it, with the definition's header as the symbol.

use tree_sitter::Node;

use super::SyntaxTree;
use super::grammar::Grammar;
use crate::scan::block::{Block, MAX_SYMBOL_CHARS, collapse_whitespace};

/// Levels [`SyntaxTree::unit_at`] may descend below a statement: wrappers nest two or three
/// deep (`export` > declaration > arrow function).
const MAX_UNIT_DESCENT: usize = 6;

impl SyntaxTree<'_> {
    /// The definition for the tag at byte `pos` (BOM-stripped text), at most `max_lines` long:
    /// the one the tag's comment stands right above, else the innermost one around it.
    pub fn block(&self, pos: usize, max_lines: usize) -> Option<Block> {
        let max = max_lines.max(1);
        let path = self.path_to(pos);
        // The outermost comment on the path: Rust's `/// doc` is a comment node holding a
        // `doc_comment` node.
        if let Some(ci) = path.iter().position(|n| is_comment(n.kind()))
            && ci > 0
            && let Some(b) = self.annotated(&path[..ci], path[ci])
            && b.last - b.first < max
        {
            return Some(b);
        }
        for i in (0..path.len()).rev() {
            if let Some((unit, def)) = self.unit(&path[..i], path[i]) {
                let first = row_of_start(unit);
                let last = row_of_end(unit);
                if last - first < max {
                    return Some(Block {
                        first,
                        last,
                        symbol: Some(self.header(unit, def)),
                    });
                }
                // An outer definition is larger still.
                return None;
            }
        }
        None
    }

    /// Root to the smallest node holding byte `pos`. Built with one cursor descent because
    /// tree-sitter finds a node's parent by descending from the root again: climbing with
    /// `parent()` from a node 10,000 levels deep (a generated `else if` chain) is quadratic.
    fn path_to(&self, pos: usize) -> Vec<Node<'_>> {
        let mut cursor = self.tree.walk();
        let mut path = vec![cursor.node()];
        while cursor.goto_first_child_for_byte(pos).is_some() {
            let n = cursor.node();
            if n.start_byte() > pos {
                break;
            }
            path.push(n);
        }
        path
    }

    /// The comment run holding `comment` plus the definition right below it (attributes and
    /// decorators may sit between; a blank line may not). `ancestors` ends with its parent.
    fn annotated<'t>(&self, ancestors: &[Node<'t>], comment: Node<'t>) -> Option<Block> {
        if self.text_before_on_line(comment) {
            return None;
        }
        let parent = *ancestors.last()?;
        let mut cursor = parent.walk();
        let siblings: Vec<Node<'_>> = parent.children(&mut cursor).collect();
        let idx = siblings.iter().position(|s| s.id() == comment.id())?;
        let mut first = row_of_start(comment);
        let mut k = idx;
        // Earlier comment lines of the same run, but not a trailing comment of the code above
        // (`x = 1  # note`), which would pull that code into the block.
        while k > 0
            && is_comment(siblings[k - 1].kind())
            && row_of_end(siblings[k - 1]) + 1 >= row_of_start(siblings[k])
            && !self.text_before_on_line(siblings[k - 1])
        {
            k -= 1;
            first = row_of_start(siblings[k]);
        }
        let mut prev = comment;
        for &n in &siblings[idx + 1..] {
            if row_of_start(n) > row_of_end(prev) + 1 {
                return None;
            }
            if is_comment(n.kind()) || self.grammar.decorations.contains(&n.kind()) {
                prev = n;
                continue;
            }
            let (unit, def) = self.unit_at(ancestors, n, MAX_UNIT_DESCENT)?;
            return Some(Block {
                first: first.min(row_of_start(unit)),
                last: row_of_end(unit),
                symbol: Some(self.header(unit, def)),
            });
        }
        None
    }

    /// Whether code precedes `node` on its first line (`x = 1  # TODO` annotates `x = 1`,
    /// not what follows).
    fn text_before_on_line(&self, node: Node<'_>) -> bool {
        let start = node.start_byte();
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        !self.text[line_start..start].trim().is_empty()
    }

    /// When `n` is a definition (or a function value), the node whose lines form the unit and
    /// the node whose header names it. `ancestors` runs from the root to `n`'s parent.
    fn unit<'t>(&self, ancestors: &[Node<'t>], n: Node<'t>) -> Option<(Node<'t>, Node<'t>)> {
        let kind = n.kind();
        if self.grammar.definitions.contains(&kind) {
            // C's `struct s;` and a forward `class c;` have no body: not a unit.
            if kind.ends_with("_specifier") && n.child_by_field_name("body").is_none() {
                return None;
            }
            return Some((widen(self.grammar, ancestors, n), n));
        }
        if self.grammar.function_values.contains(&kind) {
            // The statement holding the function, so `const f = () => {` or `it("x", () => {`
            // stays with its body: the ancestor-or-self whose parent lists statements.
            let mut child = n;
            for (j, &p) in ancestors.iter().enumerate().rev() {
                if is_statement_list(p.kind()) {
                    return Some((widen(self.grammar, &ancestors[..=j], child), n));
                }
                child = p;
            }
        }
        None
    }

    /// Like [`Self::unit`] for a statement-level node that may wrap a definition
    /// (`export function`, `@decorator def`, `template <..> class`, `const f = () => {}`).
    /// `budget` bounds the descent: a method chain nests one level per call, all starting at
    /// the same byte, and a generated one must not exhaust the stack.
    fn unit_at<'t>(
        &self,
        ancestors: &[Node<'t>],
        n: Node<'t>,
        budget: usize,
    ) -> Option<(Node<'t>, Node<'t>)> {
        if let Some(u) = self.unit(ancestors, n) {
            return Some(u);
        }
        let budget = budget.checked_sub(1)?;
        if self.grammar.wrappers.contains(&n.kind()) {
            let mut cursor = n.walk();
            let children: Vec<Node<'_>> = n.named_children(&mut cursor).collect();
            return children
                .into_iter()
                .find_map(|c| self.unit_at(&[], c, budget))
                .map(|(_, def)| (n, def));
        }
        // A named function value (`const f = () => {}`), not any statement that happens to
        // pass a callback: a comment above `xs.forEach(x => ...)` is about the enclosing
        // function.
        if is_declaration(n.kind()) {
            let f = first_descendant(n, 3, |k| self.grammar.function_values.contains(&k))?;
            return Some((n, f));
        }
        // A body that starts where its first statement does (Python's `block` after a
        // comment that sits between `class A:` and the first method).
        let first = n.named_child(0)?;
        if first.start_byte() == n.start_byte() {
            return self.unit_at(&[], first, budget);
        }
        None
    }

    /// `unit`'s text up to the body of `def`, comments left out, whitespace collapsed:
    /// `fn parse(&self, s: &str) -> Result<T>`, `class Foo(Base):`, `it("works", () =>`.
    fn header(&self, unit: Node<'_>, def: Node<'_>) -> String {
        let end = def
            .child_by_field_name("body")
            .map(|b| b.start_byte())
            .unwrap_or_else(|| {
                let start = unit.start_byte();
                let line_end = self.text[start..]
                    .find('\n')
                    .map_or(self.text.len(), |i| start + i);
                line_end.min(unit.end_byte())
            });
        let mut out = String::new();
        let mut at = unit.start_byte();
        let mut stack = vec![unit];
        // Copy the text between comments: a `/* doc */` or `// note` inside a signature is not
        // part of the name.
        while let Some(n) = stack.pop() {
            if n.start_byte() >= end {
                continue;
            }
            if is_comment(n.kind()) {
                out.push_str(self.text.get(at..n.start_byte()).unwrap_or(""));
                out.push(' ');
                at = n.end_byte();
                continue;
            }
            let mut cursor = n.walk();
            let children: Vec<Node<'_>> = n.children(&mut cursor).collect();
            stack.extend(children.into_iter().rev());
        }
        if at < end {
            out.push_str(self.text.get(at..end).unwrap_or(""));
        }
        let collapsed = collapse_whitespace(&out);
        collapsed.chars().take(MAX_SYMBOL_CHARS).collect()
    }
}

fn is_comment(kind: &str) -> bool {
    kind.ends_with("comment")
}

/// Kinds whose children are statements: a function value's unit is the child of one of them.
fn is_statement_list(kind: &str) -> bool {
    matches!(
        kind,
        "program"
            | "statement_block"
            | "class_body"
            | "switch_case"
            | "switch_default"
            | "export_statement"
    )
}

fn is_declaration(kind: &str) -> bool {
    kind.contains("declaration") || kind.contains("definition") || kind == "export_statement"
}

/// Grows a definition to the wrappers around it that belong to it; `ancestors` runs from the
/// root to `n`'s parent.
fn widen<'t>(grammar: &Grammar, ancestors: &[Node<'t>], mut n: Node<'t>) -> Node<'t> {
    for &p in ancestors.iter().rev() {
        if !grammar.wrappers.contains(&p.kind()) {
            break;
        }
        n = p;
    }
    n
}

fn first_descendant<'t>(
    n: Node<'t>,
    depth: usize,
    pred: impl Fn(&str) -> bool + Copy,
) -> Option<Node<'t>> {
    if pred(n.kind()) {
        return Some(n);
    }
    if depth == 0 {
        return None;
    }
    let mut cursor = n.walk();
    let children: Vec<Node<'_>> = n.named_children(&mut cursor).collect();
    children
        .into_iter()
        .find_map(|c| first_descendant(c, depth - 1, pred))
}

fn row_of_start(n: Node<'_>) -> usize {
    n.start_position().row
}

/// Last line holding the node: a node that ends at column 0 ends on the line before.
fn row_of_end(n: Node<'_>) -> usize {
    let end = n.end_position();
    if end.column == 0 && end.row > n.start_position().row {
        end.row - 1
    } else {
        end.row
    }
}
