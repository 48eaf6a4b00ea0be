//! Language detection by name, extension and shebang; the language table's consistency.

use super::*;

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
