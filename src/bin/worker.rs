//! `worker`: takes tasks from Redis, asks the LLM, records checked patches. Run as many as the
//! LLM server can serve; each exits 0 on SIGTERM after handing back what it could not finish.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use tars_fleet::config::{Config, Overrides};
use tars_fleet::exit::ExitCode;
use tars_fleet::report;
use tars_fleet::worker::Worker;

#[derive(Parser)]
#[command(
    name = "worker",
    version,
    about = "Turn queued TODO tasks into patches with an LLM"
)]
struct Cli {
    /// Configuration file (default: ./tars.toml if present; also TARS_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Tasks run at once by this process (worker.concurrency).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Redis URL (redis.url).
    #[arg(long)]
    redis_url: Option<String>,
    /// Exit 0 if this container's worker reached Redis recently (a HEALTHCHECK command).
    #[arg(long)]
    health: bool,
    /// The stage served: `llm` (ask the model, gate the answer) or `verify` (check gated
    /// patches with the repository's own build and tests).
    #[arg(long, value_enum, default_value = "llm")]
    role: Role,
    /// verify: a directory the verified repositories lie under (repeatable; verify.roots;
    /// default: the current directory). Runs of repositories elsewhere are refused.
    #[arg(long = "root", value_name = "DIR")]
    roots: Vec<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    Llm,
    Verify,
}

/// `pub`: the `dispatcher` binary calls it when it is run under the name `worker`.
pub fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TARS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
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
    if cli.health {
        return match tars_fleet::worker::check_health() {
            Ok(()) => ExitCode::Success.into(),
            Err(e) => {
                let _ = writeln!(
                    report::stderr(),
                    "unhealthy: {}",
                    report::shown(&e.to_string())
                );
                ExitCode::Failure.into()
            }
        };
    }
    match rt.block_on(real_main(cli)) {
        Ok(()) => ExitCode::Success.into(),
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

async fn real_main(cli: Cli) -> Result<()> {
    let mut flags = Overrides::default();
    flags
        .set("worker.concurrency", cli.concurrency)
        .set("redis.url", cli.redis_url);
    let mut cfg = Config::from_env(cli.config.as_deref(), &flags)?;
    if !cli.roots.is_empty() {
        cfg.verify.roots = cli.roots;
    }
    // Connecting may wait for an LLM server that is not up yet: a signal meanwhile stops it.
    let connecting = async {
        match cli.role {
            Role::Llm => Worker::connect(cfg).await,
            Role::Verify => Worker::connect_verifier(cfg).await,
        }
    };
    let worker = tokio::select! {
        w = connecting => w?,
        _ = wait_for_signal() => {
            tracing::info!("signal received before the worker started: stopping");
            return Ok(());
        }
    };
    worker
        .run(async {
            wait_for_signal().await;
            tracing::info!("signal received: stopping");
        })
        .await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
