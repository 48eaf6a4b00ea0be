//! One binary, two programs: the image ships `dispatcher` once, with `worker` a symlink to it.

use std::process::Command;

use crate::util::{bin, clean_env};

/// `dispatcher` under the name `worker` is the worker (its flags, its health check), and under
/// its own name stays the dispatcher.
#[test]
fn the_dispatcher_binary_called_worker_is_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let worker = dir.path().join("worker");
    std::os::unix::fs::symlink(bin("dispatcher"), &worker).unwrap();

    let help = clean_env(Command::new(&worker))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "{text}");
    assert!(
        text.contains("Turn queued TODO tasks into patches") && text.contains("--role"),
        "{text}"
    );

    // The HEALTHCHECK command: no heartbeat file, unhealthy.
    let health = clean_env(Command::new(&worker))
        .arg("--health")
        .env("TARS_HEALTH_FILE", dir.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(health.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&health.stderr).contains("unhealthy"),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );

    let own = clean_env(Command::new(bin("dispatcher")))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&own.stdout);
    assert!(text.contains("land") && !text.contains("--role"), "{text}");
}
