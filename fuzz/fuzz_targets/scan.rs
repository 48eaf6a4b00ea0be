//! `scan_source` on arbitrary text: the first byte picks the language (the path's extension)
//! and whether syntax trees are used; the rest is the file, lossily made UTF-8 as a file that
//! is not UTF-8 is skipped before it gets here.
//!
//! Invariants: every TODO's line and block lie inside the input, the block starts at a line
//! start and ends after a `\n` (or at the end), covers the tag's line and matches its line
//! numbers; ids are unique in the file and do not depend on the syntax trees (a listing and a
//! run must agree).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tars_fleet::scan::{LANGUAGES, ScanOptions, Todo, scan_source, sha256_hex};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let lang = &LANGUAGES[usize::from(sel & 0x7f) % LANGUAGES.len()];
    let path = match lang.extensions.first() {
        Some(ext) => format!("src/f.{ext}"),
        None => "Makefile".to_string(),
    };
    let content = String::from_utf8_lossy(rest);
    let opts = ScanOptions {
        syntax_context: sel & 0x80 != 0,
        ..ScanOptions::default()
    };
    let todos = scan_source(&path, &content, &opts);
    let listing = scan_source(
        &path,
        &content,
        &ScanOptions {
            syntax_context: false,
            keep_content: false,
            ..ScanOptions::default()
        },
    );
    let key = |t: &Todo| (t.id.clone(), t.line, t.tag.clone(), t.text.clone());
    assert_eq!(
        todos.iter().map(key).collect::<Vec<_>>(),
        listing.iter().map(key).collect::<Vec<_>>(),
        "ids depend on syntax_context"
    );
    let line_count = content.split('\n').count();
    let mut ids = std::collections::HashSet::new();
    for t in &todos {
        assert!(ids.insert(t.id.clone()), "duplicate id {}", t.id);
        assert_eq!(t.path, path);
        assert_eq!(t.language, lang.name);
        assert!(opts.tags.contains(&t.tag), "unknown tag {}", t.tag);
        assert!(
            t.line >= 1 && t.line <= line_count,
            "line {} of {line_count}",
            t.line
        );
        let (s, e) = (t.block.start, t.block.end);
        assert!(
            s < e && e <= content.len(),
            "block {s}..{e} of {}",
            content.len()
        );
        assert!(content.is_char_boundary(s) && content.is_char_boundary(e));
        let bom = if content.starts_with('\u{feff}') {
            3
        } else {
            0
        };
        assert!(
            s == bom || content.as_bytes()[s - 1] == b'\n',
            "block starts mid-line"
        );
        assert!(
            e == content.len() || content.as_bytes()[e - 1] == b'\n',
            "block ends mid-line"
        );
        let (first, last) = t.block_lines;
        assert!(
            first <= t.line && t.line <= last,
            "line {} outside block {first}..={last}",
            t.line
        );
        assert_eq!(
            content[..s].matches('\n').count() + 1,
            first,
            "block start line"
        );
        let body_end = if content.as_bytes()[e - 1] == b'\n' {
            e - 1
        } else {
            e
        };
        let last_of_block = content[..body_end].matches('\n').count() + 1;
        assert_eq!(last_of_block, last, "block end line");
        assert_eq!(t.content_hash, sha256_hex(content.as_bytes()));
        let tag_line = content.split('\n').nth(t.line - 1).unwrap_or("");
        assert!(
            tag_line.to_uppercase().contains(&t.tag),
            "tag {} not on line {}: {tag_line:?}",
            t.tag,
            t.line
        );
    }
});
