//! Scanner tests, one file per topic; the helpers and fixtures they share are here.

use super::*;

mod blocks;
mod c_family;
mod detection;
mod edges;
mod ids;
mod python;
mod scripts_and_config;
mod tags;
mod walk;

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

/// A function with a tag, shared by the Rust and encoding tests.
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
