//! Ids: stable across edits above, reindenting and moves; distinct for identical TODOs.

use super::*;

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
