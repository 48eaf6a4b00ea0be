//! Python: comments, docstrings versus strings that are data, the class or method a tag gets.

use super::*;

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
