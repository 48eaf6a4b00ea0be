//! Every other language: tokei's language database (`tokei-languages.json`, tokei 15.0.0's
//! `languages.json`, MIT or Apache-2.0 like this crate), turned into [`Language`] rows once.
//!
//! Why the data and not the `tokei` crate: the crate brings a counting engine (rayon, grep's
//! searcher, encoding detection) that is not used, for a table of 333 rows that `serde_json`,
//! already here, reads in about a millisecond. `scripts/update-languages` takes a newer
//! `languages.json` from a newer tokei on crates.io.
//!
//! The database knows a language's line and block comments, whether they nest, its quotes (with
//! backslash escapes), its verbatim quotes (without), its extensions, file names, `env`
//! interpreters and shebangs. The hand-written table (`table.rs`) wins wherever both know an
//! extension, a file name or an interpreter: its rows carry rules the database has no words for
//! (raw strings, heredocs, docstrings, `$#`).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::{BlockComment, CommentRule, Escape, Language, LineComment, StringKind, StringLiteral};

/// The database as shipped.
const DATA: &str = include_str!("tokei-languages.json");
/// Where the rows come from, for `scan --languages`.
pub const SOURCE: &str = "tokei 15.0.0 languages.json";

/// The database's rows, indexed. Languages without any comment syntax (JSON, plain text) are
/// kept apart: their files are known, and never read, since they cannot hold a comment.
pub struct Db {
    pub languages: Vec<&'static Language>,
    by_ext: HashMap<String, &'static Language>,
    by_file_name: HashMap<String, &'static Language>,
    by_interpreter: HashMap<String, &'static Language>,
}

impl Db {
    pub fn by_extension(&self, lower_ext: &str) -> Option<&'static Language> {
        self.by_ext.get(lower_ext).copied()
    }

    pub fn by_file_name(&self, lower_name: &str) -> Option<&'static Language> {
        self.by_file_name.get(lower_name).copied()
    }

    pub fn by_interpreter(&self, interpreter: &str) -> Option<&'static Language> {
        self.by_interpreter.get(interpreter).copied()
    }
}

/// The database, read on first use.
pub fn db() -> &'static Db {
    static DB: OnceLock<Db> = OnceLock::new();
    DB.get_or_init(|| build(DATA))
}

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

/// The database writes a double quote as `\"` (it is pasted into Rust source by tokei's build
/// script).
fn unescape(s: &str) -> String {
    s.replace("\\\"", "\"").replace("\\\\", "\\")
}

fn texts(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(unescape).collect())
        .unwrap_or_default()
}

fn pairs(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    let p = p.as_array()?;
                    Some((
                        unescape(p.first()?.as_str()?),
                        unescape(p.get(1)?.as_str()?),
                    ))
                })
                .filter(|(o, c)| !o.is_empty() && !c.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The row id: the database's key in lower case (`FortranModern` -> `fortranmodern`), the
/// shape of the hand-written ids (`rust`, `cpp`).
fn id(key: &str) -> String {
    key.to_ascii_lowercase()
}

fn build(data: &str) -> Db {
    let root: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    let mut db = Db {
        languages: Vec::new(),
        by_ext: HashMap::new(),
        by_file_name: HashMap::new(),
        by_interpreter: HashMap::new(),
    };
    let Some(entries) = root.get("languages").and_then(Value::as_object) else {
        return db;
    };
    for (key, e) in entries {
        let lang = leak_row(key, e);
        db.languages.push(lang);
        for ext in lang.extensions {
            db.by_ext.entry(ext.to_string()).or_insert(lang);
        }
        for name in lang.file_names {
            db.by_file_name.entry(name.to_string()).or_insert(lang);
        }
        for i in lang.interpreters {
            db.by_interpreter.entry(i.to_string()).or_insert(lang);
        }
    }
    db.languages.sort_by_key(|l| l.name);
    db
}

fn leak_row(key: &str, e: &Value) -> &'static Language {
    let mut line_comments: Vec<String> = texts(e.get("line_comment"));
    let nests = e.get("nested").and_then(Value::as_bool).unwrap_or(false);
    let mut blocks: Vec<(String, String, bool)> = pairs(e.get("multi_line_comments"))
        .into_iter()
        .map(|(o, c)| (o, c, nests))
        .chain(
            pairs(e.get("nested_comments"))
                .into_iter()
                .map(|(o, c)| (o, c, true)),
        )
        .collect();
    let mut quotes: Vec<(String, String, Escape)> = pairs(e.get("quotes"))
        .into_iter()
        .chain(pairs(e.get("doc_quotes")))
        .map(|(o, c)| (o, c, Escape::Backslash))
        .chain(
            pairs(e.get("verbatim_quotes"))
                .into_iter()
                .map(|(o, c)| (o, c, Escape::None)),
        )
        .collect();
    // The lexer tries block comments, then line comments, then strings, each in order: a
    // longer opener first, and no opener that an earlier one of another kind shadows (Vim
    // script's `"` is both a comment and a quote in the database: the comment wins there, so
    // the quote goes; the hand-written row does better).
    blocks.sort_by_key(|b| std::cmp::Reverse(b.0.len()));
    blocks.dedup_by(|a, b| a.0 == b.0);
    line_comments.sort_by_key(|l| std::cmp::Reverse(l.len()));
    line_comments.dedup();
    line_comments.retain(|l| !blocks.iter().any(|b| l.starts_with(&b.0)));
    quotes.sort_by_key(|q| std::cmp::Reverse(q.0.len()));
    quotes.dedup_by(|a, b| a.0 == b.0);
    quotes.retain(|q| {
        !blocks.iter().any(|b| q.0.starts_with(&b.0))
            && !line_comments.iter().any(|l| q.0.starts_with(l.as_str()))
    });

    let line_comments = leak(
        line_comments
            .into_iter()
            .map(|open| LineComment {
                open: leak_str(open),
                rule: CommentRule::Anywhere,
            })
            .collect(),
    );
    let block_comments = leak(
        blocks
            .into_iter()
            .map(|(open, close, nests)| BlockComment {
                open: leak_str(open),
                close: leak_str(close),
                nests,
                line_start: false,
            })
            .collect(),
    );
    let strings = leak(
        quotes
            .into_iter()
            .map(|(open, close, escape)| {
                // A one-byte quote ends at the line's end even unclosed, which confines a
                // misread (an apostrophe in prose, a prime) to one line; `"""` spans lines.
                let multiline = open.len() > 1;
                StringLiteral {
                    needs_boundary: open == "'",
                    open: leak_str(open),
                    close: leak_str(close),
                    escape,
                    multiline,
                    kind: StringKind::Plain,
                }
            })
            .collect(),
    );
    let lower = |v: Vec<String>| -> &'static [&'static str] {
        leak(
            v.into_iter()
                .map(|s| leak_str(s.to_ascii_lowercase()))
                .collect(),
        )
    };
    let mut interpreters = texts(e.get("env"));
    for shebang in texts(e.get("shebangs")) {
        if let Some(i) = super::shebang_interpreter(&shebang) {
            interpreters.push(i.to_string());
        }
    }
    interpreters.sort();
    interpreters.dedup();
    let display = e
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| key.to_string());
    Box::leak(Box::new(Language {
        name: leak_str(id(key)),
        display: leak_str(display),
        extensions: lower(texts(e.get("extensions"))),
        file_names: lower(texts(e.get("filenames"))),
        interpreters: leak(interpreters.into_iter().map(leak_str).collect()),
        line_comments,
        block_comments,
        strings,
        heredocs: false,
        labels: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_reads_whole_with_its_syntax() {
        let db = db();
        assert!(db.languages.len() >= 300, "{}", db.languages.len());
        let zig = db.by_extension("zig").expect("zig");
        assert_eq!(zig.line_comments[0].open, "//");
        assert_eq!(zig.strings[0].open, "\"");
        let julia = db.by_extension("jl").expect("julia");
        assert!(julia.block_comments[0].nests && julia.block_comments[0].open == "#=");
        let lisp = db.by_extension("lisp").expect("common lisp");
        assert_eq!(lisp.display, "Common Lisp");
        assert_eq!(
            db.by_file_name("cmakelists.txt").map(|l| l.name),
            Some("cmake")
        );
        assert_eq!(db.by_interpreter("fish").map(|l| l.name), Some("fish"));
        // Vim script's `"` is a comment here (the quote that shadows it is dropped).
        let vim = db.by_extension("vim").expect("vim");
        assert!(vim.strings.iter().all(|s| s.open != "\""));
    }
}
