//! The grammars that ship with us, and what each calls a rewritable unit.

/// What one grammar calls a rewritable unit.
pub(super) struct Grammar {
    pub(super) language: fn() -> tree_sitter::Language,
    /// Functions, methods, classes and other named definitions.
    pub(super) definitions: &'static [&'static str],
    /// Anonymous functions that are a unit together with the statement holding them: in
    /// JavaScript most code lives in callbacks (`it("...", () => {...})`).
    pub(super) function_values: &'static [&'static str],
    /// Nodes that wrap a definition with what belongs to it (decorators, `export`,
    /// `template <...>`, C's `struct s {...};` declaration); the range grows to them.
    pub(super) wrappers: &'static [&'static str],
    /// Siblings between a comment and the definition it annotates.
    pub(super) decorations: &'static [&'static str],
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
pub(super) fn grammars(language: &str, path: &str) -> &'static [&'static Grammar] {
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
