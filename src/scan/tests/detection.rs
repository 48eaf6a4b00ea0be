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
    // tokei's database, for what the hand-written table does not know.
    assert_eq!(name("README.md", ""), Some("markdown"));
    assert!(!has_comments(detect_language("README.md", "").unwrap()));
    assert_eq!(name("src/main.zig", ""), Some("zig"));
    assert_eq!(name("infra/main.TF", ""), Some("hcl"));
    assert_eq!(name("CMakeLists.txt", ""), Some("cmake"));
    assert_eq!(name("notes.txt", ""), Some("text"));
    assert_eq!(name("meson.build", ""), Some("meson"));
    assert_eq!(name("bin/tool", "#!/usr/bin/fish"), Some("fish"));
    assert_eq!(name("x.unknown-ext", ""), None);
    // The hand-written table wins where both know a name.
    assert_eq!(name("a.py", ""), Some("python"));
    assert_eq!(name("a.sh", ""), Some("shell"));
    assert_eq!(name("tool", "hello"), None);
    assert_eq!(name(".bashrc", ""), Some("shell"));
    assert!(scan("README.md", "TODO: prose\n").is_empty());
}

#[test]
fn language_table_is_consistent() {
    for lang in LANGUAGES.iter().chain(db().languages.iter().copied()) {
        // A line comment opener with a rule (`CommandStart`...) does not always open, so a
        // string opener after it is not shadowed.
        let all: Vec<&str> = lang
            .block_comments
            .iter()
            .map(|c| c.open)
            .chain(
                lang.line_comments
                    .iter()
                    .filter(|c| matches!(c.rule, CommentRule::Anywhere))
                    .map(|c| c.open),
            )
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
