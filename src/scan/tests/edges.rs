//! Edge inputs: CRLF, a BOM, no final newline, unterminated constructs, random noise.

use super::*;

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
    // Every hand-written row, 400 inputs each; every database row (about 300), 40 each.
    let rows = LANGUAGES
        .iter()
        .map(|l| (l, 400))
        .chain(db().languages.iter().map(|l| (*l, 40)));
    for (lang, inputs) in rows {
        // A name that detects this very row (a database row may lose an extension to the
        // hand-written table).
        let Some(path) = lang
            .extensions
            .iter()
            .map(|e| format!("f.{e}"))
            .chain(lang.file_names.iter().map(|f| f.to_string()))
            .find(|p| detect_language(p, "").is_some_and(|d| std::ptr::eq(d, lang)))
        else {
            continue;
        };
        for _ in 0..inputs {
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

/// Found by the `scan` fuzzer: a char literal opening with a backslash that ends the line
/// (`'\` then a newline) was read on past the newline, which the lexer then never counted, so
/// every later TODO was reported a line too high and its block was the wrong one.
#[test]
fn a_backslash_at_the_end_of_a_line_in_a_char_literal_does_not_hide_the_newline() {
    for path in ["a.c", "a.cs", "a.rs", "a.java"] {
        let src = "int c = '\\\n';\nint d;\n// TODO: count lines\n";
        let t = check(path, src, 4, "TODO", "count lines");
        assert_eq!(
            &src[t.block.start..t.block.end],
            "// TODO: count lines\n",
            "{path}"
        );
    }
}

/// Found by the `scan` fuzzer: a tag further down a block comment than the scope its first line
/// opens got that scope as its block, without the tag's own line, so no answer could ever
/// remove the tag (the patch gate counts it in the block). The block runs on to the tag's line.
#[test]
fn a_tag_lower_in_a_block_comment_is_inside_its_block() {
    let fuzzed = "\u{fffd}in\u{0}\u{0}mw\u{fffd}c *\u{4}f) {\r\n\u{b}/* XXX:\u{0}\u{0}9*\r/ \nic\tr/* FIXME: a blo + 1\n}\n\u{e}/* FIXME: a block  mb\u{0}\u{0}\u{0}aetmw\u{fffd}c */\rurn\n";
    let plain = "int f(void) {\n    return 1; /* FIXME: first\n}\n   FIXME: second */\nint g;\n";
    for src in [fuzzed, plain] {
        for t in scan("a.c", src) {
            let (first, last) = t.block_lines;
            assert!(first <= t.line && t.line <= last, "{t:#?}");
            assert_block_sane(src, &t);
        }
    }
}
