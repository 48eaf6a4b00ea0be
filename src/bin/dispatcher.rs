//! `dispatcher`: scan a repository for TODOs, run them through the worker fleet, and report.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tars_fleet::config::{Config, Overrides};
use tars_fleet::dispatch;
use tars_fleet::queue::{Queue, TaskState};

#[derive(Parser)]
#[command(
    name = "dispatcher",
    version,
    about = "Turn TODO comments into checked patches"
)]
struct Cli {
    /// Configuration file (default: ./tars.toml if present; also TARS_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Redis URL, overriding redis.url.
    #[arg(long, global = true)]
    redis_url: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the TODOs of a repository (no Redis needed).
    Scan {
        #[arg(default_value = ".")]
        path: PathBuf,
        /// One JSON object per TODO.
        #[arg(long)]
        json: bool,
        /// Show each TODO's block and symbol as a run sends them to the LLM: parsed with
        /// tree-sitter for Rust, Python, JavaScript, TypeScript, Go, C, C++ and Java (slower).
        #[arg(long)]
        context: bool,
        #[command(flatten)]
        filter: ScanFilter,
    },
    /// Scan, create a run and enqueue one task per TODO; prints the run id.
    Run {
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Wait until every task finished, showing progress, then write the results.
        #[arg(long)]
        wait: bool,
        /// Where --wait writes <task-id>.patch and summary.json (default: tars-out/<run>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Give up waiting after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
        /// Skip TODOs already done in an earlier run of the same repository (same canonical
        /// path); failed, dead and cancelled ones are enqueued again. When nothing is left, no
        /// run is created and nothing is printed on stdout.
        #[arg(long)]
        only_new: bool,
        #[command(flatten)]
        filter: ScanFilter,
    },
    /// Counts per state of a run (the latest when RUN is omitted).
    Status {
        run: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run: queued tasks are dropped now, running ones at their next checkpoint.
    Cancel { run: String },
    /// Requeue a run's failed tasks (or dead ones with --dead) with a fresh attempt budget.
    Retry {
        run: String,
        /// Requeue dead-lettered tasks instead of failed ones.
        #[arg(long)]
        dead: bool,
    },
    /// Remove a run and its tasks from Redis.
    Purge { run: String },
    /// Write a run's done patches into the repository's working tree (git work trees only;
    /// files changed since the scan or with uncommitted changes are left alone).
    Apply {
        run: Option<String>,
        /// The repository (default: the path the run scanned).
        #[arg(long)]
        repo: Option<PathBuf>,
        /// Apply only these task ids (repeatable).
        #[arg(long = "task")]
        tasks: Vec<String>,
    },
    /// Manage worker containers through the Docker engine (DOCKER_HOST or the local socket).
    Fleet {
        #[command(subcommand)]
        cmd: FleetCmd,
    },
    /// Write a run's patches and summary.json (what `run --wait` writes at the end).
    Results {
        run: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Which files a scan looks at, on top of scan.include / scan.exclude.
#[derive(clap::Args)]
struct ScanFilter {
    /// Scan only files matching this gitignore-style glob, relative to PATH (repeatable).
    #[arg(long = "include", value_name = "GLOB")]
    include: Vec<String>,
    /// Skip files matching this gitignore-style glob, relative to PATH (repeatable; wins over
    /// --include).
    #[arg(long = "exclude", value_name = "GLOB")]
    exclude: Vec<String>,
}

#[derive(Subcommand)]
enum FleetCmd {
    /// Start N resource-limited worker containers on tars-network.
    Up {
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Memory limit per worker (docker syntax: 512m, 1g).
        #[arg(long, default_value = "512m", allow_hyphen_values = true)]
        memory: String,
        /// CPUs per worker (0.5, 2).
        #[arg(long, default_value = "1.0", allow_hyphen_values = true)]
        cpus: String,
        /// Process limit per worker.
        #[arg(long, default_value_t = 128)]
        pids: i64,
        #[arg(long, default_value = tars_fleet::fleet::DEFAULT_IMAGE)]
        image: String,
        /// KEY=VALUE for the workers, e.g. TARS_REDIS__URL=redis://redis:6379 (their view of
        /// the network); TARS_<SECTION>__<KEY> variables of this shell are passed on too.
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
    },
    /// Grow or shrink the fleet to N workers (shrinking hands tasks back gracefully).
    Scale { workers: usize },
    /// Per worker: container, state, limits, memory in use, tasks done, current task.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Stop and remove every worker container.
    Down,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TARS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(real_main(Cli::parse())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn real_main(cli: Cli) -> Result<()> {
    let mut overrides: Overrides = Vec::new();
    if let Some(u) = &cli.redis_url {
        overrides.push(("redis.url", u.clone()));
    }
    let mut cfg = Config::from_env(cli.config.as_deref(), &overrides)?;
    if let Cmd::Scan { filter, .. } | Cmd::Run { filter, .. } = &cli.cmd {
        cfg.scan.include.extend(filter.include.iter().cloned());
        cfg.scan.exclude.extend(filter.exclude.iter().cloned());
    }
    match cli.cmd {
        Cmd::Scan {
            path,
            json,
            context,
            ..
        } => {
            let opts = tars_fleet::scan::ScanOptions {
                keep_content: false,
                syntax_context: context,
                ..cfg.scan.options()
            };
            let report = tars_fleet::scan::scan_path(&path, &opts)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            dispatch::print_scan(&report, json, &mut out, &mut std::io::stderr())?;
        }
        Cmd::Run {
            path,
            wait,
            out,
            timeout,
            only_new,
            ..
        } => {
            // Scan before touching Redis so a bad path or glob is the first error reported.
            let t0 = Instant::now();
            let report = tars_fleet::scan::scan_path(&path, &cfg.scan.options())?;
            let queue = Queue::connect(&cfg.redis.url, cfg.queue.retention_days).await?;
            let opts = dispatch::RunOptions { only_new };
            let started = dispatch::start_run(&queue, &path, report, opts).await?;
            let files = started.report.files.len();
            let skipped =
                only_new.then(|| dispatch::skipped_done_line(started.skipped_done as u64));
            let Some(run) = started.run else {
                // Nothing to wait for: say so and succeed, without a run that would only shadow
                // the latest real one for `status`, `results` and `apply`.
                eprintln!(
                    "nothing to do: {} TODOs found in {files} files, {}; no run created{}",
                    started.tasks,
                    skipped.unwrap_or_default(),
                    match started.earlier_runs.last() {
                        Some(r) => format!(" (latest run of this repository: {r})"),
                        None => String::new(),
                    }
                );
                return Ok(());
            };
            println!("{run}");
            eprintln!(
                "run {run}: {} tasks enqueued ({} TODOs found in {files} files)",
                started.added, started.tasks
            );
            if let Some(line) = &skipped {
                eprintln!("  {line}");
            }
            if wait {
                let st = dispatch::wait_run(&queue, &run, timeout.map(Duration::from_secs)).await?;
                let dir = out.unwrap_or_else(|| PathBuf::from("tars-out").join(&run));
                let summary = dispatch::write_results(&queue, &run, &dir).await?;
                let cancelled = if st.cancelled > 0 {
                    format!(", {} cancelled", st.cancelled)
                } else {
                    String::new()
                };
                eprintln!(
                    "run {} finished in {:.1} s: {} done, {} failed, {} dead{cancelled}; patches and summary.json in {}",
                    st.run,
                    t0.elapsed().as_secs_f64(),
                    st.done,
                    st.failed,
                    st.dead,
                    dir.display()
                );
                if let Some(line) = &skipped {
                    eprintln!("  {line}");
                }
                for (reason, n) in dispatch::failure_reasons(&summary) {
                    eprintln!("  {n} x {reason}");
                }
            }
        }
        Cmd::Status { run, json } => {
            let queue = Queue::connect(&cfg.redis.url, cfg.queue.retention_days).await?;
            let run = dispatch::resolve_run(&queue, run.as_deref()).await?;
            let st = queue.run_status(&run).await?;
            if json {
                println!("{}", serde_json::to_string(&st)?);
            } else {
                print!("{}", dispatch::format_status(&st));
                let workers = queue.heartbeats().await.unwrap_or_default();
                println!("workers {}", workers.len());
                for w in workers {
                    let get = |k: &str| w.get(k).cloned().unwrap_or_default();
                    println!(
                        "  {}  host {}  {}  done {}  failed {}  current {}",
                        get("id"),
                        get("host"),
                        get("state"),
                        get("done"),
                        get("failed"),
                        if get("current").is_empty() {
                            "-".into()
                        } else {
                            get("current")
                        }
                    );
                }
            }
        }
        Cmd::Cancel { run } => {
            let queue = Queue::connect(&cfg.redis.url, cfg.queue.retention_days).await?;
            let n = queue.cancel_run(&run).await?;
            eprintln!(
                "run {run} cancelled: {n} queued tasks dropped; running tasks stop at their next checkpoint"
            );
        }
        Cmd::Retry { run, dead } => {
            let queue = Queue::connect(&cfg.redis.url, cfg.queue.retention_days).await?;
            let state = if dead {
                TaskState::Dead
            } else {
                TaskState::Failed
            };
            let n = queue.retry_run(&run, state).await?;
            eprintln!("run {run}: {n} {} tasks requeued", state.as_str());
        }
        Cmd::Purge { run } => {
            let queue = Queue::connect(&cfg.redis.url, cfg.queue.retention_days).await?;
            let n = queue.purge_run(&run).await?;
            eprintln!("run {run} purged: {n} tasks removed");
        }
        Cmd::Apply { run, repo, tasks } => {
            let queue = Queue::connect(&cfg.redis.url, cfg.queue.retention_days).await?;
            let run = dispatch::resolve_run(&queue, run.as_deref()).await?;
            let st = queue.run_status(&run).await?;
            let repo = repo.unwrap_or_else(|| PathBuf::from(&st.repo));
            let records = queue.run_tasks(&run).await?;
            let applied = dispatch::apply_patches(&repo, &records, &tasks)?;
            let written = applied.iter().filter(|a| a.skipped.is_none()).count();
            for a in &applied {
                match &a.skipped {
                    None => eprintln!("applied  {} {}", a.task, a.path),
                    Some(why) => eprintln!("skipped  {} {}: {why}", a.task, a.path),
                }
            }
            eprintln!(
                "{written} of {} patches applied to {}; review with `git diff`",
                applied.len(),
                repo.display()
            );
        }
        Cmd::Fleet { cmd } => fleet(cmd, &cfg).await?,
        Cmd::Results { run, out } => {
            let queue = Queue::connect(&cfg.redis.url, cfg.queue.retention_days).await?;
            let run = dispatch::resolve_run(&queue, run.as_deref()).await?;
            let dir = out.unwrap_or_else(|| PathBuf::from("tars-out").join(&run));
            let s = dispatch::write_results(&queue, &run, &dir)
                .await
                .with_context(|| format!("writing the results of run {run}"))?;
            eprintln!("{} tasks; results in {}", s.tasks.len(), dir.display());
        }
    }
    Ok(())
}

async fn fleet(cmd: FleetCmd, cfg: &Config) -> Result<()> {
    use tars_fleet::fleet::{Fleet, FleetSpec, Limits};
    match cmd {
        FleetCmd::Up {
            workers,
            memory,
            cpus,
            pids,
            image,
            env,
        } => {
            let limits = Limits::parse(&memory, &cpus, pids)?;
            for e in &env {
                if !e.contains('=') {
                    anyhow::bail!("--env {e:?} is not KEY=VALUE");
                }
            }
            let fleet = Fleet::connect().await?;
            let t0 = Instant::now();
            let mut all: Vec<String> = std::env::vars()
                .filter(|(k, _)| k.strip_prefix("TARS_").is_some_and(|r| r.contains("__")))
                .filter(|(k, _)| !env.iter().any(|e| e.starts_with(&format!("{k}="))))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            all.extend(env);
            let spec = FleetSpec {
                image,
                limits,
                env: all,
                stop_timeout: cfg.worker.shutdown_grace_secs as i64 + 10,
            };
            let started = fleet.up(&spec, workers).await?;
            eprintln!(
                "fleet: {} started ({}) in {:.1} s; {} running",
                started.len(),
                started.join(", "),
                t0.elapsed().as_secs_f64(),
                workers
            );
        }
        FleetCmd::Scale { workers } => {
            let fleet = Fleet::connect().await?;
            let (added, removed) = fleet.scale(workers).await?;
            eprintln!(
                "fleet: {workers} workers ({} started, {} stopped)",
                added.len(),
                removed.len()
            );
        }
        FleetCmd::Status { json } => {
            let fleet = Fleet::connect().await?;
            let heartbeats = match Queue::connect(&cfg.redis.url, cfg.queue.retention_days).await {
                Ok(q) => q.heartbeats().await.unwrap_or_default(),
                Err(e) => {
                    eprintln!("note: no queue activity shown: {e}");
                    Vec::new()
                }
            };
            let workers = fleet.status(&heartbeats).await?;
            if json {
                println!("{}", serde_json::to_string(&workers)?);
            } else {
                print!("{}", tars_fleet::fleet::format_status(&workers));
            }
        }
        FleetCmd::Down => {
            let fleet = Fleet::connect().await?;
            let removed = fleet.down().await?;
            eprintln!("fleet: {} workers stopped and removed", removed.len());
        }
    }
    Ok(())
}
