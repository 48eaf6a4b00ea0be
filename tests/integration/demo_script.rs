//! `scripts/demo`, the README's first command: what it does with its output directory. (The
//! whole demo, minutes with the small model, is run by hand: see the README.)

use std::process::Command;

use crate::util::{clean_env, repo_root, run};

fn demo_into(out: &std::path::Path) -> crate::util::Output {
    let mut c = clean_env(Command::new(repo_root().join("scripts/demo")));
    c.env("TARS_DEMO_OUT", out);
    run(c)
}

#[test]
fn the_demo_deletes_no_output_directory_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("results");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "mine").unwrap();
    let out = demo_into(&mine).code_is(1);
    assert!(
        out.stderr.contains("not deleting it"),
        "{}",
        out.explain("a refusal")
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_dir(&mine).unwrap().count(),
        1,
        "nothing added"
    );

    // Nor one behind a symbolic link, nor a file.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&mine, &link).unwrap();
    demo_into(&link).code_is(1);
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    demo_into(&file).code_is(1);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 1);
}
