//! Issue 18, item 2: `deploy/swarm/stack.yml` deployed as a real Docker Swarm stack on this
//! machine's engine (Redis with its password from a Docker secret, four resource-limited
//! workers on an encrypted overlay network, `endpoint_mode: dnsrr`), the dispatcher on the host
//! reaching Redis through `publish-redis.yml`. Mid-run the workers are scaled to 6, one worker
//! task's container is killed, and they are scaled down to 2; every task must end done with one
//! result, and `docker stack rm` must leave no service, container or network. The engine's swarm
//! state is left as found: a swarm the test initialised is left again.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::docker::{DOCKER, docker, docker_ok, engine_answers, images};
use crate::fake_llm::{
    FakeLlm, Reply, many_todos_repo, models_reply, openai_completion, resolving_answer,
};
use crate::util::{cmd, free_port, repo_root, wait_until};

const STACK: &str = "tarsswarm";
const SECRET: &str = "tars-redis-password";

/// Undoes what the test did to the engine, whatever happened: the stack, its secret and volume,
/// and the swarm itself when the test made it.
struct SwarmGuard {
    initialised: bool,
    /// `docker swarm init` makes the bridge `docker_gwbridge`, and leaving keeps it.
    made_gwbridge: bool,
}

impl SwarmGuard {
    fn stack_gone() -> bool {
        let label = format!("label=com.docker.stack.namespace={STACK}");
        ["service", "container", "network"].iter().all(|kind| {
            let mut args = vec![*kind, "ls", "--quiet", "--filter", &label];
            if *kind == "container" {
                args.insert(2, "--all");
            }
            Command::new("docker")
                .args(&args)
                .output()
                .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii().is_empty())
        })
    }

    fn remove_stack() {
        let _ = Command::new("docker").args(["stack", "rm", STACK]).output();
        let t = Instant::now();
        while !SwarmGuard::stack_gone() && t.elapsed() < Duration::from_secs(90) {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        SwarmGuard::remove_stack();
        let _ = Command::new("docker")
            .args(["secret", "rm", SECRET])
            .output();
        let _ = Command::new("docker")
            .args(["volume", "rm", &format!("{STACK}_redis-data")])
            .output();
        if self.initialised {
            let _ = Command::new("docker")
                .args(["swarm", "leave", "--force"])
                .output();
        }
        if self.made_gwbridge {
            let _ = Command::new("docker")
                .args(["network", "rm", "docker_gwbridge"])
                .output();
        }
    }
}

fn swarm_state() -> String {
    docker(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
    ])
}

/// The containers of the stack's worker tasks that run now.
fn worker_containers() -> Vec<String> {
    docker(&[
        "ps",
        "--quiet",
        "--filter",
        &format!("label=com.docker.swarm.service.name={STACK}_worker"),
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

fn redis_conn(port: u16, password: &str) -> Option<redis::Connection> {
    redis::Client::open(format!("redis://:{password}@127.0.0.1:{port}"))
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()
}

/// Worker heartbeats (`{tars}:worker:*`, each with a TTL) alive now.
fn heartbeats(c: &mut redis::Connection) -> usize {
    redis::cmd("KEYS")
        .arg("{tars}:worker:*")
        .query::<Vec<String>>(c)
        .map_or(0, |k| k.len())
}

fn run_counter(c: &mut redis::Connection, run: &str, field: &str) -> usize {
    redis::cmd("HGET")
        .arg(format!("{{tars}}:run:{run}"))
        .arg(field)
        .query::<Option<String>>(c)
        .ok()
        .flatten()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_swarm_stack_scaled_and_faulted_mid_run_finishes_every_task_once() {
    const TASKS: usize = 240;
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    if !engine_answers() {
        return;
    }
    images();
    let started = Instant::now();
    let state = swarm_state();
    let had_gwbridge = docker_ok(&["network", "inspect", "docker_gwbridge"]);
    let initialised = match state.split_whitespace().next() {
        Some("inactive") => {
            docker(&["swarm", "init"]);
            true
        }
        Some("active") if state.ends_with("true") => false,
        _ => panic!(
            "this engine is in a swarm as {state:?}, not as a manager: run the test on a \
             manager or on an engine outside any swarm"
        ),
    };
    let guard = SwarmGuard {
        initialised,
        made_gwbridge: initialised && !had_gwbridge,
    };
    // Leftovers of an interrupted run of this test.
    SwarmGuard::remove_stack();
    let _ = Command::new("docker")
        .args(["secret", "rm", SECRET])
        .output();
    assert!(
        !docker_ok(&["network", "inspect", "tars-network"]),
        "a network tars-network exists (a compose project left up?): `docker compose down` it"
    );

    let password = format!(
        "swarm-{:x}",
        free_port() as u64 * 7919 + std::process::id() as u64
    );
    let mut secret = Command::new("docker")
        .args(["secret", "create", SECRET, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("docker secret create");
    {
        use std::io::Write;
        secret
            .stdin
            .take()
            .expect("stdin")
            .write_all(password.as_bytes())
            .expect("secret");
    }
    assert!(secret.wait().expect("secret").success());

    // The LLM stand-in on the host, reached from the workers through the swarm's
    // docker_gwbridge gateway (the host's address on the containers' bridge).
    let llm = FakeLlm::start_on("0.0.0.0", |req, _| match req.path.as_str() {
        "/v1/chat/completions" => {
            std::thread::sleep(Duration::from_millis(400));
            Reply::Json {
                status: 200,
                body: openai_completion(&resolving_answer(&req.body)),
            }
        }
        _ => models_reply(),
    });
    let gateway = docker(&[
        "network",
        "inspect",
        "docker_gwbridge",
        "--format",
        "{{(index .IPAM.Config 0).Gateway}}",
    ]);
    let llm_url = llm.url().replace("127.0.0.1", &gateway);
    let redis_port = free_port();
    let root = repo_root();
    let deploy = Command::new("docker")
        .args(["stack", "deploy", "--detach=true", "-c"])
        .arg(root.join("deploy/swarm/stack.yml"))
        .arg("-c")
        .arg(root.join("deploy/swarm/publish-redis.yml"))
        .arg(STACK)
        .env("TARS_LLM_API", "openai")
        .env("TARS_LLM_URL", &llm_url)
        .env("TARS_MODEL", "m")
        .env("TARS_LLM_MAX_IN_FLIGHT", "8")
        .env("TARS_LEASE_SECS", "6")
        .env("TARS_REDIS_PORT", redis_port.to_string())
        .output()
        .expect("docker stack deploy");
    assert!(
        deploy.status.success(),
        "docker stack deploy: {}",
        String::from_utf8_lossy(&deploy.stderr)
    );
    let mut c = None;
    wait_until(
        "Redis published by the stack",
        Duration::from_secs(120),
        || {
            c = redis_conn(redis_port, &password);
            c.as_mut()
                .is_some_and(|c| redis::cmd("PING").query::<String>(c).is_ok())
        },
    );
    let mut c = c.expect("redis");
    wait_until(
        "four workers heartbeating",
        Duration::from_secs(180),
        || heartbeats(&mut c) >= 4,
    );
    let ready = started.elapsed();

    // The limits of the stack file, as the engine applied them.
    let ids = worker_containers();
    assert_eq!(ids.len(), 4, "{ids:?}");
    for id in &ids {
        let limits = docker(&[
            "inspect",
            "--format",
            "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.ReadonlyRootfs}}",
            id,
        ]);
        assert_eq!(limits, format!("{} 1000000000 true", 512u64 << 20), "{id}");
    }

    let repo = many_todos_repo(4, TASKS / 4);
    let out_dir = tempfile::tempdir().expect("tempdir");
    let secrets = tempfile::tempdir().expect("tempdir");
    let password_file = secrets.path().join("redis-password");
    std::fs::write(&password_file, &password).expect("password file");
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", format!("redis://127.0.0.1:{redis_port}"))
        .env("TARS_REDIS__PASSWORD_FILE", &password_file)
        .args(["run", "--wait", "--timeout", "600", "--out"])
        .arg(out_dir.path())
        .arg(repo.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let run_started = Instant::now();
    let dispatcher = d.spawn().expect("dispatcher");
    let mut run = String::new();
    wait_until("the run listed", Duration::from_secs(60), || {
        run = redis::cmd("ZRANGE")
            .arg("{tars}:runs")
            .arg(-1)
            .arg(-1)
            .query::<Vec<String>>(&mut c)
            .ok()
            .and_then(|v| v.into_iter().next())
            .unwrap_or_default();
        !run.is_empty()
    });
    let done = |c: &mut redis::Connection| run_counter(c, &run, "done");

    // Scale up at a tenth, kill a worker's container at a third, scale down at a half.
    wait_until("a tenth done", Duration::from_secs(120), || {
        done(&mut c) >= TASKS / 10
    });
    docker(&["service", "scale", "--detach", &format!("{STACK}_worker=6")]);
    wait_until("six workers heartbeating", Duration::from_secs(120), || {
        worker_containers().len() == 6 && heartbeats(&mut c) >= 6
    });
    wait_until("a third done", Duration::from_secs(180), || {
        done(&mut c) >= TASKS / 3
    });
    let victim = worker_containers().into_iter().next().expect("a worker");
    docker(&["kill", "--signal", "KILL", &victim]);
    let done_at_kill = done(&mut c);
    wait_until("a half done", Duration::from_secs(180), || {
        done(&mut c) >= TASKS / 2
    });
    docker(&["service", "scale", "--detach", &format!("{STACK}_worker=2")]);
    wait_until("two workers left", Duration::from_secs(120), || {
        worker_containers().len() == 2
    });

    let out = dispatcher.wait_with_output().expect("dispatcher");
    let run_wall = run_started.elapsed();
    let logs = Command::new("docker")
        .args(["service", "logs", "--raw", &format!("{STACK}_worker")])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
        })
        .unwrap_or_default();
    assert!(
        out.status.success(),
        "dispatcher run: {}\n{}\nworkers:\n{logs}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), run);

    // Every task done, exactly one result each.
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{{tars}}:run:{run}:tasks"))
        .query(&mut c)
        .expect("tasks");
    assert_eq!(ids.len(), TASKS);
    let mut redone = 0;
    for id in &ids {
        let t: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("{{tars}}:task:{run}:{id}"))
            .query(&mut c)
            .expect("task");
        assert_eq!(
            t.get("state").map(String::as_str),
            Some("done"),
            "{id}: {t:?}"
        );
        if t.get("attempts")
            .and_then(|a| a.parse::<u32>().ok())
            .unwrap_or(1)
            > 1
        {
            redone += 1;
        }
    }
    let results: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg("{tars}:stream:results")
        .arg("-")
        .arg("+")
        .query(&mut c)
        .expect("results");
    let mut per_task: HashMap<String, usize> = HashMap::new();
    for (_, f) in results {
        if f.get("run") == Some(&run) {
            *per_task
                .entry(f.get("task").cloned().unwrap_or_default())
                .or_default() += 1;
        }
    }
    for id in &ids {
        assert_eq!(
            per_task.get(id),
            Some(&1),
            "{id}: {:?} results",
            per_task.get(id)
        );
    }
    let patches = std::fs::read_dir(out_dir.path())
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "patch"))
                .count()
        })
        .unwrap_or(0);

    // `docker stack rm` leaves no service, container or network of the stack.
    let rm = Command::new("docker")
        .args(["stack", "rm", STACK])
        .output()
        .expect("docker stack rm");
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    wait_until(
        "the stack gone",
        Duration::from_secs(90),
        SwarmGuard::stack_gone,
    );
    assert!(!docker_ok(&["network", "inspect", "tars-network"]));
    eprintln!(
        "swarm: 1 node, {TASKS} tasks ({patches} patches written), workers 4 -> 6 -> 2, 1 worker \
         container SIGKILLed at {done_at_kill} done, {redone} tasks attempted more than once; \
         stack up with 4 workers heartbeating in {:.1} s, run {:.1} s, whole test {:.1} s",
        ready.as_secs_f64(),
        run_wall.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    drop(guard);
    assert!(
        swarm_state().starts_with(if initialised { "inactive" } else { "active" }),
        "the swarm state is not as found"
    );
    assert_eq!(
        docker_ok(&["network", "inspect", "docker_gwbridge"]),
        had_gwbridge,
        "docker_gwbridge not as found"
    );
}
