//! On the real Docker engine: the compose file scaled to four resource-limited workers, its
//! verify profile (verifiers that check patches with no network but Redis), and the fleet
//! driven through Docker's API. Skipped (with a message) only where no engine answers, and
//! never in CI (`CI=true`), where a missing engine fails them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::fake_llm::{FakeLlm, Reply, models_reply, openai_completion, resolving_answer};
use crate::util::{
    LlamaServer, cmd, demo_repo, free_port, git, git_commit, repo_root, run, wait_until,
};

/// The tests use the one `tars-network`: run them one at a time.
pub(crate) static DOCKER: Mutex<()> = Mutex::new(());
static IMAGES: OnceLock<Result<(), String>> = OnceLock::new();

/// Whether the tests run under CI: `CI` set to `true` or `1`, as CI services set it.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Whether a Docker engine answers. Without one the Docker tests are skipped with a message,
/// except in CI, where that is a failure: a CI run must not go green without them.
pub(crate) fn engine_answers() -> bool {
    let why = match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
    {
        Ok(o) if o.status.success() => return true,
        Ok(o) => format!(
            "`docker info` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("cannot run `docker`: {e}"),
    };
    if in_ci() {
        panic!(
            "no Docker engine answers, and the Docker tests require one in CI (CI={}): start \
             the engine (dockerd) so that /var/run/docker.sock answers, or point DOCKER_HOST at \
             one (e.g. DOCKER_HOST=unix:///path/to/docker.sock or tcp://HOST:2375)\n{why}",
            std::env::var("CI").unwrap_or_default()
        );
    }
    eprintln!("SKIPPED: no Docker engine answers (DOCKER_HOST or /var/run/docker.sock): {why}");
    false
}

/// Builds the images once per test run with the script users run on offline machines.
pub(crate) fn images() {
    let r = IMAGES.get_or_init(|| {
        let t = Instant::now();
        let o = Command::new(repo_root().join("compose/build-offline"))
            .output()
            .map_err(|e| e.to_string())?;
        eprintln!(
            "build-offline: {:.0} s\n{}",
            t.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&o.stderr)
        );
        if o.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    });
    if let Err(e) = r {
        panic!("compose/build-offline failed: {e}");
    }
}

pub(crate) fn docker(args: &[&str]) -> String {
    let o = Command::new("docker").args(args).output().expect("docker");
    assert!(
        o.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub(crate) fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn inspect(id: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&docker(&["inspect", id])).unwrap();
    v[0].clone()
}

fn compose(project: &str, env: &HashMap<&str, String>, args: &[&str]) -> std::process::Output {
    // Compose v2, the `docker compose` plugin, as the README says (scripts/setup-test-deps
    // installs it where the engine's CLI has none).
    let mut c = Command::new("docker");
    c.current_dir(repo_root().join("compose"))
        .args(["compose", "-f", "docker-compose.yml", "-p", project])
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("docker compose")
}

fn mem_usage(id: &str) -> String {
    docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", id])
}

#[test]
fn compose_scales_four_limited_workers_that_finish_a_run() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    if !engine_answers() {
        return;
    }
    images();
    let llm = LlamaServer::start_on("0.0.0.0");
    let repo = demo_repo();
    // Twelve tasks, so that every one of the four workers gets some.
    let mut extra = String::new();
    for i in 0..6 {
        extra.push_str(&format!(
            "\ndef step_{i}(x):\n    # TODO: check that x is positive ({i})\n    return x * {i}\n\n"
        ));
    }
    std::fs::write(repo.path().join("src/steps.py"), extra).unwrap();
    crate::util::git(repo.path(), &["add", "src/steps.py"]);
    git_commit(repo.path(), "steps");
    let out = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        out.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let project = format!("tarstest{}", std::process::id());
    let mut env = HashMap::new();
    env.insert("TARS_LLM_API", "openai".to_string());
    env.insert(
        "TARS_LLM_URL",
        format!("http://host.docker.internal:{}", llm.port),
    );
    env.insert("TARS_MODEL", "smollm2".to_string());
    env.insert("TARS_NUM_CTX", "2048".to_string());
    env.insert("TARS_MAX_ANSWER_TOKENS", "512".to_string());
    env.insert("TARS_WORKER_MEMORY", "256m".to_string());
    env.insert("TARS_REPO", repo.path().display().to_string());
    env.insert("TARS_OUT", out.path().display().to_string());
    let redis_port = free_port();
    env.insert("TARS_REDIS_PORT", redis_port.to_string());
    let dashboard_port = free_port();
    env.insert("TARS_DASHBOARD_PORT", dashboard_port.to_string());
    let down = |env: &HashMap<&str, String>| {
        compose(
            &project,
            env,
            &["--profile", "cli", "down", "-v", "--remove-orphans"],
        )
    };
    // Tears the project down even when an assertion fails, so no run leaves containers behind.
    struct Down<'a>(&'a dyn Fn() -> std::process::Output);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)();
        }
    }
    let down_env = env.clone();
    let teardown = || down(&down_env);
    let _guard = Down(&teardown);

    let up = compose(&project, &env, &["up", "-d", "--scale", "worker=4"]);
    assert!(
        up.status.success(),
        "compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let workers: Vec<String> = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        "label=com.docker.compose.service=worker",
    ])
    .lines()
    .map(str::to_string)
    .collect();
    assert_eq!(workers.len(), 4, "four worker containers");
    for w in &workers {
        let hc = &inspect(w)["HostConfig"];
        assert_eq!(hc["Memory"], 256 << 20, "memory limit of {w}");
        assert_eq!(hc["NanoCpus"], 1_000_000_000i64, "cpu limit of {w}");
        assert_eq!(hc["PidsLimit"], 128, "pids limit of {w}");
        assert_eq!(hc["ReadonlyRootfs"], true);
        assert_eq!(hc["CapDrop"][0], "ALL");
    }
    wait_until("four healthy workers", Duration::from_secs(120), || {
        workers
            .iter()
            .all(|w| inspect(w)["State"]["Health"]["Status"] == "healthy")
    });
    check_compose_redis_auth(&project);
    let idle: Vec<String> = workers.iter().map(|w| mem_usage(w)).collect();

    // Sample the workers' memory while the run is in progress.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (on, ids) = (sampling.clone(), workers.clone());
        std::thread::spawn(move || {
            let mut last: Vec<String> = Vec::new();
            while on.load(std::sync::atomic::Ordering::SeqCst) {
                last = ids.iter().map(|w| mem_usage(w)).collect();
                std::thread::sleep(Duration::from_millis(500));
            }
            last
        })
    };
    let t = Instant::now();
    let r = compose(
        &project,
        &env,
        &[
            "run",
            "--rm",
            "dispatcher",
            "run",
            "/repo",
            "--wait",
            "--timeout",
            "900",
            "--out",
            "/out",
        ],
    );
    let wall = t.elapsed();
    let stderr = String::from_utf8_lossy(&r.stderr).to_string();
    sampling.store(false, std::sync::atomic::Ordering::SeqCst);
    let busy: Vec<String> = sampler.join().unwrap_or_default();
    // 0 when every task is done, 5 (its own code) when some failed: both are a finished run.
    if !matches!(r.status.code(), Some(0 | 5)) {
        let logs = compose(&project, &env, &["logs", "--tail", "50", "worker"]);
        down(&env);
        panic!(
            "dispatcher run: {stderr}\n{}",
            String::from_utf8_lossy(&logs.stdout)
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 12);
    let failed = tasks.iter().filter(|t| t["state"] == "failed").count();
    assert_eq!(
        r.status.code(),
        Some(if failed > 0 { 5 } else { 0 }),
        "the exit code says whether tasks failed: {stderr}"
    );
    let mut hosts = BTreeSet::new();
    for t in tasks {
        assert!(t["state"] == "done" || t["state"] == "failed", "{t}");
        // Worker ids start with the container's hostname (its short id).
        let w = t["worker"].as_str().unwrap_or_default();
        hosts.insert(w.split('-').next().unwrap_or_default().to_string());
    }
    let short: BTreeSet<String> = workers
        .iter()
        .map(|w| w.chars().take(12).collect())
        .collect();
    assert!(hosts.is_subset(&short), "{hosts:?} vs {short:?}");
    assert_eq!(
        hosts.len(),
        4,
        "four distinct workers finished tasks: {hosts:?}"
    );

    land_from_the_host(&project, &env, redis_port, repo.path(), tasks);
    // The compose file's dashboard, on the host's loopback, shows the run.
    let (code, page) = crate::util::http_get(dashboard_port, "/").unwrap_or_default();
    assert_eq!(code, 200, "{page}");
    let run_id = summary["run"].as_str().unwrap_or_default();
    assert!(
        !run_id.is_empty() && page.contains(&format!("data-run=\"{run_id}\"")),
        "the compose dashboard shows run {run_id}: {page}"
    );

    let d = down(&env);
    assert!(
        d.status.success(),
        "compose down: {}",
        String::from_utf8_lossy(&d.stderr)
    );
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    assert!(left.is_empty(), "containers left: {left}");
    assert!(
        !docker_ok(&["network", "inspect", "tars-network"]),
        "tars-network left behind"
    );
    let vols = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    assert!(vols.is_empty(), "volumes left: {vols}");
    let size = docker(&[
        "image",
        "inspect",
        "tars-fleet:latest",
        "--format",
        "{{.Size}}",
    ]);
    eprintln!(
        "compose: run of 12 tasks on 4 workers in {:.1} s; image {} MB; worker memory idle {idle:?}, during the run {busy:?}",
        wall.as_secs_f64(),
        size.parse::<u64>().unwrap_or(0) / 1_000_000
    );
}

/// Every file under `dir` (`.git` included) with its mode and content.
/// The README's compose workflow, last step: on the host, `dispatcher land --repo` against the
/// compose Redis (published on the host's loopback, the password read from Redis's container
/// into a pipe) lands the run that the dispatcher container made on a review branch, from the
/// commit that container recorded (its image has no git: read from `.git` itself), without
/// touching the work tree; `status` on the host sees the run too.
fn land_from_the_host(
    project: &str,
    env: &HashMap<&str, String>,
    redis_port: u16,
    repo: &Path,
    tasks: &[serde_json::Value],
) {
    let head = String::from_utf8_lossy(&crate::util::git(repo, &["rev-parse", "HEAD"]).stdout)
        .trim()
        .to_string();
    let host = |args: &str| {
        let script = format!(
            "TARS_REDIS__PASSWORD_FILE=<(docker compose -f docker-compose.yml -p {project} \
             exec -T redis cat /run/secrets/redis_password) {} {args}",
            crate::util::bin("dispatcher").display()
        );
        let mut c = crate::util::clean_env(Command::new("bash"));
        c.current_dir(repo_root().join("compose"))
            .args(["-c", &script])
            .env("TARS_REDIS__URL", format!("redis://127.0.0.1:{redis_port}"));
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("bash")
    };
    let status = host("status --json");
    let text = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        status.status.success(),
        "status from the host: {text}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let st: serde_json::Value = serde_json::from_str(&text).expect("status --json");
    assert_eq!(st["repo"], "/repo", "{st}");
    assert_eq!(
        st["commit"],
        head.as_str(),
        "the container recorded the commit: {st}"
    );

    let land = host(&format!("land --repo {} --json", repo.display()));
    let out = String::from_utf8_lossy(&land.stdout).to_string();
    let err = String::from_utf8_lossy(&land.stderr).to_string();
    assert!(
        matches!(land.status.code(), Some(0 | 8)),
        "land from the host: {out}{err}"
    );
    let done = tasks.iter().filter(|t| t["state"] == "done").count();
    let report: serde_json::Value = serde_json::from_str(&out).expect("land --json");
    let patches = report["patches"].as_array().expect("patches");
    assert_eq!(
        patches.len(),
        done,
        "every done patch is landed or skipped: {report}"
    );
    assert_eq!(report["base"], head.as_str(), "{report}");
    let landed = patches.iter().filter(|p| p["skipped"].is_null()).count();
    let branch = report["branch"].as_str().unwrap_or_default().to_string();
    if landed > 0 {
        let count = String::from_utf8_lossy(
            &crate::util::git(repo, &["rev-list", "--count", &format!("{head}..{branch}")]).stdout,
        )
        .trim()
        .parse::<usize>()
        .unwrap();
        assert_eq!(count, landed, "one commit per landed patch on {branch}");
    }
    let clean = crate::util::git(repo, &["status", "--porcelain"]);
    assert!(clean.stdout.is_empty(), "the work tree was touched");
    let now = String::from_utf8_lossy(&crate::util::git(repo, &["rev-parse", "HEAD"]).stdout)
        .trim()
        .to_string();
    assert_eq!(now, head, "HEAD moved");
    eprintln!("compose: landed {landed} of {done} done patches from the host on {branch}");
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let mode = std::os::unix::fs::PermissionsExt::mode(&m.permissions());
            if m.is_dir() {
                stack.push(e.path());
                out.insert(e.path(), (mode, Vec::new()));
            } else {
                out.insert(e.path(), (mode, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

fn project_containers(project: &str, service: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        &format!("label=com.docker.compose.service={service}"),
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// A check that reaches for the LLM's host: by the name the workers use, and by the address
/// that name stands for. It passes only where neither answers.
const NO_NETWORK_TEST_PY: &str = r#"import socket
import unittest

LLM = ("@GATEWAY@", @PORT@)


class NoNetwork(unittest.TestCase):
    def test_the_llm_host_has_no_name(self):
        with self.assertRaises(OSError):
            socket.getaddrinfo("host.docker.internal", LLM[1])

    def test_the_llm_host_cannot_be_reached(self):
        with self.assertRaises(OSError):
            socket.create_connection(LLM, timeout=5).close()
"#;

/// Connects to `host:port` with `python3` in a container (`docker exec ID` or `docker run
/// ... IMAGE`); true when it connected.
fn connects(container_args: &[&str], host: &str, port: u16) -> bool {
    let probe = format!("import socket; socket.create_connection(({host:?}, {port}), timeout=5)");
    let mut args = container_args.to_vec();
    args.extend(["python3", "-c", &probe]);
    docker_ok(&args)
}

/// The compose file's verify profile: a worker and two verifiers on a Python repository whose
/// own tests include the network probe above, a scripted LLM answering wrong then right. The
/// task ends verified after one repair; the verifiers have their limits, no network (only
/// Redis's socket), a read-only repository; `down -v` leaves nothing.
#[test]
fn compose_verifiers_check_patches_with_no_network_but_redis_socket() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    if !engine_answers() {
        return;
    }
    images();
    let t0 = Instant::now();
    // Wrong first (breaks the visible test), right after the repair prompt.
    let calls = Arc::new(AtomicUsize::new(0));
    let llm = {
        let calls = calls.clone();
        FakeLlm::start_on("0.0.0.0", move |req, _| match req.path.as_str() {
            "/v1/chat/completions" => {
                let answer = match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => "```python\ndef clamp(x, lo, hi):\n    return x + 1\n```",
                    _ => "```python\ndef clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n```",
                };
                Reply::Json {
                    status: 200,
                    body: openai_completion(answer),
                }
            }
            _ => models_reply(),
        })
    };
    // host-gateway: the address host.docker.internal stands for in the workers.
    let hosts = docker(&[
        "run",
        "--rm",
        "--add-host",
        "host.docker.internal:host-gateway",
        "tars-verify-base:bookworm",
        "getent",
        "hosts",
        "host.docker.internal",
    ]);
    let gateway = hosts
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        gateway.parse::<std::net::IpAddr>().is_ok(),
        "host-gateway's address: {hosts}"
    );

    let repo = tempfile::tempdir().unwrap();
    let files = [
        (
            "calc.py",
            "def clamp(x, lo, hi):\n    # TODO: clamp x into the range [lo, hi]\n    return x\n"
                .to_string(),
        ),
        (
            "test_calc.py",
            "import unittest\nfrom calc import clamp\n\n\nclass T(unittest.TestCase):\n    def test_inside(self):\n        self.assertEqual(clamp(5, 0, 10), 5)\n"
                .to_string(),
        ),
        (
            "test_network.py",
            NO_NETWORK_TEST_PY
                .replace("@GATEWAY@", &gateway)
                .replace("@PORT@", &llm.port.to_string()),
        ),
    ];
    for (name, text) in &files {
        std::fs::write(repo.path().join(name), text).unwrap();
    }
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "-A"]);
    git_commit(repo.path(), "start");
    // Readable by the containers' user (65532); nothing in it writable but by its owner.
    std::fs::set_permissions(
        repo.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let before = snapshot(repo.path());
    let out = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        out.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();

    let check = "python3 -m unittest -q";
    let project = format!("tarsverify{}", std::process::id());
    let mut env = HashMap::new();
    env.insert("TARS_LLM_API", "openai".to_string());
    env.insert(
        "TARS_LLM_URL",
        format!("http://host.docker.internal:{}", llm.port),
    );
    env.insert("TARS_MODEL", "scripted".to_string());
    env.insert("TARS_WORKER_MEMORY", "256m".to_string());
    env.insert("TARS_VERIFIER_MEMORY", "512m".to_string());
    env.insert("TARS_VERIFIER_CPUS", "0.5".to_string());
    env.insert("TARS_VERIFY_COMMAND", check.to_string());
    env.insert("TARS_REPO", repo.path().display().to_string());
    env.insert("TARS_OUT", out.path().display().to_string());
    // Host ports of their own (the defaults may be taken on this machine).
    env.insert("TARS_REDIS_PORT", free_port().to_string());
    env.insert("TARS_DASHBOARD_PORT", free_port().to_string());
    let profiles = ["--profile", "cli", "--profile", "verify"];
    let down = |env: &HashMap<&str, String>| {
        let mut args = profiles.to_vec();
        args.extend(["down", "-v", "--remove-orphans"]);
        compose(&project, env, &args)
    };
    struct Down<'a>(&'a dyn Fn() -> std::process::Output);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)();
        }
    }
    let down_env = env.clone();
    let teardown = || down(&down_env);
    let _guard = Down(&teardown);

    let up = compose(
        &project,
        &env,
        &[
            "--profile",
            "verify",
            "up",
            "-d",
            "--scale",
            "worker=1",
            "--scale",
            "verifier=2",
        ],
    );
    assert!(
        up.status.success(),
        "compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let verifiers = project_containers(&project, "verifier");
    assert_eq!(verifiers.len(), 2, "two verifier containers");
    for v in &verifiers {
        let c = inspect(v);
        let hc = &c["HostConfig"];
        assert_eq!(hc["Memory"], 512 << 20, "memory limit of {v}");
        assert_eq!(hc["MemorySwap"], 512 << 20, "no swap beyond it: {v}");
        assert_eq!(hc["NanoCpus"], 500_000_000i64, "cpu limit of {v}");
        assert_eq!(hc["PidsLimit"], 512, "pids limit of {v}");
        assert_eq!(hc["ReadonlyRootfs"], true, "{v}");
        assert_eq!(hc["CapDrop"][0], "ALL", "{v}");
        assert!(
            hc["SecurityOpt"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o == "no-new-privileges:true")),
            "{v}: {}",
            hc["SecurityOpt"]
        );
        assert_eq!(c["Config"]["User"], "65532:65532", "{v} runs unprivileged");
        assert_eq!(
            c["Config"]["Cmd"],
            serde_json::json!(["--role", "verify", "--root", "/repo"]),
            "{v}"
        );
        let mounts = c["Mounts"].as_array().cloned().unwrap_or_default();
        let repo_mount = mounts
            .iter()
            .find(|m| m["Destination"] == "/repo")
            .unwrap_or_else(|| panic!("{v}: /repo not mounted: {mounts:?}"));
        assert_eq!(repo_mount["RW"], false, "{v}: /repo read-only");
        assert!(
            mounts
                .iter()
                .any(|m| m["Destination"] == "/var/cache/tars" && m["Type"] == "volume"),
            "{v}: the scratch volume: {mounts:?}"
        );
        assert!(
            !mounts.iter().any(|m| m["Source"]
                .as_str()
                .unwrap_or_default()
                .contains("docker.sock")),
            "{v} must not see the Docker socket"
        );
        assert_eq!(hc["NetworkMode"], "none", "{v}: no network");
        assert!(
            mounts
                .iter()
                .any(|m| m["Destination"] == "/run/redis" && m["RW"] == false),
            "{v}: Redis's socket, read-only: {mounts:?}"
        );
    }
    // No container of the project, workers included, gets the Docker socket.
    for id in docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ])
    .lines()
    {
        let mounts = inspect(id)["Mounts"].to_string();
        assert!(!mounts.contains("docker.sock"), "{id}: {mounts}");
    }
    wait_until(
        "two healthy verifiers and a healthy worker",
        Duration::from_secs(120),
        || {
            std::thread::sleep(Duration::from_millis(500));
            verifiers
                .iter()
                .chain(project_containers(&project, "worker").iter())
                .all(|w| inspect(w)["State"]["Health"]["Status"] == "healthy")
        },
    );

    // The network rule, from inside a verifier: a loopback and no route; neither Redis's nor
    // the LLM host's name resolves, the LLM's address does not answer; the same probe from a
    // container on tars-network (as a worker is) connects.
    let v0 = verifiers[0].as_str();
    assert_eq!(
        docker(&["exec", v0, "ls", "/sys/class/net"]),
        "lo",
        "a verifier's interfaces"
    );
    assert!(!docker_ok(&["exec", v0, "getent", "hosts", "redis"]));
    assert!(
        !docker_ok(&["exec", v0, "getent", "hosts", "host.docker.internal"]),
        "a verifier resolves the LLM's host name"
    );
    assert!(
        !connects(&["exec", v0], &gateway, llm.port),
        "a verifier reaches the LLM at {gateway}:{}",
        llm.port
    );
    assert!(
        connects(
            &[
                "run",
                "--rm",
                "--network",
                "tars-network",
                "tars-verify-base:bookworm",
            ],
            &gateway,
            llm.port
        ),
        "the probe connects from tars-network: the refusal above is the network's doing"
    );

    let t = Instant::now();
    let r = compose(
        &project,
        &env,
        &[
            "run",
            "--rm",
            "dispatcher",
            "run",
            "/repo",
            "--verify",
            check,
            "--wait",
            "--timeout",
            "600",
            "--out",
            "/out",
        ],
    );
    let wall = t.elapsed();
    let stderr = String::from_utf8_lossy(&r.stderr).to_string();
    if r.status.code() != Some(0) {
        let logs = compose(
            &project,
            &env,
            &[
                "--profile",
                "verify",
                "logs",
                "--tail",
                "60",
                "worker",
                "verifier",
            ],
        );
        panic!(
            "dispatcher run: {:?}\n{stderr}\n{}",
            r.status.code(),
            String::from_utf8_lossy(&logs.stdout)
        );
    }
    assert!(
        stderr.contains(&format!("verify: `{check}`")),
        "the run names its check: {stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{summary:#}");
    let task = &tasks[0];
    assert_eq!(task["state"], "done", "{task:#}");
    // Passed: with the patch, and with the network test in the same check run.
    assert_eq!(task["verified"], "passed", "{task:#}");
    assert_eq!(task["repairs"], 1, "{task:#}");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one answer, one repair");
    let patch = std::fs::read_to_string(
        out.path()
            .join(format!("{}.patch", task["id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(patch.contains("+    return max(lo, min(x, hi))"), "{patch}");
    // The repair prompt carried the failure the verifier saw.
    let reqs = llm.requests.lock().unwrap().clone();
    let repair = reqs
        .iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .nth(1)
        .expect("the repair request");
    assert!(repair.body.contains("AssertionError"), "{}", repair.body);
    // All three tests ran in that check, the two network ones passing (one failure).
    assert!(
        repair.body.contains("Ran 3 tests") && repair.body.contains("failures=1"),
        "{}",
        repair.body
    );

    // The repository mount stayed as it was: every file, mode and the git metadata.
    assert!(
        before == snapshot(repo.path()),
        "the repository changed under the fleet"
    );
    assert!(
        git(repo.path(), &["status", "--porcelain", "--ignored"])
            .stdout
            .is_empty()
    );

    let d = down(&env);
    assert!(
        d.status.success(),
        "compose down: {}",
        String::from_utf8_lossy(&d.stderr)
    );
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    assert!(left.is_empty(), "containers left: {left}");
    assert!(
        !docker_ok(&["network", "inspect", "tars-network"]),
        "tars-network left behind"
    );
    let vols = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    assert!(vols.is_empty(), "volumes left: {vols}");
    let size = |image: &str| {
        docker(&["image", "inspect", image, "--format", "{{.Size}}"])
            .parse::<u64>()
            .unwrap_or(0)
            / 1_000_000
    };
    eprintln!(
        "compose verify: run of 1 task (answer, failed check, repair, passed check) on 1 worker \
         and 2 verifiers in {:.1} s, {:.1} s with up and down; images: tars-fleet {} MB, \
         tars-fleet-verifier {} MB",
        wall.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        size("tars-fleet:latest"),
        size("tars-fleet-verifier:latest")
    );
}

/// Redis of the compose project requires the password made on first use: a client on
/// tars-network without it is refused, no container's `docker inspect` shows it, the file is
/// private, and Redis has its memory limits.
fn check_compose_redis_auth(project: &str) {
    let secrets = repo_root().join("compose/.secrets");
    let file = secrets.join("redis/redis_password");
    let pw = std::fs::read_to_string(&file).expect("compose/.secrets/redis_password");
    let pw = pw.trim_end();
    assert!(pw.len() >= 32, "a long password: {} chars", pw.len());
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&secrets), 0o700, "{}", secrets.display());
    assert_eq!(mode(&secrets.join("redis")), 0o550);
    assert_eq!(mode(&file), 0o440, "{}", file.display());
    let all = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    let ids: Vec<&str> = all.lines().collect();
    assert!(ids.len() >= 6, "redis-secret, redis and 4 workers: {ids:?}");
    for id in &ids {
        let raw = docker(&["inspect", id]);
        assert!(
            !raw.contains(pw),
            "docker inspect {id} shows the Redis password"
        );
    }
    let redis = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        "label=com.docker.compose.service=redis",
    ]);
    let hc = &inspect(&redis)["HostConfig"];
    assert_eq!(hc["Memory"], 1i64 << 30, "redis memory limit");
    assert_eq!(hc["CapDrop"][0], "ALL");
    // Another container on the network, as anyone invited to join tars-network would be.
    let o = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "tars-network",
            "redis:7-bookworm",
            "redis-cli",
            "-h",
            "redis",
            "ping",
        ])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&o.stdout);
    assert!(answer.contains("NOAUTH"), "unauthenticated ping: {answer}");
    // The password is not on Redis's command line either (`ps` on the host shows that).
    let cmdline = docker(&["exec", &redis, "cat", "/proc/1/cmdline"]);
    assert!(!cmdline.contains(pw), "redis-server's argv: {cmdline}");
    let policy = docker(&[
        "exec",
        &redis,
        "sh",
        "-c",
        "REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" redis-cli config get maxmemory*",
    ]);
    assert!(
        policy.contains("noeviction") && policy.contains("805306368"),
        "{policy}"
    );
}

fn fleet_containers() -> Vec<String> {
    docker(&["ps", "-aq", "--filter", "label=dev.tars-fleet.fleet=worker"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn check_limits(ids: &[String], memory: i64, nano_cpus: i64) {
    for id in ids {
        let c = inspect(id);
        assert_eq!(c["State"]["Running"], true, "{id} running");
        assert_eq!(c["HostConfig"]["Memory"], memory, "{id}");
        assert_eq!(c["HostConfig"]["NanoCpus"], nano_cpus, "{id}");
        assert_eq!(c["HostConfig"]["PidsLimit"], 128, "{id}");
        assert_eq!(c["HostConfig"]["ReadonlyRootfs"], true, "{id}");
        let mounts = c["Mounts"].as_array().cloned().unwrap_or_default();
        assert!(
            !mounts.iter().any(|m| m["Source"]
                .as_str()
                .unwrap_or_default()
                .contains("docker.sock")),
            "{id} must not see the Docker socket"
        );
    }
}

/// The fleet test's Redis password: given to the dispatcher in the URL (`fleet_cmd`) or in a
/// password file; no worker's `docker inspect` may show it.
const FLEET_PW: &str = "fleet-pw-5b1d9e";
/// The LLM API key the fleet test passes as `--env TARS_LLM__API_KEY=...`.
const FLEET_KEY: &str = "sk-fleet-key-77c0";

fn fleet_cmd(redis_port: u16, args: &[&str]) -> crate::util::Output {
    let mut c = cmd("dispatcher");
    c.env(
        "TARS_REDIS__URL",
        format!("redis://:{FLEET_PW}@127.0.0.1:{redis_port}"),
    )
    .args(args);
    run(c)
}

/// What a user checks: the container's whole `docker inspect` holds none of the secrets, its
/// environment names the files instead, and those are read-only mounts of private files.
fn check_no_secret_in_inspect(id: &str, secrets: &[&str], files: &[&str]) {
    let raw = docker(&["inspect", id]);
    for s in secrets {
        assert!(
            !raw.contains(s),
            "docker inspect {id} shows a secret: {raw}"
        );
    }
    let c = inspect(id);
    let env: Vec<String> = c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    let mounts = c["Mounts"].as_array().cloned().unwrap_or_default();
    for f in files {
        let target = format!("/run/secrets/{f}");
        assert!(
            env.iter().any(|e| e.ends_with(&format!("_FILE={target}"))),
            "{id}: no *_FILE variable names {target}: {env:?}"
        );
        let m = mounts
            .iter()
            .find(|m| m["Destination"] == target.as_str())
            .unwrap_or_else(|| panic!("{id}: {target} not mounted: {mounts:?}"));
        assert_eq!(m["Type"], "bind", "{m}");
        assert_eq!(m["RW"], false, "{target} read-only: {m}");
        let src = std::path::Path::new(m["Source"].as_str().unwrap());
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(src).unwrap().permissions());
        let dir_mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(src.parent().unwrap())
                .unwrap()
                .permissions(),
        );
        assert_eq!(dir_mode & 0o077, 0, "{} open to others", src.display());
        assert_eq!(mode & 0o022, 0, "{} writable by others", src.display());
    }
}

struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in fleet_containers() {
            let _ = Command::new("docker").args(["rm", "-f", &id]).output();
        }
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        let _ = Command::new("docker")
            .args(["rm", "-f", "tars-worker-1"])
            .output();
        let _ = Command::new("docker")
            .args(["network", "rm", "tars-network"])
            .output();
    }
}

#[test]
fn fleet_up_scale_kill_and_down_through_the_docker_api() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    if !engine_answers() {
        return;
    }
    images();
    let redis_name = format!("tars-test-redis-{}", std::process::id());
    let _cleanup = Cleanup(redis_name.clone());
    if !docker_ok(&["network", "inspect", "tars-network"]) {
        docker(&["network", "create", "tars-network"]);
    }
    let redis_port = free_port();
    docker(&[
        "run",
        "-d",
        "--name",
        &redis_name,
        "--network",
        "tars-network",
        "-p",
        &format!("127.0.0.1:{redis_port}:6379"),
        "redis:7-bookworm",
        "redis-server",
        "--requirepass",
        FLEET_PW,
    ]);
    let redis_url = format!("redis://:{FLEET_PW}@127.0.0.1:{redis_port}");
    wait_until("redis container", Duration::from_secs(30), || {
        redis::Client::open(redis_url.as_str())
            .and_then(|c| c.get_connection())
            .is_ok()
    });
    let fake = FakeLlm::start_on("0.0.0.0", |req, _| match req.path.as_str() {
        "/v1/chat/completions" => {
            std::thread::sleep(Duration::from_secs(6));
            Reply::Json {
                status: 200,
                body: openai_completion(&resolving_answer(&req.body)),
            }
        }
        _ => models_reply(),
    });

    // Bad input first: nothing may be left behind.
    let bad = fleet_cmd(
        redis_port,
        &["fleet", "up", "--workers", "2", "--memory", "1x"],
    )
    .code_is(2);
    assert!(bad.stderr.contains("--memory"), "{}", bad.stderr);
    let bad = fleet_cmd(
        redis_port,
        &["fleet", "up", "--workers", "2", "--cpus", "-1"],
    )
    .code_is(2);
    assert!(bad.stderr.contains("--cpus"), "{}", bad.stderr);
    let bad = fleet_cmd(redis_port, &["fleet", "up", "--image", "tars-fleet:nope"]).code_is(1);
    assert!(
        bad.stderr.contains("compose/build-offline"),
        "{}",
        bad.stderr
    );
    assert!(fleet_containers().is_empty());
    let mut c = cmd("dispatcher");
    c.env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["fleet", "status"]);
    let bad = run(c).code_is(4);
    assert!(
        bad.stderr.contains("DOCKER_HOST") && bad.stderr.contains("/nonexistent/docker.sock"),
        "{}",
        bad.stderr
    );
    // A container that is not ours holds a fleet name: refused, nothing created.
    docker(&["create", "--name", "tars-worker-1", "tars-fleet:latest"]);
    let bad = fleet_cmd(redis_port, &["fleet", "up", "--workers", "2"]).code_is(1);
    assert!(
        bad.stderr.contains("tars-worker-1") && bad.stderr.contains("not part of the fleet"),
        "{}",
        bad.stderr
    );
    assert!(fleet_containers().is_empty());
    docker(&["rm", "tars-worker-1"]);
    // A secret in a variable that fleet up cannot turn into a file: refused by name, without
    // the value, before anything is created.
    let bad = fleet_cmd(
        redis_port,
        &["fleet", "up", "--env", "GITHUB_TOKEN=ghp_secret123"],
    )
    .code_is(2);
    assert!(
        bad.stderr.contains("GITHUB_TOKEN") && !bad.stderr.contains("ghp_secret123"),
        "{}",
        bad.stderr
    );
    assert!(fleet_containers().is_empty());

    let t = Instant::now();
    // The Redis password in the workers' URL and an API key, both as --env values: fleet up
    // turns them into mounted files.
    let env = [
        format!("TARS_REDIS__URL=redis://:{FLEET_PW}@{redis_name}:6379"),
        format!("TARS_LLM__URL=http://host.docker.internal:{}", fake.port),
        "TARS_LLM__API=openai".to_string(),
        format!("TARS_LLM__API_KEY={FLEET_KEY}"),
        "TARS_LLM__ALLOW_INSECURE_CREDENTIALS=true".to_string(),
        "TARS_QUEUE__LEASE_SECS=3".to_string(),
    ];
    let mut args = vec![
        "fleet",
        "up",
        "--workers",
        "3",
        "--memory",
        "256m",
        "--cpus",
        "0.5",
    ];
    for e in &env {
        args.push("--env");
        args.push(e);
    }
    fleet_cmd(redis_port, &args).success();
    let ids = fleet_containers();
    assert_eq!(ids.len(), 3);
    check_limits(&ids, 256 << 20, 500_000_000);
    let files = ["redis_password", "llm_api_key"];
    for id in &ids {
        check_no_secret_in_inspect(id, &[FLEET_PW, FLEET_KEY], &files);
    }
    let secret_dir = std::path::PathBuf::from(
        inspect(&ids[0])["Mounts"][0]["Source"]
            .as_str()
            .unwrap()
            .to_string(),
    )
    .parent()
    .unwrap()
    .to_path_buf();
    wait_until(
        "three workers heartbeating",
        Duration::from_secs(60),
        || {
            let s = fleet_cmd(redis_port, &["fleet", "status", "--json"]);
            serde_json::from_str::<Vec<serde_json::Value>>(&s.stdout)
                .is_ok_and(|v| v.len() == 3 && v.iter().all(|w| w["tasks_done"].is_u64()))
        },
    );
    let ready = t.elapsed();

    for (n, expect) in [("5", 5), ("2", 2)] {
        fleet_cmd(redis_port, &["fleet", "scale", n]).success();
        let ids = fleet_containers();
        assert_eq!(ids.len(), expect, "after scale {n}");
        check_limits(&ids, 256 << 20, 500_000_000);
        for id in &ids {
            check_no_secret_in_inspect(id, &[FLEET_PW, FLEET_KEY], &files);
        }
    }
    let table = fleet_cmd(redis_port, &["fleet", "status"]);
    assert!(
        table.stdout.contains("tars-worker-1")
            && table.stdout.contains("256Mi")
            && table.stdout.contains("0.50"),
        "{}",
        table.stdout
    );

    // A worker killed mid-task: another finishes its task.
    let repo = demo_repo();
    let r = fleet_cmd(redis_port, &["run", repo.path().to_str().unwrap()]).success();
    let run_id = r.stdout.trim().to_string();
    // The task state in Redis says who is mid-task; worker ids start with the container name.
    let mut c = redis::Client::open(redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut victim: Option<(String, String)> = None;
    wait_until("a worker mid-task", Duration::from_secs(60), || {
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{{tars}}:run:{run_id}:tasks"))
            .query(&mut c)
            .unwrap_or_default();
        victim = ids.into_iter().find_map(|id| {
            let h: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(format!("{{tars}}:task:{run_id}:{id}"))
                .query(&mut c)
                .ok()?;
            if h.get("state")? != "running" {
                return None;
            }
            let worker = h.get("worker")?;
            let container = worker.rsplitn(3, '-').nth(2)?.to_string();
            Some((container, id))
        });
        victim.is_some()
    });
    let (name, task) = victim.unwrap();
    docker(&["kill", &name]);
    wait_until("the run finished", Duration::from_secs(120), || {
        let s = fleet_cmd(redis_port, &["status", "--json", &run_id]);
        serde_json::from_str::<serde_json::Value>(&s.stdout)
            .is_ok_and(|v| v["finished_at"].is_u64())
    });
    let h: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{{tars}}:task:{run_id}:{task}"))
        .query(&mut c)
        .unwrap();
    assert_eq!(h["state"], "done", "{h:?}");
    assert!(
        h["attempts"].parse::<u32>().unwrap() >= 2,
        "the killed attempt was retried: {h:?}"
    );
    let s = fleet_cmd(redis_port, &["status", "--json", &run_id]);
    let st: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
    assert_eq!(st["done"], 6, "{st}");

    fleet_cmd(redis_port, &["fleet", "down"]).success();
    assert!(fleet_containers().is_empty());
    assert!(
        !secret_dir.exists(),
        "fleet down leaves {}",
        secret_dir.display()
    );

    // The password given to the dispatcher as a file of this machine, the URL without one.
    let pw_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw_file.path(), format!("{FLEET_PW}\n")).unwrap();
    let mut c = cmd("dispatcher");
    c.env("TARS_REDIS__URL", format!("redis://127.0.0.1:{redis_port}"))
        .env("TARS_REDIS__PASSWORD_FILE", pw_file.path())
        .args(["fleet", "up", "--workers", "1", "--memory", "256m"])
        .args([
            "--env",
            &format!("TARS_REDIS__URL=redis://{redis_name}:6379"),
            "--env",
            &env[1],
            "--env",
            "TARS_LLM__API=openai",
        ]);
    run(c).success();
    let ids = fleet_containers();
    assert_eq!(ids.len(), 1);
    check_no_secret_in_inspect(
        &ids[0],
        &[FLEET_PW, pw_file.path().to_str().unwrap()],
        &["redis_password"],
    );
    wait_until(
        "the worker heartbeating with the password file",
        Duration::from_secs(60),
        || {
            let s = fleet_cmd(redis_port, &["fleet", "status", "--json"]);
            serde_json::from_str::<Vec<serde_json::Value>>(&s.stdout)
                .is_ok_and(|v| v.len() == 1 && v[0]["tasks_done"].is_u64())
        },
    );
    fleet_cmd(redis_port, &["fleet", "down"]).success();
    eprintln!(
        "fleet: 3 workers up and heartbeating {:.1} s after `fleet up`",
        ready.as_secs_f64()
    );
}
