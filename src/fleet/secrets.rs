//! Secrets for worker containers. An environment value is shown by `docker inspect` to anyone
//! who can reach the engine, stored in the container's config on disk and copied by `fleet
//! scale`; so no secret is ever one. The Redis password (from `TARS_REDIS__URL`'s userinfo or
//! `TARS_REDIS__PASSWORD_FILE`) and the LLM API key (`TARS_LLM__API_KEY` or
//! `TARS_LLM__API_KEY_FILE`) are written into files in a private directory of the dispatcher
//! and bind-mounted read-only into the workers at `/run/secrets/`, where the workers' `*_FILE`
//! variables point. Any other variable whose name says it holds a secret is refused.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::secret::Secret;

use super::FleetError;

/// Where the secret files appear inside a worker.
pub const MOUNT_DIR: &str = "/run/secrets";
/// Each `fleet up` that has secrets to pass writes them into a new directory of this name under
/// [`base_dir`]; `fleet down` removes it.
pub const DIR_PREFIX: &str = "secrets-";

const REDIS_URL: &str = "TARS_REDIS__URL";
const REDIS_PASSWORD_FILE: &str = "TARS_REDIS__PASSWORD_FILE";
const LLM_URL: &str = "TARS_LLM__URL";
const LLM_API_KEY: &str = "TARS_LLM__API_KEY";
const LLM_API_KEY_FILE: &str = "TARS_LLM__API_KEY_FILE";

/// A secret a worker gets as a file: `/run/secrets/<file>`, named by the variable `env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSecret {
    pub file: &'static str,
    pub env: &'static str,
    pub value: Secret,
}

/// The workers' environment (no secret in it) and the secrets they get as files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerEnv {
    pub env: Vec<String>,
    pub secrets: Vec<WorkerSecret>,
}

/// Whether a variable's name says that it holds a secret: one of its `_`-separated words is
/// `PASSWORD`, `PASSWD`, `PASSPHRASE`, `TOKEN`, `SECRET` or `APIKEY`, or two are `API KEY`,
/// `ACCESS KEY` or `PRIVATE KEY` (so `GITHUB_TOKEN` is one, `TARS_LLM__MAX_ANSWER_TOKENS` and
/// `TARS_LLM__ALLOW_INSECURE_CREDENTIALS` are not). A `*_FILE` variable names a file instead.
pub fn names_a_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    if n.ends_with("_FILE") {
        return false;
    }
    let words: Vec<&str> = n.split('_').filter(|w| !w.is_empty()).collect();
    words.iter().any(|w| {
        matches!(
            *w,
            "PASSWORD" | "PASSWD" | "PASSPHRASE" | "TOKEN" | "SECRET" | "APIKEY"
        )
    }) || words
        .windows(2)
        .any(|p| matches!(p, ["API" | "ACCESS" | "PRIVATE", "KEY"]))
}

/// The workers' environment from `TARS_<SECTION>__<KEY>` variables of `shell` (the
/// dispatcher's environment; a `--env` of the same key wins) and the `--env` pairs, with every
/// secret taken out into a [`WorkerSecret`]. `read` reads a `*_FILE` variable's file on this
/// machine (the path means nothing inside a container). A password file wins over a password
/// in the URL, and an API key file over an API key, as in the configuration.
pub fn worker_env(
    shell: impl IntoIterator<Item = (String, String)>,
    flags: Vec<String>,
    read: &dyn Fn(&'static str, &Path) -> Result<Secret, FleetError>,
) -> Result<WorkerEnv, FleetError> {
    let flag_pairs: Vec<(String, String)> = flags
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect();
    let mut shell: Vec<(String, String)> = shell
        .into_iter()
        .filter(|(k, _)| k.strip_prefix("TARS_").is_some_and(|r| r.contains("__")))
        .filter(|(k, _)| !flag_pairs.iter().any(|(f, _)| f == k))
        .collect();
    shell.sort();

    let mut out = WorkerEnv::default();
    let (mut url_password, mut password_file, mut api_key, mut api_key_file) =
        (None, None, None, None);
    for (k, v) in shell.into_iter().chain(flag_pairs) {
        match k.as_str() {
            REDIS_URL => {
                let (url, password) = split_password(&v);
                url_password = password;
                out.env.push(format!("{k}={url}"));
            }
            REDIS_PASSWORD_FILE => {
                password_file = non_empty(&v)
                    .map(|p| read(REDIS_PASSWORD_FILE, Path::new(p)))
                    .transpose()?;
            }
            LLM_API_KEY => api_key = non_empty(&v).map(Secret::new),
            LLM_API_KEY_FILE => {
                api_key_file = non_empty(&v)
                    .map(|p| read(LLM_API_KEY_FILE, Path::new(p)))
                    .transpose()?;
            }
            LLM_URL if crate::secret::url_password(&v).is_some() => {
                return Err(FleetError::SecretInEnv {
                    name: k,
                    hint: "the URL carries credentials, which would be part of every worker's \
                           environment: give the key as TARS_LLM__API_KEY_FILE (a file on this \
                           machine) or TARS_LLM__API_KEY, which fleet up passes as a file"
                        .into(),
                });
            }
            _ if names_a_secret(&k) && !v.is_empty() => {
                return Err(FleetError::SecretInEnv {
                    name: k,
                    hint: "its name says it holds a secret, and fleet up passes no secret as \
                           an environment value (`docker inspect` shows those): the Redis \
                           password goes in TARS_REDIS__URL or TARS_REDIS__PASSWORD_FILE, the \
                           LLM's key in TARS_LLM__API_KEY or TARS_LLM__API_KEY_FILE, and fleet \
                           up mounts them into the workers as files"
                        .into(),
                });
            }
            _ if names_a_secret(&k) => {}
            _ => out.env.push(format!("{k}={v}")),
        }
    }
    if let Some(value) = password_file.or(url_password) {
        out.secrets.push(WorkerSecret {
            file: "redis_password",
            env: REDIS_PASSWORD_FILE,
            value,
        });
    }
    if let Some(value) = api_key_file.or(api_key) {
        out.secrets.push(WorkerSecret {
            file: "llm_api_key",
            env: LLM_API_KEY_FILE,
            value,
        });
    }
    for s in &out.secrets {
        out.env.push(format!("{}={MOUNT_DIR}/{}", s.env, s.file));
    }
    Ok(out)
}

/// The dispatcher's effective uid: the owner of `/proc/self` (no `unsafe` for `geteuid`).
fn euid() -> u32 {
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

fn non_empty(v: &str) -> Option<&str> {
    Some(v).filter(|v| !v.is_empty())
}

/// `url` without the password of its userinfo (the user name stays: an ACL user is no
/// secret), and the password, percent-decoded as the Redis client decodes it. Read from the
/// text, not through a URL parser: a cluster URL lists several hosts
/// (`redis+cluster://:pw@a:7000,b:7001`), which no URL parser takes, and must lose its password
/// all the same.
pub fn split_password(url: &str) -> (String, Option<Secret>) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_string(), None);
    };
    let start = scheme_end + 3;
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return (url.to_string(), None);
    };
    let userinfo = &authority[..at];
    let Some((user, password)) = userinfo.split_once(':') else {
        return (url.to_string(), None);
    };
    if password.is_empty() {
        return (url.to_string(), None);
    }
    // No user left: no userinfo at all (`redis://host`), as the URL parser wrote it.
    let after = if user.is_empty() {
        &rest[at + 1..]
    } else {
        &rest[at..]
    };
    (
        format!("{}{user}{after}", &url[..start]),
        Some(Secret::new(percent_decode(password))),
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory under which `fleet up` keeps the files it mounts: `/run/tars-fleet` for root
/// (a tmpfs: never on disk), else `$XDG_RUNTIME_DIR/tars-fleet`, else `tars-fleet-<uid>` in the
/// temp directory. It must be a real directory of ours that nobody else can enter.
pub fn base_dir() -> PathBuf {
    let uid = euid();
    if uid == 0 {
        return PathBuf::from("/run/tars-fleet");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("tars-fleet"),
        _ => std::env::temp_dir().join(format!("tars-fleet-{uid}")),
    }
}

fn store_error(path: &Path, detail: impl std::fmt::Display) -> FleetError {
    FleetError::SecretStore {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

/// Makes `base` (mode 0700) if missing; refuses one that is a symlink, not ours, or open to
/// others, since anyone who could enter it could read the secrets.
fn private_base(base: &Path) -> Result<(), FleetError> {
    match std::fs::DirBuilder::new().mode(0o700).create(base) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(store_error(base, e)),
    }
    let m = std::fs::symlink_metadata(base).map_err(|e| store_error(base, e))?;
    let me = euid();
    if !m.is_dir() || m.uid() != me || m.mode() & 0o077 != 0 {
        return Err(store_error(
            base,
            format!(
                "not a private directory of uid {me} (a directory of ours with mode 0700): \
                 remove it or fix its owner and mode"
            ),
        ));
    }
    Ok(())
}

/// The files written for one `fleet up`: `(path on this machine, path in the container)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub dir: PathBuf,
    pub mounts: Vec<(PathBuf, String)>,
}

/// Writes `secrets` into a new private directory under `base`, each file created exclusively
/// (never through an existing path or a symlink). `user` is the image's `uid[:gid]`: when the
/// dispatcher runs as root, or as that same uid, a file is owned by it with mode 0400, so that
/// only the worker's user reads it; otherwise (a non-root dispatcher and another container
/// user) it is mode 0444 and the private directory is what keeps other users of this machine
/// out.
pub fn write(
    base: &Path,
    secrets: &[WorkerSecret],
    user: Option<(u32, Option<u32>)>,
) -> Result<Written, FleetError> {
    private_base(base)?;
    let dir = tempfile::Builder::new()
        .prefix(DIR_PREFIX)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(base)
        .map_err(|e| store_error(base, e))?
        .keep();
    let written = (|| {
        let me = euid();
        let mut mounts = Vec::new();
        for s in secrets {
            let path = dir.join(s.file);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o400)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
                .map_err(|e| store_error(&path, e))?;
            f.write_all(s.value.expose().as_bytes())
                .map_err(|e| store_error(&path, e))?;
            match user {
                Some((uid, _)) if uid == me => {}
                Some((uid, gid)) if me == 0 => std::os::unix::fs::fchown(&f, Some(uid), gid)
                    .map_err(|e| store_error(&path, e))?,
                _ => f
                    .set_permissions(std::fs::Permissions::from_mode(0o444))
                    .map_err(|e| store_error(&path, e))?,
            }
            f.sync_all().map_err(|e| store_error(&path, e))?;
            mounts.push((path, format!("{MOUNT_DIR}/{}", s.file)));
        }
        Ok(mounts)
    })();
    match written {
        Ok(mounts) => Ok(Written { dir, mounts }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// An image's `User` as `uid[:gid]` when both are numbers (a name cannot be resolved from
/// outside the image); `Some((0, None))` for an image that runs as root.
pub fn numeric_user(user: &str) -> Option<(u32, Option<u32>)> {
    if user.is_empty() {
        return Some((0, None));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let uid = u.parse().ok()?;
    let gid = match g {
        Some(g) => Some(g.parse().ok()?),
        None => None,
    };
    Some((uid, gid))
}

/// Removes a directory that [`write`] made, given the path of one of its files: only one
/// named `secrets-*` right under [`base_dir`], so a container's other mounts are never touched.
pub fn remove_for(source: &Path, base: &Path) {
    let Some(dir) = source.parent() else { return };
    let ours = dir.parent() == Some(base)
        && dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
    if ours {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_files(_: &'static str, p: &Path) -> Result<Secret, FleetError> {
        panic!("no file expected, asked for {}", p.display())
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_url_password_becomes_a_file_and_leaves_the_environment() {
        let shell = env(&[
            ("TARS_REDIS__URL", "redis://:hunter22@127.0.0.1:6379"),
            ("TARS_LLM__API_KEY", "sk-live-1"),
            ("TARS_LLM__MODEL", "m"),
            ("HOME", "/root"),
        ]);
        let flags = vec!["TARS_REDIS__URL=redis://tars:p%40ss@redis:6379/0".to_string()];
        let w = worker_env(shell, flags, &no_files).unwrap();
        let all = w.env.join("\n");
        for s in ["hunter22", "p%40ss", "p@ss", "sk-live-1", "HOME"] {
            assert!(!all.contains(s), "{s} in {all}");
        }
        assert!(
            w.env
                .contains(&"TARS_REDIS__URL=redis://tars@redis:6379/0".to_string())
        );
        assert!(w.env.contains(&"TARS_LLM__MODEL=m".to_string()));
        assert!(
            w.env
                .contains(&"TARS_REDIS__PASSWORD_FILE=/run/secrets/redis_password".to_string())
        );
        assert!(
            w.env
                .contains(&"TARS_LLM__API_KEY_FILE=/run/secrets/llm_api_key".to_string())
        );
        assert_eq!(w.secrets.len(), 2);
        assert_eq!(
            w.secrets[0].value.expose(),
            "p@ss",
            "decoded, from the flag"
        );
        assert_eq!(w.secrets[1].value.expose(), "sk-live-1");
    }

    #[test]
    fn a_cluster_urls_password_leaves_it_too() {
        for (url, stripped, password) in [
            (
                "redis+cluster://:pw%2F1@a:7000,b:7001",
                "redis+cluster://a:7000,b:7001",
                "pw/1",
            ),
            (
                "rediss+cluster://tars:p@ss@[::1]:7000,c:7002/",
                "rediss+cluster://tars@[::1]:7000,c:7002/",
                "p@ss",
            ),
        ] {
            let (u, p) = split_password(url);
            assert_eq!(u, stripped);
            assert_eq!(p.map(|p| p.expose().to_string()).as_deref(), Some(password));
        }
        for plain in ["redis://a:1", "redis://tars@a:1", "unix:///run/redis.sock"] {
            assert_eq!(split_password(plain), (plain.to_string(), None));
        }
    }

    #[test]
    fn password_files_of_this_machine_are_read_and_win() {
        let read = |key: &'static str, p: &Path| -> Result<Secret, FleetError> {
            Ok(Secret::new(format!("{key}:{}", p.display())))
        };
        let shell = env(&[
            ("TARS_REDIS__PASSWORD_FILE", "/home/me/pw"),
            ("TARS_LLM__API_KEY_FILE", "/home/me/key"),
            ("TARS_LLM__API_KEY", "inline"),
        ]);
        let flags = vec!["TARS_REDIS__URL=redis://:inurl@redis:6379".to_string()];
        let w = worker_env(shell, flags, &read).unwrap();
        assert_eq!(
            w.secrets[0].value.expose(),
            "TARS_REDIS__PASSWORD_FILE:/home/me/pw"
        );
        assert_eq!(
            w.secrets[1].value.expose(),
            "TARS_LLM__API_KEY_FILE:/home/me/key"
        );
        let all = w.env.join("\n");
        assert!(!all.contains("/home/me") && !all.contains("inurl") && !all.contains("inline"));
        assert_eq!(
            w.env
                .iter()
                .filter(|e| e.starts_with("TARS_REDIS__PASSWORD_FILE="))
                .count(),
            1
        );
    }

    #[test]
    fn other_secret_looking_variables_are_refused_and_empty_ones_dropped() {
        for name in [
            "TARS_LLM__MAX_ANSWER_TOKENS",
            "TARS_LLM__ALLOW_INSECURE_CREDENTIALS",
            "TARS_REDIS__PASSWORD_FILE",
            "TARS_WORKER__SHUTDOWN_GRACE_SECS",
            "KEYBOARD",
        ] {
            assert!(!names_a_secret(name), "{name}");
        }
        for name in [
            "AWS_SECRET_ACCESS_KEY",
            "OPENAI_API_KEY",
            "db_passwd",
            "SSH_PRIVATE_KEY",
        ] {
            assert!(names_a_secret(name), "{name}");
        }
        for (k, v) in [
            ("TARS_REDIS__PASSWORD", "x"),
            ("GITHUB_TOKEN", "ghp_1"),
            ("TARS_X__CLIENT_SECRET", "s"),
            ("OPENAI_APIKEY", "k"),
            ("TARS_LLM__URL", "http://u:tok@llm:8080"),
        ] {
            let e = worker_env(Vec::new(), vec![format!("{k}={v}")], &no_files).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(k), "{msg}");
            assert!(
                !msg.contains(&format!("={v}")) && !msg.contains(":tok@"),
                "{msg}"
            );
        }
        let w = worker_env(Vec::new(), vec!["GITHUB_TOKEN=".into()], &no_files).unwrap();
        assert!(w.env.is_empty() && w.secrets.is_empty());
        let w = worker_env(
            Vec::new(),
            vec!["TARS_LLM__URL=http://llm:8080".into()],
            &no_files,
        )
        .unwrap();
        assert_eq!(w.env, vec!["TARS_LLM__URL=http://llm:8080".to_string()]);
    }

    #[test]
    fn the_files_are_private_and_made_afresh() {
        let base = tempfile::tempdir().unwrap();
        let base = base.path().join("fleet");
        let s = vec![WorkerSecret {
            file: "redis_password",
            env: REDIS_PASSWORD_FILE,
            value: Secret::new("pw1"),
        }];
        let me = euid();
        let w = write(&base, &s, Some((me, None))).unwrap();
        let m = std::fs::metadata(&base).unwrap();
        assert_eq!(m.mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&w.dir).unwrap().mode() & 0o777, 0o700);
        let (file, target) = &w.mounts[0];
        assert_eq!(target, "/run/secrets/redis_password");
        assert_eq!(std::fs::read_to_string(file).unwrap(), "pw1");
        assert_eq!(std::fs::metadata(file).unwrap().mode() & 0o777, 0o400);
        // A second `up` gets its own directory.
        let w2 = write(&base, &s, Some((me, None))).unwrap();
        assert_ne!(w.dir, w2.dir);
        // Another user in the container and a dispatcher that cannot chown to it: 0444, the
        // 0700 directory keeps the others out.
        if me != 0 {
            let w3 = write(&base, &s, Some((me + 1, None))).unwrap();
            let m = std::fs::metadata(&w3.mounts[0].0).unwrap();
            assert_eq!(m.mode() & 0o777, 0o444);
        }
        remove_for(file, &base);
        assert!(!w.dir.exists());
        assert!(w2.dir.exists());
        // Never another directory than ours.
        let elsewhere = tempfile::tempdir().unwrap();
        let f = elsewhere.path().join("secrets-x").join("f");
        std::fs::create_dir(f.parent().unwrap()).unwrap();
        remove_for(&f, &base);
        assert!(f.parent().unwrap().exists());
    }

    #[test]
    fn a_base_that_others_can_enter_or_a_symlink_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = vec![WorkerSecret {
            file: "llm_api_key",
            env: LLM_API_KEY_FILE,
            value: Secret::new("k"),
        }];
        let e = write(&open, &s, None).unwrap_err().to_string();
        assert!(e.contains("private directory"), "{e}");
        let link = t.path().join("link");
        std::os::unix::fs::symlink(t.path(), &link).unwrap();
        assert!(write(&link, &s, None).is_err());
    }

    #[test]
    fn image_users() {
        assert_eq!(numeric_user("65532:65532"), Some((65532, Some(65532))));
        assert_eq!(numeric_user("1000"), Some((1000, None)));
        assert_eq!(numeric_user(""), Some((0, None)));
        assert_eq!(numeric_user("nonroot"), None);
        assert_eq!(numeric_user("1:grp"), None);
    }
}
