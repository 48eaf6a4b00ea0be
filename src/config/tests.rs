//! The configuration layers, their order and the errors that name the key.

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn layers_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(
        &file,
        "[llm]\nurl = \"http://file:1\"\nmodel = \"from-file\"\n[worker]\nconcurrency = 3\n",
    )
    .unwrap();
    let e = env(&[
        ("TARS_LLM__URL", "http://127.0.0.1:8080"),
        ("TARS_LLM__API", "openai"),
        ("TARS_QUEUE__LEASE_SECS", "9"),
    ]);
    let cfg = Config::load(
        Some(&file),
        &e,
        &Overrides {
            values: vec![("worker.concurrency", "7".to_string())],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(cfg.llm.url, "http://127.0.0.1:8080");
    assert_eq!(cfg.llm.model, "from-file");
    assert_eq!(cfg.llm.api, LlmApi::Openai);
    assert_eq!(cfg.queue.lease_secs, 9);
    assert_eq!(cfg.worker.concurrency, 7);
}

#[test]
fn other_tars_variables_are_not_configuration() {
    let e = env(&[("TARS_LOG", "debug"), ("TARS_CACHE", "/tmp/x")]);
    assert!(Config::load(None, &e, &Overrides::default()).is_ok());
}

#[test]
fn config_file_from_env_var() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.toml");
    std::fs::write(&file, "[redis]\nurl = \"redis://10.0.0.1:7000\"\n").unwrap();
    let e = env(&[(CONFIG_ENV, file.to_str().unwrap())]);
    let cfg = Config::load(None, &e, &Overrides::default()).unwrap();
    assert_eq!(cfg.redis.url, "redis://10.0.0.1:7000");
}

#[test]
fn bad_api_names_key_and_choices() {
    let e = env(&[("TARS_LLM__API", "claude")]);
    let err = Config::load(None, &e, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("claude"), "{err}");
    assert!(err.contains("ollama") && err.contains("openai"), "{err}");
    assert!(err.contains("llm.api"), "the key must be named: {err}");
}

#[test]
fn bad_number_names_key() {
    let e = env(&[("TARS_WORKER__CONCURRENCY", "0")]);
    let err = Config::load(None, &e, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("worker.concurrency"), "{err}");
    let e = env(&[("TARS_QUEUE__LEASE_SECS", "soon")]);
    let err = Config::load(None, &e, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("lease_secs"), "{err}");
}

#[test]
fn scan_globs_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tars.toml");
    std::fs::write(
        &file,
        "[scan]\ninclude = [\"src/**\"]\nexclude = [\"a/[b\"]\n",
    )
    .unwrap();
    let err = Config::load(Some(&file), &HashMap::new(), &Overrides::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("scan.exclude") && msg.contains("a/[b"),
        "{msg}"
    );
    std::fs::write(
        &file,
        "[scan]\ninclude = [\"src/**\"]\nexclude = [\"gen/\"]\n",
    )
    .unwrap();
    let cfg = Config::load(Some(&file), &HashMap::new(), &Overrides::default()).unwrap();
    assert_eq!(
        (cfg.scan.include, cfg.scan.exclude),
        (vec!["src/**".to_string()], vec!["gen/".to_string()])
    );
}

#[test]
fn flag_globs_are_merged_before_validation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tars.toml");
    std::fs::write(&file, "[scan]\ninclude = [\"src/**\"]\n").unwrap();
    let flags = Overrides {
        include: vec!["lib/**".into()],
        exclude: vec!["gen/".into()],
        ..Default::default()
    };
    let cfg = Config::load(Some(&file), &HashMap::new(), &flags).unwrap();
    assert_eq!(cfg.scan.include, ["src/**", "lib/**"]);
    assert_eq!(cfg.scan.exclude, ["gen/"]);
    // A bad glob from a flag is refused naming the flag.
    let flags = Overrides {
        exclude: vec!["a/[b".into()],
        ..Default::default()
    };
    let err = Config::load(None, &HashMap::new(), &flags).unwrap_err();
    assert!(matches!(err, ConfigError::Flag(_)), "{err:?}");
    let err = err.to_string();
    assert!(err.contains("--exclude") && err.contains("a/[b"), "{err}");
}

#[test]
fn unknown_key_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(&file, "[llm]\nmodle = \"x\"\n").unwrap();
    let err = Config::load(Some(&file), &HashMap::new(), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("modle"), "{err}");
}

#[test]
fn missing_named_file_is_an_error() {
    let err = Config::load(
        Some(Path::new("/nope/t.toml")),
        &HashMap::new(),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nope/t.toml"), "{err}");
}

#[test]
fn secrets_come_from_files_and_never_show_in_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("redis_password");
    let key = dir.path().join("api_key");
    std::fs::write(&pw, "hunter22\n").unwrap();
    std::fs::write(&key, "sk-local-123").unwrap();
    let e = env(&[
        ("TARS_REDIS__PASSWORD_FILE", pw.to_str().unwrap()),
        ("TARS_LLM__API_KEY_FILE", key.to_str().unwrap()),
        ("TARS_LLM__URL", "https://llm.example:8443"),
    ]);
    let cfg = Config::load(None, &e, &Overrides::default()).unwrap();
    assert_eq!(cfg.redis.password.as_ref().unwrap().expose(), "hunter22");
    assert_eq!(cfg.llm.api_key.as_ref().unwrap().expose(), "sk-local-123");
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("hunter22") && !shown.contains("sk-local"),
        "{shown}"
    );
}

#[test]
fn a_missing_or_empty_secret_file_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    for (path, why) in [(dir.path().join("nope"), "No such file"), (empty, "empty")] {
        let e = env(&[("TARS_REDIS__PASSWORD_FILE", path.to_str().unwrap())]);
        let err = Config::load(None, &e, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("redis.password_file") && err.contains(path.to_str().unwrap()),
            "{err}"
        );
        assert!(err.contains(why), "{err}");
    }
}

#[test]
fn credentials_over_plain_http_to_another_host_are_refused_unless_allowed() {
    let load = |pairs: &[(&str, &str)]| Config::load(None, &env(pairs), &Overrides::default());
    let err = load(&[
        ("TARS_LLM__URL", "http://llm.lan:8080"),
        ("TARS_LLM__API_KEY", "sk-1"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("llm.url") && err.contains("llm.allow_insecure_credentials"),
        "{err}"
    );
    // The password in the URL is refused the same way, and the message does not repeat it.
    let err = load(&[("TARS_LLM__URL", "http://bob:pw123@10.0.0.5:8080")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bob:***@10.0.0.5") && !err.contains("pw123"),
        "{err}"
    );
    // https, loopback, or an explicit opt-in are fine.
    for ok in [
        vec![
            ("TARS_LLM__URL", "https://llm.lan"),
            ("TARS_LLM__API_KEY", "k"),
        ],
        vec![
            ("TARS_LLM__URL", "http://127.0.0.1:8080"),
            ("TARS_LLM__API_KEY", "k"),
        ],
        vec![
            ("TARS_LLM__URL", "http://[::1]:8080"),
            ("TARS_LLM__API_KEY", "k"),
        ],
        vec![
            ("TARS_LLM__URL", "http://localhost:8080"),
            ("TARS_LLM__API_KEY", "k"),
        ],
        vec![
            ("TARS_LLM__URL", "http://llm.lan:8080"),
            ("TARS_LLM__API_KEY", "k"),
            ("TARS_LLM__ALLOW_INSECURE_CREDENTIALS", "true"),
        ],
        vec![("TARS_LLM__URL", "http://llm.lan:8080")],
    ] {
        load(&ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
}

#[test]
fn redis_tls_files_are_read_only_for_rediss_and_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    let key = dir.path().join("client.key");
    let not_pem = dir.path().join("notes.txt");
    // Parsed as PEM only: the X.509 inside is the TLS handshake's to check.
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::write(&not_pem, "hello\n").unwrap();
    let p = |f: &std::path::Path| f.to_str().unwrap().to_string();
    let load = |pairs: &[(&str, String)]| {
        let e: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Config::load(None, &e, &Overrides::default())
    };
    let tls = "rediss://redis.example:6380".to_string();

    let cfg = load(&[
        ("TARS_REDIS__URL", tls.clone()),
        ("TARS_REDIS__CA_FILE", p(&ca)),
        ("TARS_REDIS__CLIENT_CERT_FILE", p(&ca)),
        ("TARS_REDIS__CLIENT_KEY_FILE", p(&key)),
    ])
    .unwrap();
    let certs = cfg.redis.tls.as_ref().expect("TLS material read");
    assert!(certs.root_cert.is_some() && certs.client_tls.is_some());
    // The key never shows in a dump of the configuration.
    assert!(!format!("{cfg:?}").contains("AAAA"));
    assert!(
        load(&[("TARS_REDIS__URL", tls.clone())])
            .unwrap()
            .redis
            .tls
            .is_none()
    );

    let err = |pairs: &[(&str, String)]| load(pairs).unwrap_err().to_string();
    let e = err(&[("TARS_REDIS__CA_FILE", p(&ca))]);
    assert!(
        e.contains("redis.ca_file") && e.contains("rediss://"),
        "{e}"
    );
    let e = err(&[
        ("TARS_REDIS__URL", tls.clone()),
        ("TARS_REDIS__CA_FILE", p(&dir.path().join("nope"))),
    ]);
    assert!(
        e.contains("redis.ca_file") && e.contains("cannot be read"),
        "{e}"
    );
    let e = err(&[
        ("TARS_REDIS__URL", tls.clone()),
        ("TARS_REDIS__CA_FILE", p(&not_pem)),
    ]);
    assert!(
        e.contains("redis.ca_file") && e.contains("no PEM certificate"),
        "{e}"
    );
    let e = err(&[
        ("TARS_REDIS__URL", tls.clone()),
        ("TARS_REDIS__CLIENT_CERT_FILE", p(&ca)),
    ]);
    assert!(
        e.contains("redis.client_key_file") && e.contains("both or neither"),
        "{e}"
    );
    let e = err(&[
        ("TARS_REDIS__URL", tls),
        ("TARS_REDIS__CLIENT_CERT_FILE", p(&ca)),
        ("TARS_REDIS__CLIENT_KEY_FILE", p(&ca)),
    ]);
    assert!(
        e.contains("redis.client_key_file") && e.contains("no PEM private key"),
        "{e}"
    );
}

#[test]
fn cluster_urls_and_the_replica_wait_are_checked() {
    let load = |pairs: &[(&str, &str)]| Config::load(None, &env(pairs), &Overrides::default());
    let cfg = load(&[("TARS_REDIS__URL", "redis+cluster://a:7000,b:7001")]).unwrap();
    assert_eq!(
        cfg.redis.wait_replicas, None,
        "unset: 1 for a cluster, 0 otherwise"
    );
    assert_eq!(cfg.redis.wait_timeout_ms, 500);
    load(&[
        ("TARS_REDIS__URL", "rediss+cluster://a:7000"),
        ("TARS_REDIS__WAIT_REPLICAS", "0"),
    ])
    .unwrap();
    for (key, value, named) in [
        ("TARS_REDIS__URL", "cluster://a:7000", "redis+cluster://"),
        ("TARS_REDIS__WAIT_TIMEOUT_MS", "0", "redis.wait_timeout_ms"),
        ("TARS_REDIS__WAIT_TIMEOUT_MS", "5000", "from 1 to 2000"),
        ("TARS_REDIS__WAIT_REPLICAS", "99", "redis.wait_replicas"),
    ] {
        let err = load(&[(key, value)]).unwrap_err().to_string();
        assert!(err.contains(named), "{key}={value}: {err}");
    }
}
