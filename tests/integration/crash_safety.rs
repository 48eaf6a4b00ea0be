//! Issue 10, item 7: what the process is given (its environment, a stdout or stderr whose
//! reader went away) cannot make either binary panic.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};

use crate::util::{Output, RedisServer, cmd, command_line, demo_repo, free_port, run};

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

/// Which of the command's streams has a reader that goes away.
#[derive(Clone, Copy)]
enum Closed {
    /// `cmd | true`: closed before anything is read.
    Stdout,
    /// `cmd | head -1`: one line read, then closed.
    StdoutAfterOneLine,
    /// `cmd 2>&1 >/dev/null | true`.
    Stderr,
}

/// Runs `c` with one stream's reader gone, and what it printed on the other.
#[track_caller]
fn run_closed(mut c: Command, closed: Closed) -> Output {
    let command = command_line(&c);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {command}: {e}"));
    let mut stdout = String::new();
    let mut stderr = String::new();
    let out_pipe = child.stdout.take().expect("stdout");
    let err_pipe = child.stderr.take().expect("stderr");
    match closed {
        Closed::Stdout => {
            drop(out_pipe);
            BufReader::new(err_pipe)
                .read_to_string(&mut stderr)
                .expect("stderr");
        }
        Closed::StdoutAfterOneLine => {
            let mut r = BufReader::new(out_pipe);
            r.read_line(&mut stdout).expect("stdout");
            drop(r);
            BufReader::new(err_pipe)
                .read_to_string(&mut stderr)
                .expect("stderr");
        }
        Closed::Stderr => {
            drop(err_pipe);
            BufReader::new(out_pipe)
                .read_to_string(&mut stdout)
                .expect("stdout");
        }
    }
    let status = child.wait().expect("wait");
    Output {
        command,
        status,
        code: status.code(),
        stdout,
        stderr,
        notes: Vec::new(),
    }
}

#[test]
fn a_reader_that_goes_away_ends_the_output_not_the_program() {
    let redis = RedisServer::start();
    let repo = demo_repo();
    // More TODOs than a pipe holds (64 KiB), so `scan` is still writing when the reader leaves.
    let many: String = (0..3000)
        .map(|i| format!("def f{i}():\n    # TODO: item number {i} of many\n    pass\n"))
        .collect();
    std::fs::write(repo.path().join("many.py"), many).unwrap();
    let dispatcher = |args: &[&str]| {
        let mut c = cmd("dispatcher");
        c.args(["--redis-url", &redis.url()]).args(args);
        c
    };
    let repo_arg = repo.path().to_str().unwrap();

    // `run | true`: the run is enqueued before the run id is printed; it finishes normally.
    let out = no_panic(run_closed(dispatcher(&["run", repo_arg]), Closed::Stdout)).success();
    assert!(out.stderr.contains("3006 tasks enqueued"), "{}", out.stderr);
    let status = run(dispatcher(&["status", "--json"])).success();
    let st: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    assert_eq!(st["total"], 3006, "{}", status.stdout);

    // `run --wait | true` goes on waiting (no worker here: until its timeout).
    let out = no_panic(run_closed(
        dispatcher(&["run", "--wait", "--timeout", "1", repo_arg]),
        Closed::Stdout,
    ))
    .code_is(6);
    assert!(out.stderr.contains("tasks enqueued"), "{}", out.stderr);

    for (args, closed) in [
        (&["status"][..], Closed::Stdout),
        (&["status", "--json"], Closed::Stdout),
        (&["status", "--json"], Closed::StdoutAfterOneLine),
        (&["scan", repo_arg], Closed::StdoutAfterOneLine),
        (&["scan", "--json", repo_arg], Closed::StdoutAfterOneLine),
        (&["scan", repo_arg], Closed::Stdout),
        (&["scan", repo_arg], Closed::Stderr),
        (&["status"], Closed::Stderr),
    ] {
        let out = no_panic(run_closed(dispatcher(args), closed)).success();
        if let Closed::StdoutAfterOneLine = closed {
            assert!(!out.stdout.is_empty(), "{}", out.explain("one line read"));
        }
    }
}
