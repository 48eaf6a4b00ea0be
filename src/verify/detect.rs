//! `verify = "auto"`: the check a repository declares, found from its files.

use std::path::Path;

/// Every command `"auto"` can pick. A verifier runs one of these, its own `verify.command` or
/// its `verify.allow` list, and nothing else a run names (runs come from Redis).
pub const AUTO_COMMANDS: &[&str] = &[
    "make test",
    "cargo test --quiet",
    "python3 -m pytest -q",
    "npm test",
    "go test ./...",
];

/// The command found and the file that decided it, as the run prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub command: &'static str,
    pub because: String,
}

/// The repository's own check, or None when it declares none that we know. A Makefile `test`
/// target comes first: a project that wrote one says how its tests run (several languages,
/// set-up steps), which no single toolchain's convention knows.
pub fn detect(repo: &Path) -> Option<Detected> {
    let has = |name: &str| repo.join(name).is_file();
    let found = |command: &'static str, because: &str| {
        Some(Detected {
            command,
            because: because.to_string(),
        })
    };
    for makefile in ["GNUmakefile", "makefile", "Makefile"] {
        if read_small(&repo.join(makefile)).is_some_and(|m| has_make_target(&m, "test")) {
            return found("make test", &format!("{makefile} has a `test` target"));
        }
    }
    if has("Cargo.toml") {
        return found("cargo test --quiet", "Cargo.toml");
    }
    for f in ["pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini"] {
        if has(f) {
            return found("python3 -m pytest -q", f);
        }
    }
    if repo.join("tests").is_dir() && has_python_tests(&repo.join("tests")) {
        return found("python3 -m pytest -q", "tests/ holds Python tests");
    }
    if let Some(pkg) = read_small(&repo.join("package.json"))
        && serde_json::from_str::<serde_json::Value>(&pkg)
            .ok()
            .and_then(|v| v.get("scripts")?.get("test")?.as_str().map(str::to_string))
            .is_some_and(|t| !t.contains("no test specified"))
    {
        return found("npm test", "package.json has a `test` script");
    }
    if has("go.mod") {
        return found("go test ./...", "go.mod");
    }
    None
}

/// A text file of at most 1 MiB (a Makefile, a package.json), not followed through a link.
fn read_small(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 1 << 20 {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// Whether a Makefile defines `target` (`test:` or `test :` at the start of a line, not `:=`).
fn has_make_target(makefile: &str, target: &str) -> bool {
    makefile.lines().any(|l| {
        l.split_once(':').is_some_and(|(names, rest)| {
            !rest.starts_with('=')
                && !names.starts_with(['\t', ' ', '#'])
                && names.split_whitespace().any(|n| n == target)
        })
    })
}

fn has_python_tests(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.ends_with(".py") && (n.starts_with("test_") || n.ends_with("_test.py"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = d.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        d
    }

    #[test]
    fn each_toolchain_is_recognised_by_its_file() {
        type Files = &'static [(&'static str, &'static str)];
        let cases: &[(Files, Option<&str>)] = &[
            (&[("Cargo.toml", "[package]")], Some("cargo test --quiet")),
            (&[("pyproject.toml", "")], Some("python3 -m pytest -q")),
            (&[("tests/test_x.py", "")], Some("python3 -m pytest -q")),
            (
                &[("package.json", r#"{"scripts":{"test":"node --test"}}"#)],
                Some("npm test"),
            ),
            (
                &[(
                    "package.json",
                    r#"{"scripts":{"test":"echo \"Error: no test specified\" && exit 1"}}"#,
                )],
                None,
            ),
            (&[("go.mod", "module x")], Some("go test ./...")),
            (
                &[
                    ("Makefile", "X := 1\ntest: build\n\tcargo test\n"),
                    ("Cargo.toml", ""),
                ],
                Some("make test"),
            ),
            (&[("Makefile", "test_dir := x\nall:\n\techo\n")], None),
            (&[("README.md", "")], None),
        ];
        for (files, want) in cases {
            let d = repo(files);
            assert_eq!(detect(d.path()).map(|f| f.command), *want, "{files:?}");
        }
    }

    #[test]
    fn every_detected_command_is_one_a_verifier_allows() {
        for c in [
            "make test",
            "cargo test --quiet",
            "python3 -m pytest -q",
            "npm test",
            "go test ./...",
        ] {
            assert!(AUTO_COMMANDS.contains(&c));
        }
    }
}
