use std::path::Path;

use super::tags::TagSet;
use super::text::scan_text;
use super::*;

/// Scans with the indentation heuristic only: most tests here are about the lexer and the
/// fallback that every language without a grammar gets; `syntax_scan` covers the trees.
fn scan(path: &str, src: &str) -> Vec<Todo> {
    let opts = ScanOptions {
        syntax_context: false,
        ..ScanOptions::default()
    };
    scan_source(path, src, &opts)
}

fn one(path: &str, src: &str) -> Todo {
    let todos = scan(path, src);
    assert_eq!(todos.len(), 1, "expected one TODO in {path}: {todos:#?}");
    todos.into_iter().next().expect("one todo")
}

fn block_of<'a>(src: &'a str, t: &Todo) -> &'a str {
    &src[t.block.start..t.block.end]
}

/// Checks the invariants every block must hold whatever the heuristic chose.
fn assert_block_sane(src: &str, t: &Todo) {
    let b = t.block;
    assert!(b.start <= b.end && b.end <= src.len(), "{t:#?}");
    assert!(src.is_char_boundary(b.start) && src.is_char_boundary(b.end));
    let bom = if src.starts_with('\u{feff}') { 3 } else { 0 };
    assert!(
        b.start == bom || src.as_bytes()[b.start - 1] == b'\n',
        "start not at a line start"
    );
    assert!(
        b.end == src.len() || src.as_bytes()[b.end - 1] == b'\n',
        "end not after a newline"
    );
    let (first, last) = t.block_lines;
    assert!(
        first <= t.line && t.line <= last,
        "block {first}..={last} misses line {}",
        t.line
    );
    let line_of_start = src[..b.start].matches('\n').count() + 1;
    assert_eq!(
        line_of_start, first,
        "block.start disagrees with block_lines"
    );
    assert_eq!(t.id.len(), 16);
    assert!(
        t.id.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    );
}

fn check(path: &str, src: &str, line: usize, tag: &str, text: &str) -> Todo {
    let t = one(path, src);
    assert_eq!(
        (t.line, t.tag.as_str(), t.text.as_str()),
        (line, tag, text),
        "{t:#?}"
    );
    assert_block_sane(src, &t);
    t
}

// ---------------------------------------------------------------- languages

const RUST_FN: &str = "use std::io;

/// Parses things.
fn parse(input: &str) -> u32 {
    let s = \"TODO: not a tag, a string\";
    let todo_list = vec![1];
    // TODO: handle overflow
    input.len() as u32 + todo_list.len() as u32
}

fn other() {}
";

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
fn python_comment_string_and_docstring() {
    let src = r##"def f():
    """TODO: a docstring is documentation"""
    s = 'TODO'
    t = "# TODO not a comment"
    u = """TODO: an assigned triple-quoted string is data"""
    # FIXME: real one
    return s
"##;
    let todos = scan("m.py", src);
    let found: Vec<(usize, &str)> = todos.iter().map(|t| (t.line, t.text.as_str())).collect();
    assert_eq!(
        found,
        [(2, "a docstring is documentation"), (6, "real one")]
    );
    assert_eq!(todos[1].language, "python");
    assert_eq!(todos[1].symbol.as_deref(), Some("def f():"));
    assert_eq!(block_of(src, &todos[1]), src);
}

#[test]
fn python_docstring_forms() {
    // Multi-line, raw, single-quoted, CRLF, and an escaped quote that does not close it.
    let src = [
        "class A:",
        "    r'''Summary.",
        "",
        "    TODO(ann): first line",
        "        and its continuation",
        "    '''",
        "",
        "    def f(self):",
        r#"        """Say \""" hi."#,
        r#"        XXX: after an escaped quote""""#,
        "        return '''TODO: returned, not documentation'''",
        "",
    ]
    .join("\r\n");
    let todos = scan("a.py", &src);
    let found: Vec<(usize, &str, Option<&str>)> = todos
        .iter()
        .map(|t| (t.line, t.text.as_str(), t.author.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            (4, "first line and its continuation", Some("ann")),
            (10, "after an escaped quote", None),
        ]
    );
    for t in &todos {
        assert_block_sane(&src, t);
    }
    // Strings continuing an expression are data, whatever their place on the line.
    for data in [
        "call(\n    \"\"\"TODO: argument\"\"\"\n)\n",
        "x = \\\n    \"\"\"TODO: continued\"\"\"\n",
        "d = {\n    'k': 1,\n    \"\"\"TODO: key\"\"\": 2,\n}\n",
        "x = (\"a\"\n     \"\"\"TODO: concatenated\"\"\")\n",
        "d = {\n    'k':\n        \"\"\"TODO: value\"\"\"\n}\n",
    ] {
        assert!(scan("a.py", data).is_empty(), "{data}");
    }
    // An unclosed bracket (broken code, or one the lexer misread) stops at the next
    // definition: later docstrings are still found.
    let broken = "x = foo(\n\ndef f():\n    \"\"\"TODO: still found\"\"\"\n";
    let todos = scan("a.py", broken);
    assert_eq!(todos.len(), 1, "{todos:#?}");
    assert_eq!(todos[0].line, 4);
}

const PY_CLASS: &str = "import os


class Greeter:
    def __init__(self):
        self.n = 0

    def greet(self, name):
        # TODO: handle empty names
        return f\"hi {name}\"


def main():
    pass
";

#[test]
fn python_method_picks_the_class_when_it_fits() {
    let t = check("g.py", PY_CLASS, 9, "TODO", "handle empty names");
    assert_eq!(t.symbol.as_deref(), Some("class Greeter:"));
    assert_eq!(t.block_lines, (4, 10));
    let block = block_of(PY_CLASS, &t);
    assert!(block.starts_with("class Greeter:\n"));
    assert!(block.ends_with("return f\"hi {name}\"\n"));
}

#[test]
fn python_method_picks_the_method_when_the_class_is_too_big() {
    let opts = ScanOptions {
        max_block_lines: 5,
        ..ScanOptions::default()
    };
    let todos = scan_source("g.py", PY_CLASS, &opts);
    assert_eq!(todos.len(), 1);
    let t = &todos[0];
    assert_eq!(t.symbol.as_deref(), Some("def greet(self, name):"));
    assert_eq!(t.block_lines, (8, 10));
    assert!(block_of(PY_CLASS, t).starts_with("    def greet(self, name):\n"));
    assert_block_sane(PY_CLASS, t);
}

#[test]
fn python_multiline_signature() {
    let src = "def f(
    a,
    b,
) -> int:
    # TODO: use b
    return a
";
    let t = check("m.py", src, 5, "TODO", "use b");
    assert_eq!(t.symbol.as_deref(), Some("def f( a, b, ) -> int:"));
    assert_eq!(t.block_lines, (1, 6));
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

#[test]
fn php_ruby_perl() {
    let php = "<?php\n#[Attribute]\n$a = 'TODO';\n# TODO: hash\n// FIXME: slashes\n";
    let todos = scan("a.php", php);
    let got: Vec<_> = todos.iter().map(|t| (t.line, t.tag.as_str())).collect();
    assert_eq!(got, [(4, "TODO"), (5, "FIXME")]);

    let rb = "def f\n  s = \"TODO\"\n  # TODO: ruby\nend\n=begin\nFIXME: in block\n=end\n";
    let todos = scan("a.rb", rb);
    assert_eq!(todos.len(), 2);
    assert_eq!((todos[0].line, todos[0].text.as_str()), (3, "ruby"));
    assert_eq!(todos[0].block_lines, (1, 4));
    assert_eq!((todos[1].line, todos[1].text.as_str()), (6, "in block"));

    let pl = "my $n = $#array;\nmy $s = 'TODO';\n# TODO: perl\n";
    check("a.pl", pl, 3, "TODO", "perl");
}

#[test]
fn shell_dollar_hash_quotes_and_heredocs() {
    let src = "#!/bin/bash
n=$#
len=${#name}
s='TODO: single quoted # not a comment'
cat <<EOF
don't # TODO: inside a heredoc
EOF
echo \"TODO\"; # FIXME: real one
";
    let t = check("run.sh", src, 8, "FIXME", "real one");
    assert_eq!(t.language, "shell");
    let todos = scan("script", src);
    assert_eq!(todos.len(), 1, "shebang detection");
    assert_eq!(todos[0].language, "shell");
}

#[test]
fn config_and_query_languages() {
    // The apostrophe in `it's` must not open a string that hides the comment after it.
    let yaml = "key: \"TODO\"\nurl: http://x/#TODO\n# TODO: yaml\nit's: fine # FIXME later\n";
    let todos = scan("a.yaml", yaml);
    let got: Vec<_> = todos
        .iter()
        .map(|t| (t.line, t.tag.as_str(), t.text.as_str()))
        .collect();
    assert_eq!(got, [(3, "TODO", "yaml"), (4, "FIXME", "later")]);
    check("a.toml", "a = \"TODO\"\n# TODO: toml\n", 2, "TODO", "toml");
    check(
        "a.sql",
        "SELECT 'TODO' -- TODO: sql\nFROM t;\n",
        1,
        "TODO",
        "sql",
    );
    let lua = "local s = [[TODO]]\n--[[ multi\nTODO: lua block ]]\n";
    check("a.lua", lua, 3, "TODO", "lua block");
    check(
        "a.hs",
        "x = \"TODO\"\n{- a {- b -} TODO: haskell -}\n",
        2,
        "TODO",
        "haskell",
    );
    check(
        "a.css",
        "a { content: \"TODO\"; } /* TODO: css */\n",
        1,
        "TODO",
        "css",
    );
    check(
        "a.html",
        "<p>don't TODO here</p>\n<!-- TODO: html -->\n",
        2,
        "TODO",
        "html",
    );
    check(
        "a.xml",
        "<a>TODO</a>\n<!--\n  FIXME: xml\n-->\n",
        3,
        "FIXME",
        "xml",
    );
}

// ---------------------------------------------------------------- tag forms

#[test]
fn tag_forms_and_authors() {
    let src = "// TODO: colon
// TODO(alice): with author
// TODO plain
// TODO - dashed
// FIXME!
// @todo lower
// @Fixme(carol) mixed
// TODOS are not tags
// XXXL is a size
// todo_list and todo: lower case is prose
// mail me@todo.com
// XXX: last
";
    let todos = scan("a.rs", src);
    let got: Vec<_> = todos
        .iter()
        .map(|t| (t.line, t.tag.as_str(), t.author.as_deref(), t.text.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "TODO", None, "colon"),
            (2, "TODO", Some("alice"), "with author"),
            (3, "TODO", None, "plain"),
            (4, "TODO", None, "dashed"),
            (5, "FIXME", None, ""),
            (6, "TODO", None, "lower"),
            (7, "FIXME", Some("carol"), "mixed"),
            (12, "XXX", None, "last"),
        ]
    );
}

#[test]
fn issue_references_and_lower_case_first_words() {
    let src = "// TODO(#123) with issue
// TODO #45: hash form
// TODO(alice, GH-12): both
// FIXME(ABC-123) tracker key
// todo: lower at the head
// plain prose line
// x = 1; // todo: lower mid-line is prose
// Todo(bob-2) lower
// fixme first word
// TODO(bob-2): not an issue key
";
    let todos = scan("a.rs", src);
    let got: Vec<_> = todos
        .iter()
        .map(|t| {
            (
                t.line,
                t.tag.as_str(),
                t.author.as_deref(),
                t.issue.as_deref(),
                t.text.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "TODO", None, Some("#123"), "with issue"),
            (2, "TODO", None, Some("#45"), "hash form"),
            (3, "TODO", Some("alice"), Some("GH-12"), "both"),
            (4, "FIXME", None, Some("ABC-123"), "tracker key"),
            (5, "TODO", None, None, "lower at the head"),
            (9, "FIXME", None, None, "first word"),
            (10, "TODO", Some("bob-2"), None, "not an issue key"),
        ]
    );
    // Mid-line, `TODO #12` without a separator is still an explicit form.
    let t = one("a.py", "x = 1  # see TODO #12 later\n");
    assert_eq!(t.issue.as_deref(), Some("#12"));
    assert_eq!(t.text, "later");
}

#[test]
fn multi_line_todos_join_deeper_indented_comment_lines() {
    let src = "# TODO: a
#   b
#   c
# unrelated prose
x = 1
";
    let t = one("a.py", src);
    assert_eq!(t.text, "a b c");
    let plain = one("a.py", "# TODO: a\nx = 1\n");
    assert_ne!(t.id, plain.id, "the id hashes the full text");

    let block = "/*
 * TODO: first
 *   second
 * FIXME: own tag
 *   its tail
 */
";
    let got: Vec<_> = scan("a.c", block)
        .into_iter()
        .map(|t| (t.line, t.text))
        .collect();
    assert_eq!(
        got,
        [
            (2, "first second".to_string()),
            (4, "own tag its tail".to_string())
        ]
    );

    // A code line, an empty comment line, a different opener or a trailing comment ends it.
    let stops = "// TODO: one
//
//    not joined
int x; // TODO: two
//      not joined either
/* TODO: three */
/*   no */
";
    let got: Vec<_> = scan("a.c", stops)
        .into_iter()
        .map(|t| (t.line, t.text))
        .collect();
    assert_eq!(
        got,
        [
            (1, "one".to_string()),
            (4, "two".to_string()),
            (6, "three".to_string())
        ]
    );
    // CRLF and same-line block comment continuation.
    let t = one("a.rs", "// TODO: a\r\n//   b\r\nfn f() {}\r\n");
    assert_eq!(t.text, "a b");
    let t = one("a.rs", "/* TODO: a\n     b */\nfn f() {}\n");
    assert_eq!(t.text, "a b");
}

#[test]
fn mentions_in_prose_are_not_tags() {
    let src = "// the variable `DEP_XXX_ROOT`, where `XXX` is the name
// grep for \"TODO\" before release
// this is a TODO list for later
// old(); // FIXME: explicit forms count mid-line
/// Returns x. TODO(bob) check
// Future work (FIXME!)
// old(); // XXX not needed
// [TODO] bracketed
";
    let todos = scan("a.rs", src);
    let got: Vec<_> = todos
        .iter()
        .map(|t| (t.line, t.tag.as_str(), t.author.as_deref(), t.text.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (4, "FIXME", None, "explicit forms count mid-line"),
            (5, "TODO", Some("bob"), "check"),
            (6, "FIXME", None, ""),
            (7, "XXX", None, "not needed"),
            (8, "TODO", None, "bracketed"),
        ]
    );
}

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
fn one_tag_per_comment_line_the_first() {
    let t = one("a.rs", "// FIXME: a TODO: b\n");
    assert_eq!((t.tag.as_str(), t.text.as_str()), ("FIXME", "a TODO: b"));
    let t = one("a.rs", "/* TODO: a */ x(); // FIXME: b\n");
    assert_eq!(t.tag, "TODO");
}

#[test]
fn custom_tags_are_canonicalised() {
    let opts = ScanOptions {
        tags: vec!["note ".into(), "NOTE".into()],
        ..ScanOptions::default()
    };
    let todos = scan_source("a.py", "# NOTE: x\n# TODO: y\n", &opts);
    assert_eq!(todos.len(), 1);
    assert_eq!(todos[0].tag, "NOTE");
    let none = ScanOptions {
        tags: vec![],
        ..opts
    };
    assert!(scan_source("a.py", "# TODO\n", &none).is_empty());
}

// ---------------------------------------------------------------- encodings

#[test]
fn crlf_offsets_and_text() {
    let src = RUST_FN.replace('\n', "\r\n");
    let t = check("a.rs", &src, 7, "TODO", "handle overflow");
    let block = block_of(&src, &t);
    assert!(block.starts_with("fn parse(input: &str) -> u32 {\r\n"));
    assert!(block.ends_with("}\r\n"));
    assert_eq!(t.symbol.as_deref(), Some("fn parse(input: &str) -> u32 {"));
    assert_eq!(t.block_lines, (4, 9));
}

#[test]
fn bom_is_skipped_but_offsets_stay_relative_to_the_content() {
    let src = format!("\u{feff}{RUST_FN}");
    let t = check("a.rs", &src, 7, "TODO", "handle overflow");
    assert_eq!(t.block.start, RUST_FN.find("fn parse").expect("header") + 3);
    assert!(block_of(&src, &t).starts_with("fn parse"));

    let top = "\u{feff}// TODO: first line\nfn f() {}\n";
    let t = check("a.rs", top, 1, "TODO", "first line");
    assert_eq!(t.block.start, 3);
    assert_eq!(block_of(top, &t), "// TODO: first line\nfn f() {}\n");
}

#[test]
fn no_trailing_newline_and_unterminated_constructs() {
    let src = "fn f() {\n    // TODO: eof";
    let t = check("a.rs", src, 2, "TODO", "eof");
    assert_eq!(t.block.end, src.len());
    check("a.rs", "/* TODO: never closed\n", 1, "TODO", "never closed");
    assert!(scan("a.rs", "let s = \"never closed TODO\n").is_empty());
    assert!(scan("a.rs", "").is_empty());
}

// ---------------------------------------------------------------- blocks

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

// ---------------------------------------------------------------- ids

#[test]
fn ids_survive_edits_above_reindenting_and_moves() {
    let base = "fn a() {\n    // TODO: fix a\n    1\n}\n\nfn b() {\n    // TODO: fix b\n}\n";
    let ids = |src: &str| -> Vec<String> { scan("m.rs", src).into_iter().map(|t| t.id).collect() };
    let original = ids(base);
    assert_eq!(original.len(), 2);
    assert_ne!(original[0], original[1]);

    let inserted = format!("use x;\nuse y;\n\n{base}");
    assert_eq!(ids(&inserted), original);

    let reindented = base.replace("    ", "\t");
    assert_eq!(ids(&reindented), original);
    let wrapped = format!(
        "mod m {{\n{}}}\n",
        base.lines()
            .map(|l| format!("        {l}\n"))
            .collect::<String>()
    );
    let in_mod = scan("m.rs", &wrapped);
    assert_eq!(in_mod.len(), 2);
    assert_eq!(in_mod[0].symbol.as_deref(), Some("fn a() {"));
    assert_eq!(in_mod[0].id, original[0]);

    let moved = "fn b() {\n    // TODO: fix b\n}\n\nfn a() {\n    // TODO: fix a\n    1\n}\n";
    assert_eq!(ids(moved), [original[1].clone(), original[0].clone()]);

    // The path is part of the identity.
    let elsewhere: Vec<String> = scan("n.rs", base).into_iter().map(|t| t.id).collect();
    assert_ne!(elsewhere[0], original[0]);
}

#[test]
fn identical_todos_get_distinct_ids() {
    let src = "fn a() {\n    // TODO: same\n    // TODO:   same\n}\n";
    let todos = scan("a.rs", src);
    assert_eq!(todos.len(), 2);
    assert_ne!(todos[0].id, todos[1].id);
    assert_eq!(todos[0].symbol, todos[1].symbol);
}

// ---------------------------------------------------------------- detection

#[test]
fn language_detection() {
    let name = |p: &str, first: &str| detect_language(p, first).map(|l| l.name);
    assert_eq!(name("src/a.rs", ""), Some("rust"));
    assert_eq!(name("A.PY", ""), Some("python"));
    assert_eq!(name("x.pyi", ""), Some("python"));
    assert_eq!(
        name("bin/tool", "#!/usr/bin/env python3.11 -u"),
        Some("python")
    );
    assert_eq!(name("bin/tool", "#!/usr/bin/env -S bash -e"), Some("shell"));
    assert_eq!(name("bin/tool", "#!/bin/zsh"), Some("shell"));
    assert_eq!(name("bin/tool", "#!/bin/dash"), Some("shell"));
    assert_eq!(name("bin/tool", "#!/usr/bin/perl -w"), Some("perl"));
    assert_eq!(name("x.rs", "#!/bin/bash"), Some("rust"));
    assert_eq!(name("Makefile", ""), Some("make"));
    assert_eq!(name("Dockerfile.dev", ""), Some("dockerfile"));
    assert_eq!(name("README.md", ""), None);
    assert_eq!(name("tool", "hello"), None);
    assert_eq!(name(".bashrc", ""), Some("shell"));
    assert!(scan("README.md", "TODO: prose\n").is_empty());
}

#[test]
fn language_table_is_consistent() {
    for lang in LANGUAGES {
        let all: Vec<&str> = lang
            .block_comments
            .iter()
            .map(|c| c.open)
            .chain(lang.line_comments.iter().map(|c| c.open))
            .chain(lang.strings.iter().map(|s| s.open))
            .collect();
        // Openers are tried in order: a shorter one listed first would shadow a longer one.
        for (i, early) in all.iter().enumerate() {
            assert!(!early.is_empty(), "{}: empty opener", lang.name);
            for late in &all[i + 1..] {
                assert!(
                    !late.starts_with(early),
                    "{}: {early:?} shadows {late:?}",
                    lang.name
                );
            }
        }
        for s in lang.strings {
            assert!(!s.close.is_empty(), "{}: empty closer", lang.name);
        }
        for c in lang.block_comments {
            assert!(!c.close.is_empty(), "{}: empty closer", lang.name);
        }
    }
}

// ---------------------------------------------------------------- robustness

/// Deterministic pseudo-random inputs over every language: nothing may panic, and every block
/// must satisfy the invariants.
#[test]
fn no_panics_on_noise() {
    let pieces = [
        "TODO", "TODO(", "FIXME:", "@todo", "//", "/*", "*/", "#", "--", "{-", "-}", "<!--", "-->",
        "\"", "'", "`", "\"\"\"", "'''", "r#\"", "\"#", "\\", "\n", "\r\n", "\t", "    ", "{", "}",
        "(", ")", ":", "fn f() {", "def f():", "é", "日本", "\u{feff}", "<<EOF", "EOF", "=begin",
        "=end", "$#", "[[", "]]", "x", " ",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for lang in LANGUAGES {
        let path = match lang.extensions.first() {
            Some(ext) => format!("f.{ext}"),
            None => lang.file_names[0].to_string(),
        };
        for _ in 0..400 {
            let len = (next() % 60) as usize;
            let src: String = (0..len)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            for max in [1, 3, 120] {
                let opts = ScanOptions {
                    max_block_lines: max,
                    ..ScanOptions::default()
                };
                for t in scan_source(&path, &src, &opts) {
                    assert_block_sane(&src, &t);
                    assert!(t.block_lines.1 - t.block_lines.0 < max);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- walker

#[test]
fn walker_honours_ignores_and_counts_skips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let write = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, data).expect("write");
    };
    write(".gitignore", b"ignored.rs\nbuild/\n");
    write(".ignore", b"also_ignored.py\n");
    write("src/main.rs", b"fn main() {\n    // TODO: real\n}\n");
    write("src/clean.rs", b"fn clean() {}\n");
    write("ignored.rs", b"// TODO: ignored\n");
    write("build/gen.rs", b"// TODO: ignored too\n");
    write("also_ignored.py", b"# TODO: ignored\n");
    write(".hidden/x.rs", b"// TODO: hidden\n");
    write("bin.c", b"// TODO\0binary\n");
    write(
        "big.rs",
        format!("// TODO: big\n{}", "x".repeat(2000)).as_bytes(),
    );
    write("latin1.py", b"# TODO: caf\xe9\n");
    write("notes.txt", b"TODO: unknown language\n");
    write("tool", b"#!/bin/sh\n# TODO: shebang\n");

    let opts = ScanOptions {
        max_file_bytes: 1000,
        ..ScanOptions::default()
    };
    let report = scan_path(root, &opts).expect("scan");
    let paths: Vec<&str> = report.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["src/main.rs", "tool"]);
    assert_eq!(report.files_scanned, 3);
    assert_eq!(report.skipped.get(&SkipReason::Binary), Some(&1));
    assert_eq!(report.skipped.get(&SkipReason::TooLarge), Some(&1));
    assert_eq!(report.skipped.get(&SkipReason::NotUtf8), Some(&1));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let main = &report.files[0];
    assert_eq!(main.todos[0].text, "real");
    assert_eq!(main.content, "fn main() {\n    // TODO: real\n}\n");
    assert_eq!(main.content_hash, main.todos[0].content_hash);
    assert_eq!(report.files[1].todos[0].language, "shell");
}

#[test]
fn walker_rejects_bad_roots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    assert!(matches!(
        scan_path(&missing, &ScanOptions::default()),
        Err(ScanError::NotFound { .. })
    ));
    let file = dir.path().join("f.rs");
    std::fs::write(&file, "").expect("write");
    let err = scan_path(&file, &ScanOptions::default()).expect_err("file root");
    assert!(matches!(err, ScanError::NotADirectory { .. }));
    assert!(err.to_string().contains("not a directory"));
}

#[cfg(unix)]
#[test]
fn walker_survives_symlink_loops_and_dangling_links() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir(root.join("d")).expect("mkdir");
    std::os::unix::fs::symlink(root, root.join("d/loop")).expect("symlink");
    std::os::unix::fs::symlink(root.join("missing.rs"), root.join("dangling.rs")).expect("symlink");
    std::fs::write(root.join("d/a.rs"), "// TODO: once\n").expect("write");
    let report = scan_path(root, &ScanOptions::default()).expect("scan");
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].path, "d/a.rs");
}

#[test]
fn walker_include_and_exclude_globs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for (rel, body) in [
        ("src/a.rs", "// TODO: a\n"),
        ("src/gen/b.rs", "// TODO: b\n"),
        ("tests/c.py", "# TODO: c\n"),
        ("d.go", "// TODO: d\n"),
    ] {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }
    let paths = |include: &[&str], exclude: &[&str]| -> Vec<String> {
        let opts = ScanOptions {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            ..ScanOptions::default()
        };
        let report = scan_path(root, &opts).expect("scan");
        report.files.into_iter().map(|f| f.path).collect()
    };
    assert_eq!(paths(&[], &[]).len(), 4);
    assert_eq!(paths(&["src/**"], &[]), ["src/a.rs", "src/gen/b.rs"]);
    assert_eq!(paths(&["src/**"], &["gen/"]), ["src/a.rs"]);
    assert_eq!(
        paths(&["*.rs", "*.go"], &["src/gen/**"]),
        ["d.go", "src/a.rs"]
    );
    assert_eq!(paths(&[], &["*.rs"]), ["d.go", "tests/c.py"]);

    let bad = ScanOptions {
        include: vec!["src/{a,b".into()],
        ..ScanOptions::default()
    };
    let err = scan_path(root, &bad).expect_err("bad glob");
    assert!(matches!(err, ScanError::BadGlob { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("--include") && msg.contains("src/{a,b"),
        "{msg}"
    );
    let bad = ScanOptions {
        exclude: vec!["!keep".into()],
        ..ScanOptions::default()
    };
    assert!(scan_path(root, &bad).is_err());
}

#[test]
fn prefilter_never_hides_a_tag() {
    // Every file of the ground-truth corpus and the demo, scanned with and without the
    // whole-file prefilter, gives the same TODOs.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let opts = ScanOptions::default();
    let tags = TagSet::new(&opts.tags);
    let mut checked = 0;
    for dir in ["tests/fixtures/scan-corpus", "examples/demo"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("read_dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(content) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let rel = path.to_string_lossy().into_owned();
                let text = content.strip_prefix('\u{feff}').unwrap_or(&content);
                let Some(lang) = detect_language(&rel, text.lines().next().unwrap_or("")) else {
                    continue;
                };
                let all = scan_text(&rel, &content, lang, &tags, None, &opts);
                let cands = tags.candidates(text.as_bytes()).expect("prefilter");
                let filtered = if cands.is_empty() {
                    Vec::new()
                } else {
                    scan_text(&rel, &content, lang, &tags, Some(&cands), &opts)
                };
                assert_eq!(filtered, all, "{rel}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "{checked}");
    let noise = "x.todo(); DEBUG; TODOS; todo_list; let todo = 1; // todo: y\n@Todo z";
    let found = tags.candidates(noise.as_bytes()).expect("prefilter");
    assert_eq!(found.len(), 2, "{found:?}");
}
