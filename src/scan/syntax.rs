//! Context from a syntax tree for the languages whose tree-sitter grammar ships with us.
//!
//! The indentation heuristic in `block` guesses scopes from layout; a parser knows them, so a
//! multi-line signature, a method in a class, a decorated or exported function or a closure
//! passed to `describe(...)` come out as the unit a person would rewrite. When the tree has no
//! definition around the tag that fits the size bound, the caller falls back to the heuristic,
//! which can still narrow to a loop or a window.
//!
//! Parsing costs about 10 MB/s per core, far more than finding the tags, so it only runs on
//! files with a tag and only when [`super::ScanOptions::syntax_context`] asks for it.

use std::cell::RefCell;

use tree_sitter::{Node, Parser, Tree};

use super::block::{Block, MAX_SYMBOL_CHARS, collapse_whitespace};

/// Levels [`SyntaxTree::unit_at`] may descend below a statement: wrappers nest two or three
/// deep (`export` > declaration > arrow function).
const MAX_UNIT_DESCENT: usize = 6;

/// What one grammar calls a rewritable unit.
struct Grammar {
    language: fn() -> tree_sitter::Language,
    /// Functions, methods, classes and other named definitions.
    definitions: &'static [&'static str],
    /// Anonymous functions that are a unit together with the statement holding them: in
    /// JavaScript most code lives in callbacks (`it("...", () => {...})`).
    function_values: &'static [&'static str],
    /// Nodes that wrap a definition with what belongs to it (decorators, `export`,
    /// `template <...>`, C's `struct s {...};` declaration); the range grows to them.
    wrappers: &'static [&'static str],
    /// Siblings between a comment and the definition it annotates.
    decorations: &'static [&'static str],
}

const RUST: Grammar = Grammar {
    language: || tree_sitter_rust::LANGUAGE.into(),
    definitions: &[
        "function_item",
        "function_signature_item",
        "impl_item",
        "trait_item",
        "struct_item",
        "enum_item",
        "union_item",
        "mod_item",
        "macro_definition",
    ],
    function_values: &[],
    wrappers: &[],
    decorations: &["attribute_item", "inner_attribute_item"],
};

const PYTHON: Grammar = Grammar {
    language: || tree_sitter_python::LANGUAGE.into(),
    definitions: &["function_definition", "class_definition"],
    function_values: &[],
    wrappers: &["decorated_definition"],
    decorations: &["decorator"],
};

const JS_DEFINITIONS: &[&str] = &[
    "function_declaration",
    "generator_function_declaration",
    "class_declaration",
    "method_definition",
    // TypeScript only; harmless for JavaScript, whose trees never hold them.
    "abstract_class_declaration",
    "interface_declaration",
    "enum_declaration",
    "internal_module",
    "module",
    "function_signature",
    "method_signature",
    "abstract_method_signature",
];
const JS_FUNCTION_VALUES: &[&str] = &[
    "arrow_function",
    "function_expression",
    "function",
    "generator_function",
    "class",
];
const JS_WRAPPERS: &[&str] = &["export_statement"];
const JS_DECORATIONS: &[&str] = &["decorator"];

const JAVASCRIPT: Grammar = Grammar {
    language: || tree_sitter_javascript::LANGUAGE.into(),
    definitions: JS_DEFINITIONS,
    function_values: JS_FUNCTION_VALUES,
    wrappers: JS_WRAPPERS,
    decorations: JS_DECORATIONS,
};

const TYPESCRIPT: Grammar = Grammar {
    language: || tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
    ..JAVASCRIPT
};

const TSX: Grammar = Grammar {
    language: || tree_sitter_typescript::LANGUAGE_TSX.into(),
    ..JAVASCRIPT
};

const GO: Grammar = Grammar {
    language: || tree_sitter_go::LANGUAGE.into(),
    definitions: &[
        "function_declaration",
        "method_declaration",
        "type_declaration",
    ],
    function_values: &[],
    wrappers: &[],
    decorations: &[],
};

const C: Grammar = Grammar {
    language: || tree_sitter_c::LANGUAGE.into(),
    definitions: &[
        "function_definition",
        "struct_specifier",
        "union_specifier",
        "enum_specifier",
    ],
    function_values: &[],
    wrappers: &["declaration", "type_definition"],
    decorations: &[],
};

const CPP: Grammar = Grammar {
    language: || tree_sitter_cpp::LANGUAGE.into(),
    definitions: &[
        "function_definition",
        "class_specifier",
        "struct_specifier",
        "union_specifier",
        "enum_specifier",
        "namespace_definition",
    ],
    function_values: &[],
    wrappers: &["template_declaration", "declaration", "type_definition"],
    decorations: &[],
};

const JAVA: Grammar = Grammar {
    language: || tree_sitter_java::LANGUAGE.into(),
    definitions: &[
        "class_declaration",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
        "annotation_type_declaration",
        "method_declaration",
        "constructor_declaration",
        "compact_constructor_declaration",
    ],
    function_values: &[],
    wrappers: &[],
    decorations: &[],
};

/// The grammars to try for a language of the table, best guess first: TSX needs its own
/// grammar, told by the extension, and a `.h` header is as often C++ as C.
fn grammars(language: &str, path: &str) -> &'static [&'static Grammar] {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match language {
        "rust" => &[&RUST],
        "python" => &[&PYTHON],
        "javascript" => &[&JAVASCRIPT],
        "typescript" if ext.eq_ignore_ascii_case("tsx") => &[&TSX],
        "typescript" => &[&TYPESCRIPT],
        "go" => &[&GO],
        "c" if ext.eq_ignore_ascii_case("h") => &[&C, &CPP],
        "c" => &[&C],
        "cpp" => &[&CPP],
        "java" => &[&JAVA],
        _ => &[],
    }
}

/// Whether `language` gets its context from a syntax tree.
pub fn has_grammar(language: &str) -> bool {
    !grammars(language, "").is_empty()
}

thread_local! {
    /// A parser per walker thread: creating one allocates, and a scan parses thousands of files.
    static PARSER: RefCell<Parser> = RefCell::new(Parser::new());
}

/// A parsed file, ready to answer for each of its tags.
pub(crate) struct SyntaxTree<'a> {
    tree: Tree,
    text: &'a str,
    grammar: &'static Grammar,
}

impl<'a> SyntaxTree<'a> {
    /// `None` for a language without a grammar, or if the parser gives up (it does not on
    /// malformed code: it recovers and marks errors).
    /// When several grammars may fit (a `.h` file), the first that parses cleanly, else the
    /// one with the fewest errors.
    pub fn parse(language: &str, path: &str, text: &'a str) -> Option<SyntaxTree<'a>> {
        let mut best: Option<(usize, SyntaxTree<'a>)> = None;
        let candidates = grammars(language, path);
        for &grammar in candidates {
            let Some(tree) = PARSER.with(|p| {
                let mut parser = p.borrow_mut();
                parser.set_language(&(grammar.language)()).ok()?;
                parser.parse(text, None)
            }) else {
                continue;
            };
            let parsed = SyntaxTree {
                tree,
                text,
                grammar,
            };
            // A clean tree needs no count, and a lone candidate no comparison.
            let errors = if !parsed.tree.root_node().has_error() {
                0
            } else if candidates.len() == 1 {
                return Some(parsed);
            } else {
                parsed.errors(0..0).count
            };
            if best.as_ref().is_none_or(|(e, _)| errors < *e) {
                best = Some((errors, parsed));
            }
            if errors == 0 {
                break;
            }
        }
        best.map(|(_, t)| t)
    }

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
        let siblings: Vec<Node> = parent.children(&mut cursor).collect();
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
    fn text_before_on_line(&self, node: Node) -> bool {
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
            let children: Vec<Node> = n.named_children(&mut cursor).collect();
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
    fn header(&self, unit: Node, def: Node) -> String {
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
            let children: Vec<Node> = n.children(&mut cursor).collect();
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
    let children: Vec<Node> = n.named_children(&mut cursor).collect();
    children
        .into_iter()
        .find_map(|c| first_descendant(c, depth - 1, pred))
}

fn row_of_start(n: Node) -> usize {
    n.start_position().row
}

/// Last line holding the node: a node that ends at column 0 ends on the line before.
fn row_of_end(n: Node) -> usize {
    let end = n.end_position();
    if end.column == 0 && end.row > n.start_position().row {
        end.row - 1
    } else {
        end.row
    }
}

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
    fn errors(&self, focus: std::ops::Range<usize>) -> SyntaxErrors {
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
