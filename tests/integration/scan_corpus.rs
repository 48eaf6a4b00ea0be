//! Ground truth for the scanner: tests/fixtures/scan-corpus holds files in many languages full
//! of traps, and scan-corpus.expected lists every TODO a person would list, one per line as
//! `path:line:TAG:text`. Precision and recall must both be 100%.

use std::collections::BTreeSet;

use crate::util::{cmd, repo_root, run};

#[test]
fn scan_corpus_precision_and_recall_are_total() {
    let fixtures = repo_root().join("tests/fixtures");
    let expected_file = fixtures.join("scan-corpus.expected");
    let expected: BTreeSet<String> = std::fs::read_to_string(&expected_file)
        .unwrap_or_else(|e| panic!("{}: {e}", expected_file.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert!(expected.len() >= 200, "the corpus lost its expectations");

    let mut c = cmd("dispatcher");
    c.args(["scan", "--json"]).arg(fixtures.join("scan-corpus"));
    let out = run(c).success();
    let mut found = BTreeSet::new();
    let mut languages = BTreeSet::new();
    for line in out.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
        languages.insert(v["language"].as_str().unwrap_or("").to_string());
        found.insert(format!(
            "{}:{}:{}:{}",
            v["path"].as_str().unwrap_or(""),
            v["line"],
            v["tag"].as_str().unwrap_or(""),
            v["text"].as_str().unwrap_or("")
        ));
    }
    let misses: Vec<&String> = expected.difference(&found).collect();
    let false_hits: Vec<&String> = found.difference(&expected).collect();
    let hits = found.intersection(&expected).count();
    let precision = hits as f64 / found.len().max(1) as f64;
    let recall = hits as f64 / expected.len() as f64;
    assert!(
        misses.is_empty() && false_hits.is_empty(),
        "precision {:.1}%, recall {:.1}%\nmissed:\n  {}\nfalse hits:\n  {}",
        precision * 100.0,
        recall * 100.0,
        misses
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        false_hits
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    // Every language the issue named (tests/fixtures/scan-corpus: zig, elixir, erlang, r,
    // julia, hcl, powershell, ocaml, nim, dart, clojure, lisp, fortranmodern, matlab, tex,
    // vimscript, assembly) and more: 60 at least.
    assert!(
        languages.len() >= 60,
        "{} languages: {languages:?}",
        languages.len()
    );
}

#[test]
fn scan_corpus_crlf_and_bom_fixtures_are_byte_exact() {
    let corpus = repo_root().join("tests/fixtures/scan-corpus");
    let crlf = std::fs::read(corpus.join("crlf/win.rs")).expect("crlf fixture");
    assert!(
        crlf.windows(2).filter(|w| w == b"\r\n").count() >= 5,
        "crlf/win.rs lost its CRLF line ends (tests/fixtures/.gitattributes keeps them)"
    );
    let bom = std::fs::read(corpus.join("bom/bom.py")).expect("bom fixture");
    assert!(bom.starts_with(b"\xef\xbb\xbf"), "bom/bom.py lost its BOM");
}
