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

/// A database row before it is fixed and leaked.
struct Row {
    line: Vec<(String, CommentRule)>,
    blocks: Vec<Block>,
    quotes: Vec<Quote>,
    heredocs: bool,
    code_escapes: bool,
}

struct Block {
    open: String,
    close: String,
    nests: bool,
    not_before: &'static [u8],
}

struct Quote {
    open: String,
    close: String,
    escape: Escape,
    multiline: bool,
    kind: StringKind,
    needs_boundary: bool,
}

fn quote(open: &str, close: &str, escape: Escape) -> Quote {
    Quote {
        open: open.to_string(),
        close: close.to_string(),
        escape,
        // A one-byte quote ends at the line's end even unclosed, which confines a misread (an
        // apostrophe in prose, a prime) to one line; `"""` spans lines.
        multiline: open.len() > 1,
        kind: StringKind::Plain,
        // `don't`, `x'`: an apostrophe right after a word is not a string's start.
        needs_boundary: open == "'",
    }
}

fn block_of(open: &str, close: &str, nests: bool) -> Block {
    Block {
        open: open.to_string(),
        close: close.to_string(),
        nests,
        not_before: &[],
    }
}

/// What the database gets wrong or leaves out, per language (its key), found by the
/// ground-truth corpus (tests/fixtures/scan-corpus): strings it does not list (so a comment
/// opener inside one was taken for a comment), comments that nest, quotes without backslash
/// escapes, openers that count only where a command starts.
fn correct(key: &str, r: &mut Row) {
    use Escape::{Backslash, None as Verbatim};
    let add = |r: &mut Row, q: Quote| {
        r.quotes.retain(|x| x.open != q.open);
        r.quotes.push(q);
    };
    let multiline = |mut q: Quote| {
        q.multiline = true;
        q
    };
    let char_literal = || Quote {
        kind: StringKind::Char,
        ..quote("'", "'", Backslash)
    };
    let nest_all = |r: &mut Row| r.blocks.iter_mut().for_each(|b| b.nests = true);
    match key {
        // Character literals: `'"'` is not a string's start.
        "Zig" => {
            add(r, char_literal());
            // `\\` starts a line of a multi-line string, which runs to the line's end (a
            // one-line string ends there; its closer, NUL, is never in a text file).
            add(
                r,
                Quote {
                    multiline: false,
                    ..quote("\\\\", "\0", Verbatim)
                },
            );
        }
        "ObjectiveC" | "ObjectiveCpp" | "Cuda" | "Glsl" | "Hlsl" => add(r, char_literal()),
        "Elixir" => {
            // Sigils: a regex `~r/#.../` holds no comment.
            for (o, c) in [
                ("~r/", "/"),
                ("~r{", "}"),
                ("~r(", ")"),
                ("~r|", "|"),
                ("~s(", ")"),
            ] {
                add(r, quote(o, c, Backslash));
            }
        }
        "Erlang" => {
            add(r, multiline(quote("\"", "\"", Backslash)));
            // Quoted atoms.
            add(r, quote("'", "'", Backslash));
        }
        "R" => {
            add(r, multiline(quote("\"", "\"", Backslash)));
            add(r, multiline(quote("'", "'", Backslash)));
        }
        "Elm" => {
            add(r, quote("\"", "\"", Backslash));
            add(r, multiline(quote("\"\"\"", "\"\"\"", Backslash)));
            add(r, char_literal());
        }
        // A quote is doubled, never escaped; `'x'` is a character.
        "Ada" | "Vhdl" => {
            add(r, quote("\"", "\"", Verbatim));
            add(
                r,
                Quote {
                    kind: StringKind::Char,
                    ..quote("'", "'", Verbatim)
                },
            );
        }
        "AWK" => {
            add(r, quote("\"", "\"", Backslash));
            // A regex literal; one line at most, so a misread division costs one line.
            add(r, quote("/", "/", Backslash));
        }
        // `#\"` and `\"` are characters; strings span lines (docstrings).
        "Lisp" | "Racket" | "Scheme" | "Clojure" | "ClojureScript" | "ClojureC" => {
            add(r, multiline(quote("\"", "\"", Backslash)));
            r.code_escapes = true;
        }
        "Protobuf" => {
            add(r, quote("\"", "\"", Backslash));
            add(r, quote("'", "'", Backslash));
            r.blocks.push(block_of("/*", "*/", false));
        }
        // No backslash escapes: a quote is doubled.
        "FortranModern" | "FortranLegacy" => {
            add(r, quote("\"", "\"", Verbatim));
            add(r, quote("'", "'", Verbatim));
        }
        "Pascal" => add(r, quote("'", "'", Verbatim)),
        "Assembly" => {
            add(r, quote("\"", "\"", Verbatim));
            add(r, quote("'", "'", Verbatim));
        }
        "Groovy" => {
            add(r, quote("'", "'", Backslash));
            add(r, multiline(quote("'''", "'''", Backslash)));
            add(r, multiline(quote("\"\"\"", "\"\"\"", Backslash)));
        }
        "Solidity" => add(r, quote("'", "'", Backslash)),
        "Prolog" => add(r, quote("'", "'", Backslash)),
        "PowerShell" => {
            // Its escape is a backtick, not a backslash (`"C:\dir"` is closed); here-strings
            // are `@"`..`"@` (the database has them reversed).
            r.quotes.retain(|q| q.open.len() == 1);
            for q in &mut r.quotes {
                q.escape = Verbatim;
            }
            add(r, multiline(quote("@\"", "\"@", Verbatim)));
            add(r, multiline(quote("@'", "'@", Verbatim)));
        }
        "OCaml" | "Coq" => {
            nest_all(r);
            add(r, multiline(quote("\"", "\"", Backslash)));
            add(r, char_literal());
        }
        "Dart" => {
            nest_all(r);
            for (o, c) in [("r'", "'"), ("r\"", "\"")] {
                add(
                    r,
                    Quote {
                        needs_boundary: true,
                        multiline: false,
                        ..quote(o, c, Verbatim)
                    },
                );
            }
        }
        "Odin" => {
            nest_all(r);
            add(r, multiline(quote("`", "`", Verbatim)));
        }
        "Nim" => r.blocks.push(block_of("#[", "]#", true)),
        "Puppet" => r.blocks.push(block_of("/*", "*/", false)),
        "CMake" => {
            for eq in ["", "=", "=="] {
                r.blocks
                    .push(block_of(&format!("#[{eq}["), &format!("]{eq}]"), false));
                add(
                    r,
                    multiline(quote(&format!("[{eq}["), &format!("]{eq}]"), Verbatim)),
                );
            }
        }
        "D" => {
            add(r, multiline(quote("`", "`", Verbatim)));
            add(
                r,
                Quote {
                    needs_boundary: true,
                    ..multiline(quote("r\"", "\"", Verbatim))
                },
            );
            if let Some(b) = r.blocks.iter_mut().find(|b| b.open == "/+") {
                b.nests = true;
            }
        }
        "Nix" => add(r, multiline(quote("''", "''", Verbatim))),
        "Jsonnet" => add(r, multiline(quote("|||", "|||", Verbatim))),
        "Hcl" => r.heredocs = true,
        "Tex" => r.code_escapes = true,
        // `"` is a comment where a command starts, a string elsewhere.
        "VimScript" => {
            r.line = vec![("\"".into(), CommentRule::CommandStartOrUnclosed(b"|"))];
            add(r, quote("\"", "\"", Backslash));
            add(r, quote("'", "'", Verbatim));
        }
        "Fish" => r.line = vec![("#".into(), CommentRule::WordStart)],
        "Tcl" => {
            r.line = vec![("#".into(), CommentRule::CommandStart(b";"))];
            r.quotes.retain(|q| q.open != "'");
        }
        // `REM` is a command, in any case; `::` a label that is never jumped to.
        "Batch" => {
            r.line = ["REM", "rem", "Rem", "::"]
                .into_iter()
                .map(|o| (o.to_string(), CommentRule::CommandStart(b"&(")))
                .collect();
            add(r, quote("\"", "\"", Verbatim));
        }
        // `(*)` is the multiplication operator.
        "FSharp" => {
            for b in &mut r.blocks {
                if b.open == "(*" {
                    b.not_before = b")";
                }
            }
            add(r, char_literal());
        }
        _ => {}
    }
}

fn leak_row(key: &str, e: &Value) -> &'static Language {
    let nests = e.get("nested").and_then(Value::as_bool).unwrap_or(false);
    let mut r = Row {
        line: texts(e.get("line_comment"))
            .into_iter()
            .map(|o| (o, CommentRule::Anywhere))
            .collect(),
        blocks: pairs(e.get("multi_line_comments"))
            .into_iter()
            .map(|(o, c)| block_of(&o, &c, nests))
            .chain(
                pairs(e.get("nested_comments"))
                    .into_iter()
                    .map(|(o, c)| block_of(&o, &c, true)),
            )
            .collect(),
        quotes: pairs(e.get("quotes"))
            .into_iter()
            .chain(pairs(e.get("doc_quotes")))
            .map(|(o, c)| quote(&o, &c, Escape::Backslash))
            .chain(
                pairs(e.get("verbatim_quotes"))
                    .into_iter()
                    .map(|(o, c)| quote(&o, &c, Escape::None)),
            )
            .collect(),
        heredocs: false,
        code_escapes: false,
    };
    correct(key, &mut r);
    // The lexer tries block comments, then line comments, then strings, each in order: a
    // longer opener first, and no opener that an earlier one of another kind shadows (where
    // the database gives `"` as both a comment and a quote, the comment wins and the quote
    // goes, unless a correction above says otherwise).
    r.blocks.sort_by_key(|b| std::cmp::Reverse(b.open.len()));
    r.blocks.dedup_by(|a, b| a.open == b.open);
    r.line.sort_by_key(|l| std::cmp::Reverse(l.0.len()));
    r.line.dedup_by(|a, b| a.0 == b.0);
    let blocks = &r.blocks;
    r.line
        .retain(|l| !blocks.iter().any(|b| l.0.starts_with(&b.open)));
    r.quotes.sort_by_key(|q| std::cmp::Reverse(q.open.len()));
    r.quotes.dedup_by(|a, b| a.open == b.open);
    let line = &r.line;
    r.quotes.retain(|q| {
        !blocks.iter().any(|b| q.open.starts_with(&b.open))
            && !line.iter().any(|l| {
                // A comment opener with a rule does not always open: the quote stays.
                matches!(l.1, CommentRule::Anywhere) && q.open.starts_with(l.0.as_str())
            })
    });

    let line_comments = leak(
        r.line
            .into_iter()
            .map(|(open, rule)| LineComment {
                open: leak_str(open),
                rule,
            })
            .collect(),
    );
    let block_comments = leak(
        r.blocks
            .into_iter()
            .map(|b| BlockComment {
                open: leak_str(b.open),
                close: leak_str(b.close),
                nests: b.nests,
                line_start: false,
                not_before: b.not_before,
            })
            .collect(),
    );
    let strings = leak(
        r.quotes
            .into_iter()
            .map(|q| StringLiteral {
                open: leak_str(q.open),
                close: leak_str(q.close),
                escape: q.escape,
                multiline: q.multiline,
                kind: q.kind,
                needs_boundary: q.needs_boundary,
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
        heredocs: r.heredocs,
        code_escapes: r.code_escapes,
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
        assert!(
            zig.strings
                .iter()
                .any(|s| s.open == "\"" && s.escape == Escape::Backslash)
        );
        let julia = db.by_extension("jl").expect("julia");
        assert!(julia.block_comments[0].nests && julia.block_comments[0].open == "#=");
        let lisp = db.by_extension("lisp").expect("common lisp");
        assert_eq!(lisp.display, "Common Lisp");
        assert_eq!(
            db.by_file_name("cmakelists.txt").map(|l| l.name),
            Some("cmake")
        );
        assert_eq!(db.by_interpreter("fish").map(|l| l.name), Some("fish"));
        // Corrected: Vim script's `"` is a comment where a command starts or when unclosed,
        // a string elsewhere (the database has it as both, so the string would be shadowed).
        let vim = db.by_extension("vim").expect("vim");
        assert!(matches!(
            vim.line_comments[0].rule,
            CommentRule::CommandStartOrUnclosed(_)
        ));
        assert!(vim.strings.iter().any(|s| s.open == "\""));
    }
}
