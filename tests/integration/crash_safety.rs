//! Issue 10, item 7: what the process is given (its environment) cannot make either binary
//! panic.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::util::{Output, cmd, demo_repo, free_port, run};

fn raw(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

#[track_caller]
fn no_panic(out: Output) -> Output {
    if out.stderr.contains("panicked") || out.code == Some(101) {
        panic!("{}", out.explain("expected no panic"));
    }
    out
}

#[test]
fn environment_variables_that_are_not_utf8_are_ignored_unless_they_are_ours() {
    let repo = demo_repo();
    // Someone else's variable, and a name that is not UTF-8 either: none of our business.
    let mut c = cmd("dispatcher");
    c.env("JUNK", raw(b"caf\xe9"))
        .env(raw(b"JUNK\xff"), "1")
        .args(["scan"])
        .arg(repo.path());
    let out = no_panic(run(c)).success();
    assert_eq!(out.stdout.lines().count(), 6, "{}", out.stdout);

    // The worker gets as far as Redis (none listens there): the unavailable code, no panic.
    let mut c = cmd("worker");
    c.env("JUNK", raw(b"\xff\xfe")).env(
        "TARS_REDIS__URL",
        format!("redis://127.0.0.1:{}", free_port()),
    );
    no_panic(run(c)).code_is(4);

    // One of ours that cannot be read: a configuration error that names it, in both binaries.
    for (name, value) in [
        ("TARS_LLM__MODEL", &b"qwen\xff"[..]),
        ("TARS_REDIS__URL", &b"redis://\xff"[..]),
        ("TARS_LOG", &b"debug\xff"[..]),
    ] {
        for bin in ["dispatcher", "worker"] {
            let mut c = cmd(bin);
            c.env(name, raw(value));
            if bin == "dispatcher" {
                c.arg("status");
            }
            let out = no_panic(run(c)).code_is(3);
            assert!(
                out.stderr.contains(name) && out.stderr.contains("UTF-8"),
                "{}",
                out.explain("the variable named")
            );
        }
    }
    // A name of ours that is not UTF-8 itself.
    let mut c = cmd("dispatcher");
    c.env(raw(b"TARS_\xff__URL"), "x").arg("status");
    let out = no_panic(run(c)).code_is(3);
    assert!(out.stderr.contains(r"TARS_\xFF__URL"), "{}", out.stderr);
}
