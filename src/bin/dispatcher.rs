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
    /// Write a run's patches and summary.json (what `run --wait` writes at the end).
    Results {
        run: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
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
    let cfg = Config::from_env(cli.config.as_deref(), &overrides)?;
    match cli.cmd {
        Cmd::Scan { path, json } => {
            let report = tars_fleet::scan::scan_path(&path, &cfg.scan.options())?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            dispatch::print_scan(&report, json, &mut out, &mut std::io::stderr())?;
        }
        Cmd::Run {
            path,
            wait,
            out,
            timeout,
        } => {
            // Check the path before touching Redis so the first error is the real one.
            tars_fleet::scan::scan_path(&path, &cfg.scan.options()).map(|_| ())?;
            let queue = Queue::connect(&cfg.redis.url, cfg.queue.retention_days).await?;
            let t0 = Instant::now();
            let started = dispatch::start_run(&queue, &cfg, &path).await?;
            println!("{}", started.run);
            eprintln!(
                "run {}: {} tasks enqueued ({} TODOs found in {} files)",
                started.run,
                started.added,
                started.tasks,
                started.report.files.len()
            );
            if wait {
                let st = dispatch::wait_run(&queue, &started.run, timeout.map(Duration::from_secs))
                    .await?;
                let dir = out.unwrap_or_else(|| PathBuf::from("tars-out").join(&started.run));
                let summary = dispatch::write_results(&queue, &started.run, &dir).await?;
                eprintln!(
                    "run {} finished in {:.1} s: {} done, {} failed, {} dead; patches and summary.json in {}",
                    st.run,
                    t0.elapsed().as_secs_f64(),
                    st.done,
                    st.failed,
                    st.dead,
                    dir.display()
                );
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
