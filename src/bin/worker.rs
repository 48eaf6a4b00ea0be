//! `worker`: takes tasks from Redis, asks the LLM, records checked patches. Run as many as the
//! LLM server can serve; each exits 0 on SIGTERM after handing back what it could not finish.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use tars_fleet::config::{Config, Overrides};
use tokio_util::sync::CancellationToken;

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
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TARS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
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
    let cli = Cli::parse();
    if cli.health {
        return match tars_fleet::worker::check_health() {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match rt.block_on(real_main(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn real_main(cli: Cli) -> Result<()> {
    let mut overrides: Overrides = Vec::new();
    if let Some(c) = cli.concurrency {
        overrides.push(("worker.concurrency", c.to_string()));
    }
    if let Some(u) = cli.redis_url {
        overrides.push(("redis.url", u));
    }
    let cfg = Config::from_env(cli.config.as_deref(), &overrides)?;
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: stopping");
        signal.cancel();
    });
    tars_fleet::worker::run(cfg, shutdown).await?;
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
