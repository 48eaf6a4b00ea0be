//! Lexing of the brace languages: Rust, JS/TS, Go, C/C++, Java, Kotlin, Swift, C#, Scala.

use super::*;

#[test]
fn rust_todo_in_function_covers_the_whole_function() {
    let t = check("src/lib.rs", RUST_FN, 7, "TODO", "handle overflow");
    assert_eq!(t.language, "rust");
    assert_eq!(t.symbol.as_deref(), Some("fn parse(input: &str) -> u32 {"));
    let block = block_of(RUST_FN, &t);
    assert!(
        block.starts_with("fn parse(input: &str) -> u32 {"),
        "{block}"
    );
    assert!(
        block.ends_with("    input.len() as u32 + todo_list.len() as u32\n}\n"),
        "{block}"
    );
    assert_eq!(t.block_lines, (4, 9));
    assert_eq!(t.path, "src/lib.rs");
    assert_eq!(
        t.content_hash,
        hex::encode(Sha256::digest(RUST_FN.as_bytes()))
    );
}

#[test]
fn rust_traps_strings_identifiers_urls_raw_strings_lifetimes() {
    let src = r####"fn f<'a>(x: &'a str) -> &'a str {
    let a = "TODO in a string";
    let b = r#"FIXME "quoted" TODO"#;
    let c = '"'; // TODO: after a char literal
    let todo_list = TODOS + XXXL;
    // see https://example.com/TODO for details
    // docs/TODO.md lists more
    x
}
"####;
    check("a.rs", src, 4, "TODO", "after a char literal");
}

#[test]
fn rust_nested_block_comment() {
    let src = "fn f() {
    /* outer /* inner */
       TODO: still in the outer comment */
    let s = \"TODO\"; /* /* */ */ let t = \"FIXME\";
}
";
    let t = check("a.rs", src, 3, "TODO", "still in the outer comment");
    assert_eq!(t.symbol.as_deref(), Some("fn f() {"));
}

#[test]
fn rust_doc_comment_forms() {
    let todos = scan("a.rs", "///TODO: one\n//! FIXME two\n/** HACK: three */\n");
    let got: Vec<_> = todos
        .iter()
        .map(|t| (t.tag.as_str(), t.text.as_str()))
        .collect();
    assert_eq!(got, [("TODO", "one"), ("FIXME", "two"), ("HACK", "three")]);
}

#[test]
fn javascript_and_typescript() {
    let src = "const a = 'TODO';
const b = `multi
TODO line template`;
function go(x) {
  // FIXME(bob): y
  return x;
}
";
    let t = check("app.js", src, 5, "FIXME", "y");
    assert_eq!(t.author.as_deref(), Some("bob"));
    assert_eq!(t.language, "javascript");
    assert_eq!(t.symbol.as_deref(), Some("function go(x) {"));

    let ts = "export const f = (x: number): number => {
  /* HACK: cast */
  return x as number;
};
";
    let t = check("x.tsx", ts, 2, "HACK", "cast");
    assert_eq!(t.language, "typescript");
    assert_eq!(t.block_lines, (1, 4));
    for ext in ["mjs", "cjs", "jsx"] {
        assert_eq!(
            one(&format!("f.{ext}"), "// TODO x\n").language,
            "javascript"
        );
    }
    for ext in ["ts", "mts", "cts"] {
        assert_eq!(
            one(&format!("f.{ext}"), "// TODO x\n").language,
            "typescript"
        );
    }
}

#[test]
fn go_strings_raw_strings_and_runes() {
    let src = "package main

func main() {
\ts := \"TODO\"
\tr := `raw
// TODO not a comment
`
\tq := '\"'
\t// TODO: real
\t_ = s + r + string(q)
}
";
    let t = check("main.go", src, 9, "TODO", "real");
    assert_eq!(t.symbol.as_deref(), Some("func main() {"));
    assert_eq!(t.block_lines, (3, 11));
}

#[test]
fn c_and_cpp() {
    let src = "#include <stdio.h>

int main(void)
{
    printf(\"TODO: %c\\n\", '\"');
    /* TODO: free the buffer */
    return 0;
}
";
    let t = check("main.c", src, 6, "TODO", "free the buffer");
    assert_eq!(t.language, "c");
    assert_eq!(t.symbol.as_deref(), Some("int main(void) {"));
    assert_eq!(t.block_lines, (3, 8));

    let cpp = "int x = 1'000'000;
auto s = R\"(TODO in raw)\";
// XXX: cpp one
";
    let t = check("a.cpp", cpp, 3, "XXX", "cpp one");
    assert_eq!(t.language, "cpp");
    for ext in ["cc", "cxx", "hpp", "hh", "hxx"] {
        assert_eq!(one(&format!("f.{ext}"), "// TODO x\n").language, "cpp");
    }
    assert_eq!(one("f.h", "// TODO x\n").language, "c");
}

#[test]
fn jvm_and_friends() {
    let java = "class A {\n  String s = \"TODO\";\n  void f() {\n    // TODO: java\n  }\n}\n";
    let t = check("A.java", java, 4, "TODO", "java");
    assert_eq!(t.symbol.as_deref(), Some("class A {"));

    let kt = "fun f() {\n    /* a /* nested */ TODO: kotlin */\n}\n";
    check("a.kt", kt, 2, "TODO", "kotlin");

    let swift = "func f() {\n    let s = \"TODO\"\n    // TODO: swift\n}\n";
    check("a.swift", swift, 3, "TODO", "swift");

    let cs = "class C {\n    string s = @\"C:\\TODO\\\";\n    // TODO: csharp\n}\n";
    check("a.cs", cs, 3, "TODO", "csharp");

    let scala = "object O {\n  val s = \"\"\"TODO\"\"\"\n  // TODO: scala\n}\n";
    check("a.scala", scala, 3, "TODO", "scala");
}
