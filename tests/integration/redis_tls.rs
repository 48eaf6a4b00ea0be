//! Redis with TLS (`rediss://`, a private CA made here with `openssl`), passwords and ACL
//! users, against real redis-server processes: a run goes through, and a wrong credential, an
//! untrusted certificate or a missing permission is named as such (exit code 3), with no
//! password in the output.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::fake_llm::FakeLlm;
use crate::util::{Output, Proc, RedisServer, cmd, demo_repo, free_port, run, wait_until};

/// A throwaway PKI: a CA, and a server certificate it signed for 127.0.0.1 and localhost (and a
/// client certificate, for mutual TLS). EC P-256 keys: fast to make, and what rustls verifies.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-days",
                "2",
                "-subj",
                "/CN=tars test CA",
            ]
            .iter()
            .chain(&ec)
            .chain(&["-keyout", "ca.key", "-out", "ca.crt"])
            .copied()
            .collect::<Vec<_>>(),
        );
        for (name, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
                 extendedKeyUsage=serverAuth\n",
            ),
            (
                "client",
                "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
            ),
        ] {
            std::fs::write(d.join(format!("{name}.ext")), ext).unwrap();
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let crt = format!("{name}.crt");
            let extfile = format!("{name}.ext");
            let subj = format!("/CN={name}");
            openssl(
                d,
                &["req", "-new", "-subj", &subj]
                    .iter()
                    .chain(&ec)
                    .chain(&["-keyout", key.as_str(), "-out", csr.as_str()])
                    .copied()
                    .collect::<Vec<_>>(),
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-days",
                    "2",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-extfile",
                    &extfile,
                    "-out",
                    &crt,
                ],
            );
        }
        Pki { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A redis-server that speaks only TLS, on a free port, with `extra` arguments.
struct TlsRedis {
    port: u16,
    _dir: tempfile::TempDir,
    _proc: Proc,
}

impl TlsRedis {
    fn start(pki: &Pki, extra: &[&str]) -> TlsRedis {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let p = |n: &str| pki.path(n).to_string_lossy().into_owned();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(["--tls-cert-file", &p("server.crt")])
            .args(["--tls-key-file", &p("server.key")])
            .args(["--tls-ca-cert-file", &p("ca.crt")])
            .args(["--dir", &dir.path().to_string_lossy()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        // No TLS client here: the port accepting connections is readiness enough.
        wait_until("redis-server (TLS)", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        TlsRedis {
            port,
            _dir: dir,
            _proc: Proc {
                child,
                name: "redis-server".into(),
            },
        }
    }
}

/// A file holding `text`, in `dir`.
fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A worker and `dispatcher run --wait` on the demo repository with the scripted LLM, both
/// with `env`: every task must end done.
fn full_run(env: &[(&str, String)]) -> Output {
    let fake = FakeLlm::resolving();
    let repo = demo_repo();
    let out = tempfile::tempdir().unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut w = cmd("worker");
    w.env("TARS_LLM__API", "openai")
        .env("TARS_LLM__URL", fake.url())
        .env("TARS_LLM__MODEL", "m")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::from(log.reopen().unwrap()));
    let _worker = Proc {
        child: w.spawn().expect("spawn worker"),
        name: "worker".into(),
    };
    let mut d = cmd("dispatcher");
    d.envs(env.iter().map(|(k, v)| (k, v)))
        .args(["run", "--wait", "--timeout", "120", "--out"])
        .arg(out.path())
        .arg(repo.path());
    let r = run(d);
    let worker_log = std::fs::read_to_string(log.path()).unwrap_or_default();
    let r = r.note("worker log", worker_log).success();
    let patches = std::fs::read_dir(out.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "patch"))
        })
        .count();
    assert_eq!(patches, 6, "one patch per TODO of the demo");
    r
}

#[test]
fn rediss_with_a_private_ca_carries_a_run_from_dispatcher_to_worker() {
    let pki = Pki::new();
    let redis = TlsRedis::start(&pki, &["--tls-auth-clients", "no"]);
    full_run(&[
        (
            "TARS_REDIS__URL",
            format!("rediss://127.0.0.1:{}", redis.port),
        ),
        (
            "TARS_REDIS__CA_FILE",
            pki.path("ca.crt").display().to_string(),
        ),
    ]);
}

#[test]
fn rediss_with_a_client_certificate_passes_a_server_that_verifies_clients() {
    let pki = Pki::new();
    let redis = TlsRedis::start(&pki, &["--tls-auth-clients", "yes"]);
    let url = format!("rediss://localhost:{}", redis.port);
    let repo = demo_repo();
    let enqueue = |with_cert: bool| {
        let mut d = cmd("dispatcher");
        d.env("TARS_REDIS__URL", &url)
            .env("TARS_REDIS__CA_FILE", pki.path("ca.crt"))
            .args(["run"])
            .arg(repo.path());
        if with_cert {
            d.env("TARS_REDIS__CLIENT_CERT_FILE", pki.path("client.crt"))
                .env("TARS_REDIS__CLIENT_KEY_FILE", pki.path("client.key"));
        }
        run(d)
    };
    enqueue(true).success();
    // Without one the server ends the handshake: not reachable, not a configuration error.
    let out = enqueue(false).failure();
    assert!(out.stderr.contains(&url), "{}", out.stderr);
}

#[test]
fn rediss_without_the_ca_file_says_the_certificate_is_not_trusted() {
    let pki = Pki::new();
    let redis = TlsRedis::start(&pki, &["--tls-auth-clients", "no"]);
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    for bin in ["dispatcher", "worker"] {
        let mut c = cmd(bin);
        c.env("TARS_REDIS__URL", &url);
        if bin == "dispatcher" {
            c.arg("status");
        }
        let out = run(c).code_is(3);
        for part in ["not trusted", "redis.ca_file", &url] {
            assert!(out.stderr.contains(part), "{part:?}:\n{}", out.stderr);
        }
        assert!(!out.stderr.contains("Start one"), "{}", out.stderr);
    }
}

#[test]
fn a_wrong_password_is_named_as_such_with_exit_code_3_and_never_printed() {
    let pki = Pki::new();
    let redis = TlsRedis::start(
        &pki,
        &["--tls-auth-clients", "no", "--requirepass", "right-pw-4711"],
    );
    let secrets = tempfile::tempdir().unwrap();
    let wrong = "wrong-pw-0815";
    let pw_file = file(secrets.path(), "redis_password", &format!("{wrong}\n"));
    let plain = format!("rediss://127.0.0.1:{}", redis.port);
    let in_url = format!("rediss://:{wrong}@127.0.0.1:{}", redis.port);
    let shown = format!("rediss://:***@127.0.0.1:{}", redis.port);
    let cases: [(&str, &str, Option<&Path>, &str); 4] = [
        ("dispatcher", &in_url, None, &shown),
        ("worker", &in_url, None, &shown),
        ("dispatcher", &plain, Some(&pw_file), &plain),
        // A user name that does not exist, with the right password.
        (
            "dispatcher",
            &format!("rediss://nobody:right-pw-4711@127.0.0.1:{}", redis.port),
            None,
            "",
        ),
    ];
    for (bin, url, file, shown) in cases {
        let mut c = cmd(bin);
        c.env("TARS_REDIS__URL", url)
            .env("TARS_REDIS__CA_FILE", pki.path("ca.crt"))
            .env("TARS_LLM__URL", "http://127.0.0.1:9");
        if let Some(f) = file {
            c.env("TARS_REDIS__PASSWORD_FILE", f);
        }
        if bin == "dispatcher" {
            c.arg("status");
        }
        let out = run(c).code_is(3);
        for part in ["refused the credentials", "redis.password_file", shown] {
            assert!(out.stderr.contains(part), "{part:?}:\n{}", out.explain(""));
        }
        for secret in [wrong, "right-pw-4711"] {
            assert!(
                !out.stderr.contains(secret) && !out.stdout.contains(secret),
                "{}",
                out.explain("a password was printed")
            );
        }
        assert!(!out.stderr.contains("Start one"), "{}", out.stderr);
    }
    // No password at all: NOAUTH, the same advice.
    let mut c = cmd("dispatcher");
    c.env("TARS_REDIS__URL", &plain)
        .env("TARS_REDIS__CA_FILE", pki.path("ca.crt"))
        .arg("status");
    let out = run(c).code_is(3);
    assert!(out.stderr.contains("NOAUTH"), "{}", out.stderr);
}

#[test]
fn redis_password_file_works_against_requirepass() {
    let redis = RedisServer::start();
    let pw = "file-pw-31337";
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(pw)
        .query(&mut redis.conn())
        .unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let pw_file = file(secrets.path(), "redis_password", &format!("{pw}\n"));
    let repo = demo_repo();
    // The default user named in the URL, the password from the file.
    for url in [
        redis.url(),
        format!("redis://default@127.0.0.1:{}", redis.port),
    ] {
        let mut d = cmd("dispatcher");
        d.env("TARS_REDIS__URL", &url)
            .env("TARS_REDIS__PASSWORD_FILE", &pw_file)
            .arg("run")
            .arg(repo.path());
        let out = run(d).success();
        assert!(!out.stderr.contains(pw) && !out.stdout.contains(pw));
    }
}

/// The ACL line the README documents for tars, with `password` in place of its placeholder.
pub(crate) fn documented_acl(password: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(crate::util::repo_root().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.trim_start().starts_with("ACL SETUSER tars "))
        .expect("README documents `ACL SETUSER tars ...`");
    line.split_whitespace()
        .skip(2)
        .map(|w| {
            if w == ">CHANGE-ME" {
                format!(">{password}")
            } else {
                w.to_string()
            }
        })
        .collect()
}

#[test]
fn an_acl_user_with_only_the_documented_commands_completes_a_run() {
    let redis = RedisServer::start();
    let mut admin = redis.conn();
    let acl = documented_acl("acl-pw-2718");
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&acl)
        .query(&mut admin)
        .unwrap();
    // Nothing else may connect without a password: the run can only be the ACL user's.
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg("off")
        .query(&mut admin)
        .unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let pw_file = file(secrets.path(), "redis_password", "acl-pw-2718\n");
    let env = [
        (
            "TARS_REDIS__URL",
            format!("redis://tars@127.0.0.1:{}", redis.port),
        ),
        ("TARS_REDIS__PASSWORD_FILE", pw_file.display().to_string()),
    ];
    let run_id = full_run(&env).stdout.trim().to_string();
    // The dispatcher's other commands on that run, too.
    let out = tempfile::tempdir().unwrap();
    let out = out.path().to_string_lossy().into_owned();
    let id = run_id.as_str();
    for args in [
        &["status"][..],
        &["status", "--json", id],
        &["results", id, "--out", &out],
        &["retry", id],
        &["cancel", id],
        &["purge", id],
    ] {
        let mut c = cmd("dispatcher");
        c.envs(env.iter().map(|(k, v)| (k, v))).args(args);
        run(c).success();
    }
}

#[test]
fn a_missing_acl_permission_names_the_command() {
    let redis = RedisServer::start();
    let mut admin = redis.conn();
    // The documented user less EVALSHA: every state change is a script.
    let mut acl = documented_acl("acl-pw-2718");
    acl.push("-evalsha".into());
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&acl)
        .query(&mut admin)
        .unwrap();
    let repo = demo_repo();
    let mut d = cmd("dispatcher");
    d.env(
        "TARS_REDIS__URL",
        format!("redis://tars:acl-pw-2718@127.0.0.1:{}", redis.port),
    )
    .arg("run")
    .arg(repo.path());
    let out = run(d).code_is(3);
    for part in ["ACL user lacks a permission", "`evalsha`"] {
        assert!(out.stderr.contains(part), "{part:?}:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("acl-pw-2718"), "{}", out.stderr);
}
