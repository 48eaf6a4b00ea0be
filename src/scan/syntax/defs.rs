//! The named definitions of a whole file, for the patch gates: a rewrite must keep the
//! definitions its block had, and must not bring in copies of ones the file has elsewhere.

use std::ops::Range;

use tree_sitter::Node;

use super::SyntaxTree;
use crate::scan::block::collapse_whitespace;

/// Longest name we report: a C++ declarator can be an arbitrary expression, which is no name.
const MAX_NAME_CHARS: usize = 120;

/// One named definition found in a syntax tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// `add`, `Cart`, `impl Queue`, `impl Display for Queue`.
    pub name: String,
    /// The names of the definitions around it, outermost first, joined by `::`; empty at the
    /// top level. Two definitions clash only within one scope.
    pub scope: String,
    /// What two definitions of one name and scope must also share to clash: the namespace
    /// (Rust's types and functions live apart), an accessor (`get x` / `set x`), the
    /// parameters where a language overloads. `None` for a definition that never clashes: one
    /// that may be defined several times on purpose (a `#[cfg]` or `#ifdef` variant, a property
    /// setter, an overload signature, an `impl` block, a TypeScript interface or namespace).
    pub key: Option<String>,
    /// Byte range of the definition (without decorators) in the text given.
    pub bytes: Range<usize>,
    /// 1-based line of its first byte.
    pub line: usize,
    /// Inside a function's body: a local helper, invisible outside, which a rewrite may inline.
    pub local: bool,
}

/// The definitions of a parsed file, and whether the parser had to recover from an error
/// inside the focus range (where definitions may then be missing or misread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definitions {
    pub list: Vec<Definition>,
    pub focus_clean: bool,
}

/// Parses `text` (a whole file, BOM allowed) and lists its named definitions, in order; `None`
/// for a language without a grammar. `focus` (byte offsets into `text`) is the range whose
/// cleanliness [`Definitions::focus_clean`] reports: a caller that compares a block before and
/// after a rewrite should not trust a tree that failed there.
pub fn definitions(
    language: &str,
    path: &str,
    text: &str,
    focus: Range<usize>,
) -> Option<Definitions> {
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let tree = SyntaxTree::parse(language, path, &text[bom..])?;
    let focus = focus.start.saturating_sub(bom)..focus.end.saturating_sub(bom);
    let mut list = tree.definitions(language);
    for d in &mut list {
        d.bytes = d.bytes.start + bom..d.bytes.end + bom;
    }
    Some(Definitions {
        list,
        focus_clean: !tree.has_error_in(focus),
    })
}

/// What the nodes above a node contribute: the scope's names, whether we are in a function's
/// body, whether the definitions there are conditional variants.
struct Frame {
    scope: String,
    local: bool,
    variant: bool,
}

impl SyntaxTree<'_> {
    fn definitions(&self, language: &str) -> Vec<Definition> {
        let mut frames = vec![Frame {
            scope: String::new(),
            local: false,
            variant: false,
        }];
        let mut out = Vec::new();
        // An explicit stack, not recursion: generated code nests thousands of levels deep.
        let mut stack: Vec<(Node<'_>, usize)> = vec![(self.tree.root_node(), 0)];
        while let Some((node, f)) = stack.pop() {
            let kind = node.kind();
            let mut child_frame = f;
            if let Some(name) = self.definition_name(language, node) {
                let parent = &frames[f];
                let container = is_container(kind, node);
                let variant = parent.variant || self.is_variant(language, node);
                let key = (!variant && !parent.local)
                    .then(|| self.clash_key(language, node))
                    .flatten();
                out.push(Definition {
                    name: name.clone(),
                    scope: parent.scope.clone(),
                    key,
                    bytes: node.start_byte()..node.end_byte(),
                    line: node.start_position().row + 1,
                    local: parent.local,
                });
                let scope = if parent.scope.is_empty() {
                    name
                } else {
                    format!("{}::{name}", parent.scope)
                };
                frames.push(Frame {
                    scope,
                    local: parent.local || !container,
                    variant,
                });
                child_frame = frames.len() - 1;
            } else if self.grammar.function_values.contains(&kind) {
                // A callback's body is a function's body too (a class expression's is not).
                let parent = &frames[f];
                frames.push(Frame {
                    scope: parent.scope.clone(),
                    local: parent.local || kind != "class",
                    variant: parent.variant,
                });
                child_frame = frames.len() - 1;
            } else if is_conditional_compilation(kind) {
                let parent = &frames[f];
                frames.push(Frame {
                    scope: parent.scope.clone(),
                    local: parent.local,
                    variant: true,
                });
                child_frame = frames.len() - 1;
            }
            let mut cursor = node.walk();
            let children: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
            stack.extend(children.into_iter().rev().map(|c| (c, child_frame)));
        }
        out.sort_by_key(|d| d.bytes.start);
        out
    }

    /// Whether an error or missing node reaches into `focus`. Only subtrees that hold an error
    /// are entered.
    fn has_error_in(&self, focus: Range<usize>) -> bool {
        let root = self.tree.root_node();
        if !root.has_error() {
            return false;
        }
        let mut stack = vec![root];
        while let Some(n) = stack.pop() {
            if n.end_byte() < focus.start || n.start_byte() > focus.end {
                continue;
            }
            if n.is_error() || n.is_missing() {
                return true;
            }
            if n.has_error() {
                let mut cursor = n.walk();
                stack.extend(n.children(&mut cursor));
            }
        }
        false
    }

    fn text_of(&self, n: Node<'_>) -> &str {
        self.text.get(n.byte_range()).unwrap_or("")
    }

    /// The name `node` defines, when it is a named definition.
    fn definition_name(&self, language: &str, node: Node<'_>) -> Option<String> {
        let kind = node.kind();
        let defines = self.grammar.definitions.contains(&kind)
            || matches!(kind, "type_spec" | "type_alias") && language == "go"
            || kind == "variable_declarator"
                && node
                    .child_by_field_name("value")
                    .is_some_and(|v| self.grammar.function_values.contains(&v.kind()));
        if !defines {
            return None;
        }
        // A C `struct s;` or a forward `class c;` declares, it does not define.
        if kind.ends_with("_specifier") && node.child_by_field_name("body").is_none() {
            return None;
        }
        let name = match kind {
            "impl_item" => {
                let ty = base_type(self.text_of(node.child_by_field_name("type")?));
                match node.child_by_field_name("trait") {
                    Some(t) => format!("impl {} for {ty}", base_type(self.text_of(t))),
                    None => format!("impl {ty}"),
                }
            }
            "function_definition" if matches!(language, "c" | "cpp") => {
                collapse_whitespace(self.text_of(innermost_declarator(node)?))
            }
            _ => collapse_whitespace(self.text_of(node.child_by_field_name("name")?)),
        };
        (!name.is_empty() && name.len() <= MAX_NAME_CHARS && !name.contains(['(', '{', ';']))
            .then_some(name)
    }

    /// Whether `node` is one of several definitions of a name meant to coexist: a Rust item
    /// under `#[cfg(...)]`, a Python property accessor, overload or `singledispatch` case.
    fn is_variant(&self, language: &str, node: Node<'_>) -> bool {
        match language {
            "rust" => {
                let mut prev = node.prev_named_sibling();
                while let Some(p) = prev {
                    if !matches!(
                        p.kind(),
                        "attribute_item" | "line_comment" | "block_comment"
                    ) {
                        break;
                    }
                    if p.kind() == "attribute_item" && self.text_of(p).contains("cfg") {
                        return true;
                    }
                    prev = p.prev_named_sibling();
                }
                false
            }
            "python" => node
                .parent()
                .filter(|p| p.kind() == "decorated_definition")
                .is_some_and(|p| {
                    let mut cursor = p.walk();
                    p.named_children(&mut cursor)
                        .filter(|c| c.kind() == "decorator")
                        .any(|d| {
                            let t = self.text_of(d);
                            [".setter", ".getter", ".deleter", ".register", "overload"]
                                .iter()
                                .any(|m| t.contains(m))
                        })
                }),
            _ => false,
        }
    }

    /// See [`Definition::key`].
    fn clash_key(&self, language: &str, node: Node<'_>) -> Option<String> {
        let kind = node.kind();
        if kind == "impl_item"
            || kind.contains("signature")
            || matches!(
                kind,
                "interface_declaration"
                    | "internal_module"
                    | "module"
                    | "namespace_definition"
                    | "enum_declaration"
            ) && language == "typescript"
            || kind == "namespace_definition"
        {
            return None;
        }
        let namespace = if is_container(kind, node) {
            "type"
        } else {
            "value"
        };
        Some(match language {
            // One namespace: a class and a function of one name clash; a Go method's is its
            // receiver's (`String` on two types is fine).
            "go" => match receiver_type(self.text, node) {
                Some(receiver) => format!("({receiver}).value"),
                None => "value".into(),
            },
            "python" | "javascript" => format!("{}value", self.accessor(node)),
            "typescript" => format!("{}{namespace}", self.accessor(node)),
            // Overloading: the parameters are part of what clashes.
            "java" | "cpp" if namespace == "value" => {
                let params = node
                    .child_by_field_name("parameters")
                    .or_else(|| {
                        innermost_function_declarator(node)
                            .and_then(|d| d.child_by_field_name("parameters"))
                    })
                    .map(|p| collapse_whitespace(self.text_of(p)))
                    .unwrap_or_default();
                format!("value{params}")
            }
            "rust" if kind == "macro_definition" => "macro".into(),
            _ => namespace.into(),
        })
    }

    /// `get `, `set ` or `static ` before a JavaScript method's name.
    fn accessor(&self, node: Node<'_>) -> String {
        if node.kind() != "method_definition" {
            return String::new();
        }
        let mut out = String::new();
        let mut cursor = node.walk();
        for c in node.children(&mut cursor) {
            if c.is_named() {
                break;
            }
            if matches!(c.kind(), "get" | "set" | "static") {
                out.push_str(c.kind());
                out.push(' ');
            }
        }
        out
    }
}

/// Whether the body of a definition of `kind` holds more definitions rather than statements
/// (its members are not local, and it is a type, not a function, for [`Definition::key`]).
fn is_container(kind: &str, node: Node<'_>) -> bool {
    if kind == "variable_declarator" {
        return node
            .child_by_field_name("value")
            .is_some_and(|v| v.kind() == "class");
    }
    matches!(
        kind,
        "class_definition"
            | "class_declaration"
            | "abstract_class_declaration"
            | "class_specifier"
            | "class"
            | "struct_item"
            | "struct_specifier"
            | "enum_item"
            | "enum_specifier"
            | "enum_declaration"
            | "union_item"
            | "union_specifier"
            | "interface_declaration"
            | "trait_item"
            | "impl_item"
            | "mod_item"
            | "internal_module"
            | "module"
            | "namespace_definition"
            | "record_declaration"
            | "annotation_type_declaration"
            | "type_spec"
            | "type_alias"
    )
}

/// C and C++ preprocessor conditionals: a function defined in both arms is not defined twice.
fn is_conditional_compilation(kind: &str) -> bool {
    kind.starts_with("preproc_if") || kind.starts_with("preproc_el")
}

/// `Queue` of `Queue<T>`, `Box[T]`, `&'a mut Queue<T>` or `std::fmt::Display`: the last path segment
/// before any generic arguments, so a rewrite that renames a lifetime keeps the name.
fn base_type(text: &str) -> String {
    let plain = text.split(['<', '[']).next().unwrap_or(text);
    let last = plain.rsplit("::").next().unwrap_or(plain);
    collapse_whitespace(
        last.trim_start_matches(['&', '*'])
            .trim_start_matches("mut "),
    )
    .trim_start_matches('\'')
    .to_string()
}

/// The name node of a C or C++ function definition: down its `declarator` fields (a pointer
/// declarator holds the function declarator, which holds the name). Bounded: a declarator
/// nests a few levels, not thousands.
fn innermost_declarator(node: Node<'_>) -> Option<Node<'_>> {
    let mut n = node.child_by_field_name("declarator")?;
    for _ in 0..16 {
        match n.child_by_field_name("declarator") {
            Some(d) => n = d,
            None if n.kind().ends_with("declarator") => {
                let count = u32::try_from(n.named_child_count()).ok()?;
                let last = n.named_child(count.checked_sub(1)?)?;
                if last.id() == n.id() {
                    return Some(n);
                }
                n = last;
            }
            None => return Some(n),
        }
    }
    None
}

fn innermost_function_declarator(node: Node<'_>) -> Option<Node<'_>> {
    let mut n = node.child_by_field_name("declarator")?;
    for _ in 0..16 {
        if n.kind() == "function_declarator" {
            return Some(n);
        }
        n = n.child_by_field_name("declarator")?;
    }
    None
}

/// The type a Go method is declared on: `Cart` in `func (c *Cart) Total() int`.
fn receiver_type(text: &str, node: Node<'_>) -> Option<String> {
    let receiver = node.child_by_field_name("receiver")?;
    let mut cursor = receiver.walk();
    let param = receiver.named_children(&mut cursor).next()?;
    let ty = param.child_by_field_name("type")?;
    let name = base_type(text.get(ty.byte_range())?.trim_start_matches('*'));
    (!name.is_empty()).then_some(name)
}
