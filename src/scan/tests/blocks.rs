//! The indentation heuristic: the lines and symbol a tag gets, within the size bound.

use super::*;

#[test]
fn c_preprocessor_lines_do_not_end_a_function() {
    let src = "int f(void) {
    x();
#ifdef FOO
    /* TODO: guarded */
    y();
#endif
    return 0;
}
";
    let t = check("a.c", src, 4, "TODO", "guarded");
    assert_eq!(t.symbol.as_deref(), Some("int f(void) {"));
    assert_eq!(t.block_lines, (1, 8));
}

#[test]
fn c_labels_and_access_specifiers_do_not_end_a_scope() {
    let c = "int f(void) {
    if (!x)
        goto err;
    return 1;
err:
    // TODO: log the failure
    return 0;
}
";
    let t = check("a.c", c, 6, "TODO", "log the failure");
    assert_eq!(t.symbol.as_deref(), Some("int f(void) {"));
    assert_eq!(t.block_lines, (1, 8));

    let cpp = "class A {
public:
    void f() {
        // TODO: cpp method
    }
private:
    int x;
};
";
    let t = check("a.hpp", cpp, 4, "TODO", "cpp method");
    assert_eq!(t.symbol.as_deref(), Some("class A {"));
    assert_eq!(t.block_lines, (1, 8));
}

#[test]
fn top_level_todo_before_a_directive_takes_the_paragraph() {
    let src = "// TODO: drop this define
#define A 1
#define B 2

#if X
int y;
#endif
";
    let t = check("a.h", src, 1, "TODO", "drop this define");
    assert_eq!(t.block_lines, (1, 3));
    assert_eq!(t.symbol, None);
}

#[test]
fn top_level_todo_takes_the_following_item() {
    let src = "use a;

// TODO: split this
// into two functions
fn big() {
    one();
}

// FIXME: constants
const A: u32 = 1;
const B: u32 = 2;

const C: u32 = 3;
";
    let todos = scan("a.rs", src);
    assert_eq!(todos.len(), 2);
    let t = &todos[0];
    assert_eq!(t.block_lines, (3, 7));
    assert_eq!(t.symbol.as_deref(), Some("fn big() {"));
    assert!(block_of(src, t).starts_with("// TODO: split this\n"));
    let t = &todos[1];
    assert_eq!(t.block_lines, (9, 11));
    assert_eq!(t.symbol, None);
    assert_block_sane(src, t);
}

#[test]
fn todo_on_the_header_line_owns_that_scope() {
    let src = "impl A {\n    fn f(&self) { // TODO: header\n        1\n    }\n}\n";
    let t = check("a.rs", src, 2, "TODO", "header");
    assert_eq!(t.symbol.as_deref(), Some("impl A {"));
    let opts = ScanOptions {
        syntax_context: false,
        max_block_lines: 4,
        ..ScanOptions::default()
    };
    let t = &scan_source("a.rs", src, &opts)[0];
    assert_eq!(t.symbol.as_deref(), Some("fn f(&self) {"));
    assert_eq!(t.block_lines, (2, 4));
}

#[test]
fn rust_multiline_signature_and_nested_scopes() {
    let src = "impl Parser {
    pub fn parse(
        &self,
        input: &str,
    ) -> Result<u32, Error> {
        if input.is_empty() {
            // TODO: better error
            return Err(Error);
        } else {
            Ok(1)
        }
    }
}
";
    let t = check("a.rs", src, 7, "TODO", "better error");
    assert_eq!(t.symbol.as_deref(), Some("impl Parser {"));
    let opts = ScanOptions {
        syntax_context: false,
        max_block_lines: 12,
        ..ScanOptions::default()
    };
    let t = &scan_source("a.rs", src, &opts)[0];
    assert_eq!(
        t.symbol.as_deref(),
        Some("pub fn parse( &self, input: &str, ) -> Result<u32, Error> {")
    );
    assert_eq!(t.block_lines, (2, 12));
    let opts = ScanOptions {
        syntax_context: false,
        max_block_lines: 5,
        ..ScanOptions::default()
    };
    let t = &scan_source("a.rs", src, &opts)[0];
    assert_eq!(t.symbol.as_deref(), Some("if input.is_empty() {"));
    assert_eq!(t.block_lines, (6, 9));
}

#[test]
fn comments_are_cut_out_of_symbols() {
    let src = "/* legacy */ fn f() { // TODO: trailing
    1
}
";
    let t = check("a.rs", src, 1, "TODO", "trailing");
    assert_eq!(t.symbol.as_deref(), Some("/* legacy */ fn f() {"));
    assert_eq!(t.block_lines, (1, 3));
}

#[test]
fn oversized_function_falls_back_to_a_window() {
    let mut src = String::from("fn huge() {\n");
    for i in 0..200 {
        src.push_str(&format!("    let v{i} = {i};\n"));
    }
    src.push_str("    // TODO: in the middle\n");
    for i in 0..200 {
        src.push_str(&format!("    let w{i} = {i};\n"));
    }
    src.push_str("}\n");
    let t = check("a.rs", &src, 202, "TODO", "in the middle");
    assert_eq!(t.symbol, None);
    assert_eq!(t.block_lines, (202 - 30, 202 + 30));
}
