//! What counts as a tag, and a TODO's tag, author, issue and text (continuation lines too).

use super::*;

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
