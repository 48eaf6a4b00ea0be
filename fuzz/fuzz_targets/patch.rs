//! The answer parser and `make_patch`. The input is `sel`, the file, a 0 byte, the answer.
//! The task is the first TODO the scanner finds in the file (the language picked by `sel`);
//! without one, a task over a range of lines that `sel` picks, as a damaged task from Redis
//! could be (`TaskSpec::target` must refuse what does not fit).
//!
//! Invariants: the extracted code is made of the answer's lines; a patch applies with the
//! independent applier to exactly the file with the block replaced, changes nothing outside
//! the block, keeps the block's line ending and counts its lines right.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tars_fleet::patch::{apply_unified, extract_code_block, make_patch};
use tars_fleet::scan::{LANGUAGES, ScanOptions, scan_source};
use tars_fleet::task::TaskSpec;

const TAGS: [&str; 4] = ["TODO", "FIXME", "HACK", ""];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (file, answer) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let content = String::from_utf8_lossy(file);
    let answer = String::from_utf8_lossy(answer);

    if let Ok(code) = extract_code_block(&answer) {
        assert!(code.len() <= answer.len());
        for line in code.lines() {
            assert!(answer.contains(line), "{line:?} is not in the answer");
        }
    }

    let lang = &LANGUAGES[usize::from(sel & 0x1f) % LANGUAGES.len()];
    let path = format!(
        "src/f.{}",
        lang.extensions.first().copied().unwrap_or("txt")
    );
    let opts = ScanOptions {
        syntax_context: sel & 0x20 != 0,
        ..ScanOptions::default()
    };
    let spec = match scan_source(&path, &content, &opts).first() {
        Some(todo) => TaskSpec::from_todo(todo, &content),
        None => {
            // Lines `a..=b` (0-based) of the file, byte offsets possibly off by `sel`'s top bits.
            let starts: Vec<usize> = std::iter::once(0)
                .chain(content.match_indices('\n').map(|(i, _)| i + 1))
                .collect();
            let a = usize::from(sel >> 6) % starts.len();
            let b = (a + usize::from(sel & 7)) % starts.len();
            let start = starts[a];
            let end = starts.get(b + 1).copied().unwrap_or(content.len());
            TaskSpec {
                id: "0123456789abcdef".into(),
                path: path.clone(),
                line: a + 1,
                tag: TAGS[usize::from(sel >> 3) % TAGS.len()].into(),
                text: "fix this".into(),
                language: lang.name.into(),
                symbol: None,
                block_start: start,
                block_end: end,
                content_hash: String::new(),
                block_hash: String::new(),
            }
        }
    };
    let Ok(target) = spec.target(&content) else {
        return;
    };
    let original = target.block;
    let Ok(patch) = make_patch(&target, &answer) else {
        return;
    };
    let (s, e) = (spec.block_start, spec.block_end);
    let expected = format!("{}{}{}", &content[..s], patch.new_block, &content[e..]);
    let applied = apply_unified(&content, &patch.diff).expect("a made patch applies");
    assert_eq!(applied, expected, "the patch is not the edit");
    assert_ne!(patch.new_block, original);
    assert!(
        patch
            .diff
            .starts_with(&format!("diff --git a/{path} b/{path}\n"))
    );
    assert_eq!(patch.new_block.ends_with('\n'), original.ends_with('\n'));
    assert_eq!(
        patch.new_block.ends_with("\r\n"),
        original.ends_with("\r\n")
    );
    let body = patch.diff.lines().skip(4);
    let added = body.clone().filter(|l| l.starts_with('+')).count();
    let removed = body.filter(|l| l.starts_with('-')).count();
    assert_eq!((patch.lines_added, patch.lines_removed), (added, removed));
    assert!(patch.lines_added + patch.lines_removed > 0);
});
