//! Issue 18, item 4: a real Redis Cluster (three masters, three replicas, a password), started
//! by the test with `redis-server --cluster-enabled yes` and `redis-cli --cluster create`. The
//! dispatcher and the workers reach it through `redis+cluster://` given one node that does not
//! hold tars's slot; mid-run the master holding `{tars}` is killed and its replica promoted.
//! Every task still ends done with exactly one result. The fleet connects as the README's ACL
//! user, so the documented permissions are shown to cover a cluster too.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fake_llm::{
    FakeLlm, Reply, many_todos_repo, models_reply, openai_completion, resolving_answer,
};
use crate::util::{Proc, cmd, free_port, run, wait_until};

const PASSWORD: &str = "cluster-test-password";
/// The fleet's own ACL user, made on every node with the README's `ACL SETUSER` line (ACLs are
/// per node: a cluster does not replicate them).
const TARS_PASSWORD: &str = "cluster-acl-pw-1618";

/// Six `redis-server`s in cluster mode on free loopback ports, made one cluster.
struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<(u16, Option<Proc>)>,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = free_port();
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir(&node_dir).expect("node dir");
            let child = Command::new("redis-server")
                .arg("-")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--repl-diskless-sync-delay", "0"])
                .arg("--dir")
                .arg(&node_dir)
                .arg("--logfile")
                .arg(node_dir.join("redis.log"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed: run scripts/setup-test-deps");
            // The password on standard input, as the compose and Swarm files give it.
            let mut child = child;
            {
                use std::io::Write;
                let mut stdin = child.stdin.take().expect("stdin");
                writeln!(stdin, "requirepass {PASSWORD}\nmasterauth {PASSWORD}").expect("config");
            }
            nodes.push((
                port,
                Some(Proc {
                    child,
                    name: format!("redis-server :{port}"),
                }),
            ));
        }
        let c = Cluster { dir, nodes };
        for (port, _) in &c.nodes {
            wait_until("redis-server", Duration::from_secs(20), || {
                c.cli(*port, &["PING"]).is_some_and(|o| o.contains("PONG"))
            });
        }
        let mut create = Command::new("redis-cli");
        create.args(["--no-auth-warning", "-a", PASSWORD, "--cluster", "create"]);
        for (port, _) in &c.nodes {
            create.arg(format!("127.0.0.1:{port}"));
        }
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = run(create);
        assert!(
            out.code == Some(0) && out.stdout.contains("All 16384 slots covered"),
            "{}",
            out.explain("redis-cli --cluster create")
        );
        for (port, _) in &c.nodes {
            wait_until(
                "cluster_state:ok on every node",
                Duration::from_secs(30),
                || {
                    c.cli(*port, &["CLUSTER", "INFO"])
                        .is_some_and(|o| o.contains("cluster_state:ok"))
                },
            );
        }
        let acl = crate::redis_tls::documented_acl(TARS_PASSWORD);
        for (port, _) in &c.nodes {
            let mut setuser = vec!["ACL", "SETUSER"];
            setuser.extend(acl.iter().map(String::as_str));
            assert_eq!(c.cli(*port, &setuser).as_deref().map(str::trim), Some("OK"));
        }
        // A replica fails over only once it has synced: until then its data is "too old".
        for (port, _) in &c.nodes {
            wait_until("every replica in sync", Duration::from_secs(30), || {
                c.cli(*port, &["INFO", "replication"]).is_some_and(|o| {
                    o.contains("role:master") && o.contains("connected_slaves:1")
                        || o.contains("role:slave") && o.contains("master_link_status:up")
                })
            });
        }
        c
    }

    /// `redis-cli -p PORT ARGS...`'s output, None when it fails.
    fn cli(&self, port: u16, args: &[&str]) -> Option<String> {
        let o = Command::new("redis-cli")
            .args(["--no-auth-warning", "-a", PASSWORD, "-p", &port.to_string()])
            .args(args)
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
            .filter(|s| !s.starts_with("ERR") && !s.contains("Could not connect"))
    }

    fn alive(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .filter(|(_, p)| p.is_some())
            .map(|(port, _)| *port)
    }

    /// The port of the master serving `slot`, as a live node's `CLUSTER NODES` tells it.
    fn master_of(&self, slot: u16) -> Option<u16> {
        let port = self.alive().next()?;
        let nodes = self.cli(port, &["CLUSTER", "NODES"])?;
        nodes.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let serves = f.get(8..)?.iter().any(|r| match r.split_once('-') {
                Some((a, b)) => {
                    a.parse::<u16>().is_ok_and(|a| a <= slot)
                        && b.parse::<u16>().is_ok_and(|b| slot <= b)
                }
                None => r.parse::<u16>() == Ok(slot),
            });
            let master = f.get(2)?.contains("master") && !f.get(2)?.contains("fail");
            (serves && master).then(|| f.get(1)?.split(['@', ':']).nth(1)?.parse().ok())?
        })
    }

    fn kill(&mut self, port: u16) {
        if let Some((_, p)) = self.nodes.iter_mut().find(|(p, _)| *p == port)
            && let Some(mut proc) = p.take()
        {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
    }

    /// A connection that follows the cluster (the test's own reads).
    fn conn(&self) -> redis::cluster::ClusterConnection {
        let nodes: Vec<String> = self
            .alive()
            .map(|p| format!("redis://:{PASSWORD}@127.0.0.1:{p}"))
            .collect();
        redis::cluster::ClusterClient::new(nodes)
            .and_then(|c| c.get_connection())
            .expect("cluster connection")
    }

    fn url_via(&self, port: u16) -> String {
        format!("redis+cluster://tars@127.0.0.1:{port}")
    }

    fn password_file(&self) -> std::path::PathBuf {
        let p = self.dir.path().join("password");
        std::fs::write(&p, TARS_PASSWORD).expect("password file");
        p
    }
}

fn hgetall(c: &mut redis::cluster::ClusterConnection, key: &str) -> HashMap<String, String> {
    redis::cmd("HGETALL").arg(key).query(c).unwrap_or_default()
}

fn log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The whole run through a cluster, its slot's master killed mid-run (see the module comment).
#[test]
fn a_run_survives_the_failover_of_the_master_holding_tars() {
    const TASKS: usize = 160;
    let mut cluster = Cluster::start();
    let slot: String = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("{tars}:runs")
        .query(&mut cluster.conn())
        .map(|n: u16| n.to_string())
        .expect("CLUSTER KEYSLOT");
    assert_eq!(slot, tars_fleet::queue::conn::TARS_SLOT.to_string());
    let slot = tars_fleet::queue::conn::TARS_SLOT;
    let first_master = cluster
        .master_of(slot)
        .expect("a master serves tars's slot");
    // The seed is a node that does not hold the slot: a plain client there got "MOVED 1040".
    let seed = cluster
        .alive()
        .find(|p| *p != first_master)
        .expect("another node");
    let url = cluster.url_via(seed);
    let password = cluster.password_file();
    // A plain URL at that node is refused with what to write instead (it used to fail later,
    // on every command, with "Moved: 1040").
    let mut plain = cmd("dispatcher");
    plain
        .env("TARS_REDIS__URL", format!("redis://tars@127.0.0.1:{seed}"))
        .env("TARS_REDIS__PASSWORD_FILE", &password)
        .arg("status");
    let out = run(plain);
    assert_ne!(out.code, Some(0));
    for part in ["node of a Redis Cluster", "redis+cluster://"] {
        assert!(out.stderr.contains(part), "{}", out.explain(part));
    }

    let llm = FakeLlm::start(|req, _| match req.path.as_str() {
        "/v1/chat/completions" => {
            std::thread::sleep(Duration::from_millis(150));
            Reply::Json {
                status: 200,
                body: openai_completion(&resolving_answer(&req.body)),
            }
        }
        _ => models_reply(),
    });
    let logs = tempfile::tempdir().expect("tempdir");
    let env = |c: &mut Command| {
        c.env("TARS_REDIS__URL", &url)
            .env("TARS_REDIS__PASSWORD_FILE", &password)
            .env("TARS_QUEUE__LEASE_SECS", "5");
    };
    let workers: Vec<Proc> = (0..2)
        .map(|i| {
            let f = std::fs::File::create(logs.path().join(format!("worker{i}"))).expect("log");
            let mut w = cmd("worker");
            env(&mut w);
            w.env("TARS_LLM__API", "openai")
                .env("TARS_LLM__URL", llm.url())
                .env("TARS_LLM__MODEL", "m")
                .env("TARS_WORKER__CONCURRENCY", "4")
                .stderr(Stdio::from(f));
            Proc {
                child: w.spawn().expect("spawn worker"),
                name: format!("worker{i}"),
            }
        })
        .collect();

    let repo = many_todos_repo(4, TASKS / 4);
    let mut d = cmd("dispatcher");
    env(&mut d);
    d.args(["run", "--wait", "--timeout", "300", "--out"])
        .arg(repo.path().join(".out"))
        .arg(repo.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let dispatcher = d.spawn().expect("spawn dispatcher");

    // Mid-run: kill the master holding {tars} once a quarter of the tasks are done.
    let mut c = cluster.conn();
    let mut run_id = String::new();
    wait_until(
        "a quarter of the run done",
        Duration::from_secs(120),
        || {
            let runs: Vec<String> = redis::cmd("ZRANGE")
                .arg("{tars}:runs")
                .arg(0)
                .arg(-1)
                .query(&mut c)
                .unwrap_or_default();
            let Some(r) = runs.last() else { return false };
            run_id = r.clone();
            let h = hgetall(&mut c, &format!("{{tars}}:run:{r}"));
            h.get("done")
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n >= TASKS / 4)
        },
    );
    let done_before: usize = hgetall(&mut c, &format!("{{tars}}:run:{run_id}"))
        .get("done")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let killed_at = Instant::now();
    cluster.kill(first_master);
    let promoted = loop {
        if let Some(p) = cluster.master_of(slot).filter(|p| *p != first_master) {
            break p;
        }
        if killed_at.elapsed() > Duration::from_secs(60) {
            let views: Vec<String> = cluster
                .alive()
                .map(|p| {
                    format!(
                        ":{p}\n{}",
                        cluster.cli(p, &["CLUSTER", "NODES"]).unwrap_or_default()
                    )
                })
                .collect();
            panic!(
                "no replica promoted within 60 s of killing :{first_master}:\n{}",
                views.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let failover = killed_at.elapsed();
    let mut c = cluster.conn();
    let done_after_failover: usize = hgetall(&mut c, &format!("{{tars}}:run:{run_id}"))
        .get("done")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);

    let out = dispatcher.wait_with_output().expect("dispatcher");
    let wall = started.elapsed();
    let worker_logs: String = (0..2)
        .map(|i| log(&logs.path().join(format!("worker{i}"))))
        .collect();
    assert!(
        out.status.success(),
        "dispatcher run: {}\n{}\nworkers:\n{worker_logs}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), run_id);

    // Every task done, exactly one result each.
    let attempts_over_one = crate::util::check_every_task_done_once(&mut c, &run_id, TASKS);
    assert!(
        !worker_logs.contains("NOPERM") && !worker_logs.contains("lacks a permission"),
        "the documented ACL user lacked a permission:\n{worker_logs}"
    );
    let wait_warnings = worker_logs.matches("acknowledged a write in time").count()
        + worker_logs
            .matches("WAIT for Redis replicas failed")
            .count();
    eprintln!(
        "redis cluster: {TASKS} tasks, 3 masters + 3 replicas, master :{first_master} of slot \
         {slot} killed at {done_before} done, replica :{promoted} promoted after {:.1} s \
         (cluster-node-timeout 2 s); done right after the failover {done_after_failover} (lost \
         {}); tasks attempted more than once {attempts_over_one}; WAIT warnings \
         {wait_warnings}; wall {:.1} s",
        failover.as_secs_f64(),
        done_before.saturating_sub(done_after_failover),
        wall.as_secs_f64()
    );
    drop(workers);
}
