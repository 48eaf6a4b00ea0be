//! `dispatcher`: scan a repository for TODOs, run them through the worker fleet, and report.
//! Thin by design: parse the flags, load the configuration once, run one short function per
//! subcommand from the library, and map errors to the README's exit codes.

mod cli;
/// The worker's `main`, so that this one binary is both programs: called as `worker` (a
/// symlink, as in the image, which then carries one 21 MB binary instead of two), it is the
/// worker. `cargo install` still installs both names as binaries of their own.
#[path = "../worker.rs"]
mod worker;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use tars_fleet::config::{Config, Overrides};
use tars_fleet::exit::ExitCode;
use tars_fleet::fleet::{Fleet, FleetError, FleetSpec, Limits};
use tars_fleet::queue::{Queue, RunVerify, TaskState};
use tars_fleet::run::{self, RunOptions};
use tars_fleet::scan::{self, ScanOptions};
use tars_fleet::{apply, land, report, results};

use cli::{Cli, Cmd, FleetCmd};

fn main() -> std::process::ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if Path::new(&argv0).file_name() == Some("worker".as_ref()) {
        return worker::main();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TARS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .fmt_fields(report::log_fields())
        .with_writer(report::LogWriter)
        // Colour codes only for a person at a terminal, not in `docker logs` or a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(
                report::stderr(),
                "error: cannot start the async runtime: {e}"
            );
            return ExitCode::Failure.into();
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => code.into(),
        Err(e) => {
            let _ = writeln!(
                report::stderr(),
                "error: {}",
                report::error_message(e.chain())
            );
            ExitCode::of_chain(e.chain()).into()
        }
    }
}

/// Loads the configuration with the flags merged in, then runs the subcommand.
async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let mut flags = Overrides::default();
    flags.set("redis.url", cli.redis_url);
    if let Cmd::Scan { filter, .. } | Cmd::Run { filter, .. } = &cli.cmd {
        flags.include = filter.include.clone();
        flags.exclude = filter.exclude.clone();
    }
    if let Cmd::Run { verify, .. } = &cli.cmd {
        flags.set("verify.command", verify.clone());
    }
    let cfg = Config::from_env(cli.config.as_deref(), &flags)?;
    match cli.cmd {
        Cmd::Scan {
            languages: true,
            json,
            ..
        } => {
            let mut out = std::io::BufWriter::new(report::stdout());
            report::print_languages(&scan::language_list(), json, &mut out)?;
            out.flush()?;
            Ok(ExitCode::Success)
        }
        Cmd::Scan {
            path,
            json,
            context,
            ..
        } => scan_cmd(&cfg, &path, json, context),
        Cmd::Run {
            path,
            wait,
            out,
            timeout,
            only_new,
            no_verify,
            ..
        } => run_cmd(&cfg, &path, wait, out, timeout, only_new, no_verify).await,
        Cmd::Status { run, json } => status_cmd(&cfg, run, json).await,
        Cmd::Cancel { run } => cancel_cmd(&cfg, &run).await,
        Cmd::Retry { run, dead } => retry_cmd(&cfg, &run, dead).await,
        Cmd::Purge { run } => purge_cmd(&cfg, &run).await,
        Cmd::Apply {
            run,
            repo,
            tasks,
            unverified,
        } => apply_cmd(&cfg, run, repo, &tasks, unverified).await,
        Cmd::Land {
            run,
            branch,
            repo,
            force,
            unverified,
            author,
            base,
            mbox,
            report,
            json,
        } => {
            let opts = land::LandOptions {
                branch,
                force,
                unverified,
                author,
                base,
                mbox,
                report,
            };
            land_cmd(&cfg, run, repo, &opts, json).await
        }
        Cmd::Results { run, out } => results_cmd(&cfg, run, out).await,
        Cmd::Dashboard {
            listen,
            admin_token_file,
            history_hours,
        } => dashboard_cmd(&cfg, listen, admin_token_file, history_hours).await,
        Cmd::Fleet { cmd } => fleet_cmd(&cfg, cmd).await,
    }
}

fn scan_cmd(cfg: &Config, path: &Path, json: bool, context: bool) -> Result<ExitCode> {
    let opts = ScanOptions {
        keep_content: false,
        syntax_context: context,
        ..cfg.scan.clone()
    };
    let report = scan::scan_path(path, &opts)?;
    let mut out = std::io::BufWriter::new(report::stdout());
    report::print_scan(&report, json, &mut out, &mut report::stderr())?;
    out.flush()?;
    Ok(ExitCode::Success)
}

async fn run_cmd(
    cfg: &Config,
    path: &Path,
    wait: bool,
    out: Option<PathBuf>,
    timeout: Option<u64>,
    only_new: bool,
    no_verify: bool,
) -> Result<ExitCode> {
    // Scan before touching Redis so a bad path is the first error reported.
    let t0 = Instant::now();
    let report = scan::scan_path(path, &cfg.scan)?;
    let verify = match no_verify {
        true => None,
        false => tars_fleet::verify::resolve(cfg.verify.command.as_deref(), path)?,
    };
    let queue = Queue::open(cfg).await?;
    if let Some(v) = &verify {
        let verifiers = queue.heartbeats().await.unwrap_or_default();
        let alive = verifiers
            .iter()
            .any(|w| w.get("role").map(String::as_str) == Some("verify"));
        write!(report::stderr(), "{}", report::verify_plan(v, alive))?;
    }
    let opts = RunOptions {
        only_new,
        verify: verify.map(|v| RunVerify {
            command: v.command,
            repairs: cfg.verify.repairs,
            repo: String::new(),
        }),
    };
    let started = run::start_run(&queue, path, report, opts).await?;
    let Some(run) = &started.run else {
        // Nothing to wait for: say so and succeed, without a run that would only shadow the
        // latest real one for `status`, `results` and `apply`.
        writeln!(report::stderr(), "{}", report::nothing_to_do(&started))?;
        return Ok(ExitCode::Success);
    };
    writeln!(report::stdout(), "{run}")?;
    write!(
        report::stderr(),
        "{}",
        report::run_started(run, &started, only_new)
    )?;
    if !wait {
        return Ok(ExitCode::Success);
    }
    // Checked before the wait, so a planted `tars-out` link is reported at once.
    let dir = match out {
        Some(d) => d,
        None => results::default_dir(run)?,
    };
    let mut progress = report::Progress::new();
    let timeout = timeout.map(Duration::from_secs);
    let st = run::wait_run(&queue, run, timeout, |ev| progress.show(ev)).await?;
    let summary = results::write_results(&queue, run, &dir).await?;
    let secs = t0.elapsed().as_secs_f64();
    write!(
        report::stderr(),
        "{}",
        report::run_finished(&st, secs, &dir.display().to_string(), &summary)
    )?;
    Ok(if st.failures() > 0 {
        ExitCode::RunFailed
    } else {
        ExitCode::Success
    })
}

async fn status_cmd(cfg: &Config, run: Option<String>, json: bool) -> Result<ExitCode> {
    let queue = Queue::open(cfg).await?;
    let run = run::resolve_run(&queue, run.as_deref()).await?;
    let st = run::run_status(&queue, &run, cfg.queue.retention_days).await?;
    let endpoints = queue.llm_endpoint_status().await.unwrap_or_default();
    if json {
        let mut v = serde_json::to_value(&st)?;
        v["endpoints"] = serde_json::to_value(&endpoints)?;
        report::write_json(&mut report::stdout(), &v)?;
    } else {
        write!(report::stdout(), "{}", report::format_status(&st))?;
        let workers = queue.heartbeats().await.unwrap_or_default();
        write!(report::stdout(), "{}", report::format_workers(&workers))?;
        write!(report::stdout(), "{}", report::format_endpoints(&endpoints))?;
    }
    Ok(ExitCode::Success)
}

async fn cancel_cmd(cfg: &Config, run: &str) -> Result<ExitCode> {
    let n = Queue::open(cfg).await?.cancel_run(run).await?;
    writeln!(
        report::stderr(),
        "run {run} cancelled: {n} queued tasks dropped; running tasks stop at their next checkpoint"
    )?;
    Ok(ExitCode::Success)
}

async fn retry_cmd(cfg: &Config, run: &str, dead: bool) -> Result<ExitCode> {
    let state = if dead {
        TaskState::Dead
    } else {
        TaskState::Failed
    };
    let n = Queue::open(cfg).await?.retry_run(run, state).await?;
    writeln!(report::stderr(), "run {run}: {n} {state} tasks requeued")?;
    Ok(ExitCode::Success)
}

async fn purge_cmd(cfg: &Config, run: &str) -> Result<ExitCode> {
    let n = Queue::open(cfg).await?.purge_run(run).await?;
    writeln!(report::stderr(), "run {run} purged: {n} tasks removed")?;
    Ok(ExitCode::Success)
}

/// The run (default: the latest), the repository `apply` and `land` may write (see
/// [`apply::chosen_repo`]) and the run's tasks.
async fn run_in_repo(
    cfg: &Config,
    run: Option<String>,
    repo: Option<PathBuf>,
) -> Result<(
    tars_fleet::queue::RunStatus,
    PathBuf,
    Vec<tars_fleet::queue::TaskRecord>,
)> {
    let queue = Queue::open(cfg).await?;
    let run = run::resolve_run(&queue, run.as_deref()).await?;
    let st = queue.run_status(&run).await?;
    let repo = apply::chosen_repo(repo.as_deref(), &run, &st.repo, &std::env::current_dir()?)?;
    let records = queue.run_tasks(&run).await?;
    Ok((st, repo, records))
}

async fn apply_cmd(
    cfg: &Config,
    run: Option<String>,
    repo: Option<PathBuf>,
    tasks: &[String],
    unverified: bool,
) -> Result<ExitCode> {
    let (st, repo, records) = run_in_repo(cfg, run, repo).await?;
    let verified_only = st.verify.is_some() && !unverified;
    let applied = apply::apply_patches(&repo, &records, tasks, verified_only)?;
    write!(
        report::stderr(),
        "{}",
        report::applied(&applied, &repo.display().to_string())
    )?;
    Ok(ExitCode::Success)
}

async fn land_cmd(
    cfg: &Config,
    run: Option<String>,
    repo: Option<PathBuf>,
    opts: &land::LandOptions,
    json: bool,
) -> Result<ExitCode> {
    let (st, repo, records) = run_in_repo(cfg, run, repo).await?;
    let info = land::RunInfo {
        run: st.run.clone(),
        commit: st.commit.clone(),
        verify_command: st.verify.as_ref().map(|v| v.command.clone()),
    };
    let landed = land::land(&repo, &info, &records, opts)?;
    write!(report::stderr(), "{}", report::landed(&landed))?;
    if json {
        // Paths and reasons come from Redis: escaped as every JSON output is.
        report::write_json(&mut report::stdout(), &landed)?;
    }
    Ok(if landed.landed() < landed.patches.len() {
        ExitCode::SomeSkipped
    } else {
        ExitCode::Success
    })
}

async fn dashboard_cmd(
    cfg: &Config,
    listen: std::net::SocketAddr,
    token_file: Option<PathBuf>,
    history_hours: u64,
) -> Result<ExitCode> {
    let token = token_file
        .map(|p| tars_fleet::config::read_secret("--admin-token-file", &p))
        .transpose()?;
    let queue = Queue::open(cfg).await?;
    // A Redis user that may only read still gets a read-only dashboard.
    if let Err(e) = queue.set_history_window(history_hours * 3600).await {
        tracing::warn!(error = %e, "cannot set the history window; the fleet keeps its current one");
    }
    writeln!(
        report::stderr(),
        "dashboard on http://{listen}/ ({}); Ctrl-C stops it",
        if token.is_some() {
            "actions need the admin token"
        } else {
            "read-only"
        }
    )?;
    tars_fleet::dashboard::serve(queue, listen, token, async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    })
    .await?;
    Ok(ExitCode::Success)
}

async fn results_cmd(cfg: &Config, run: Option<String>, out: Option<PathBuf>) -> Result<ExitCode> {
    let queue = Queue::open(cfg).await?;
    let run = run::resolve_run(&queue, run.as_deref()).await?;
    let dir = match out {
        Some(d) => d,
        None => results::default_dir(&run)?,
    };
    let s = results::write_results(&queue, &run, &dir)
        .await
        .with_context(|| format!("writing the results of run {run}"))?;
    writeln!(
        report::stderr(),
        "{} tasks; results in {}",
        s.tasks.len(),
        dir.display()
    )?;
    Ok(ExitCode::Success)
}

async fn fleet_cmd(cfg: &Config, cmd: FleetCmd) -> Result<ExitCode> {
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
            if let Some(bad) = env.iter().find(|e| !e.contains('=')) {
                anyhow::bail!("--env {bad:?} is not KEY=VALUE");
            }
            // Secrets become files mounted into the workers, never environment values; checked
            // before the engine is asked anything.
            let read = |key: &'static str, path: &std::path::Path| {
                tars_fleet::config::read_secret(key, path)
                    .map_err(|e| FleetError::SecretFile(e.to_string()))
            };
            // Not `env::vars()`, which panics on a variable that is not UTF-8; a `TARS_` one
            // was refused with the configuration.
            let shell = std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
            let worker_env = tars_fleet::fleet::worker_env(shell, env, &read)?;
            let fleet = Fleet::connect().await?;
            let t0 = Instant::now();
            let spec = FleetSpec {
                image,
                limits,
                env: worker_env.env,
                secrets: worker_env.secrets,
                mounts: Vec::new(),
                stop_timeout: cfg.worker.shutdown_grace_secs as i64 + 10,
            };
            let started = fleet.up(&spec, workers).await?;
            writeln!(
                report::stderr(),
                "fleet: {} started ({}) in {:.1} s; {workers} running",
                started.len(),
                report::shown(&started.join(", ")),
                t0.elapsed().as_secs_f64(),
            )?;
        }
        FleetCmd::Scale { workers } => {
            let (added, removed) = Fleet::connect().await?.scale(workers).await?;
            writeln!(
                report::stderr(),
                "fleet: {workers} workers ({} started, {} stopped)",
                added.len(),
                removed.len()
            )?;
        }
        FleetCmd::Status { json } => {
            let fleet = Fleet::connect().await?;
            let heartbeats = match Queue::open(cfg).await {
                Ok(q) => q.heartbeats().await.unwrap_or_default(),
                Err(e) => {
                    writeln!(
                        report::stderr(),
                        "note: no queue activity shown: {}",
                        report::shown(&e.to_string())
                    )?;
                    Vec::new()
                }
            };
            let workers = fleet.status(&heartbeats).await?;
            if json {
                report::write_json(&mut report::stdout(), &workers)?;
            } else {
                write!(report::stdout(), "{}", report::fleet_status(&workers))?;
            }
        }
        FleetCmd::Down => {
            let removed = Fleet::connect().await?.down().await?;
            writeln!(
                report::stderr(),
                "fleet: {} workers stopped and removed",
                removed.len()
            )?;
        }
    }
    Ok(ExitCode::Success)
}
