//! The dispatcher's command line: what each subcommand takes. Parsing only; `main.rs` runs
//! them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dispatcher",
    version,
    about = "Turn TODO comments into checked patches"
)]
pub struct Cli {
    /// Configuration file (default: ./tars.toml if present; also TARS_CONFIG).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Redis URL, overriding redis.url.
    #[arg(long, global = true)]
    pub redis_url: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
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
        /// List the languages the scanner knows (with --json, one object per language) and
        /// where each definition comes from: the hand-written table or tokei's database.
        #[arg(long)]
        languages: bool,
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
        /// Verify each patch with the repository's own check, run by verifiers (`worker
        /// --role verify`): a shell command (`--verify 'cargo test -q'`), or `auto` to pick one
        /// from the repository (verify.command).
        #[arg(long, value_name = "COMMAND|auto")]
        verify: Option<String>,
        /// Do not verify, whatever verify.command says.
        #[arg(long, conflicts_with = "verify")]
        no_verify: bool,
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
        /// The repository (default: the path the run scanned, when the current directory is
        /// inside it).
        #[arg(long)]
        repo: Option<PathBuf>,
        /// Apply only these task ids (repeatable).
        #[arg(long = "task")]
        tasks: Vec<String>,
        /// Also apply patches that were not verified (failed baseline), in a run that
        /// verifies; by default only patches that passed the check are applied.
        #[arg(long)]
        unverified: bool,
    },
    /// Land the run's done patches as commits on a review branch (one commit per patch, from
    /// the commit the run scanned), without touching the work tree, the index or HEAD.
    Land {
        run: Option<String>,
        /// The branch to create (default: tars/<run>; with --mbox alone, none).
        #[arg(long)]
        branch: Option<String>,
        /// The repository (default: the path the run scanned, when the current directory is
        /// inside it).
        #[arg(long)]
        repo: Option<PathBuf>,
        /// Reset the branch if it exists.
        #[arg(long)]
        force: bool,
        /// Also land patches that were not verified, in a run that verifies.
        #[arg(long)]
        unverified: bool,
        /// Author and committer, 'Name <email>' (default: the repository's git config).
        #[arg(long)]
        author: Option<String>,
        /// Build on this commit instead of the one the run recorded.
        #[arg(long, value_name = "REV")]
        base: Option<String>,
        /// Also (or, without --branch, only) write the commits as an mbox for `git am`.
        #[arg(long, value_name = "FILE")]
        mbox: Option<PathBuf>,
        /// Write a Markdown review page: each patch with its TODO, diff and verification.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Print what landed as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Serve a web dashboard of runs, tasks, workers and endpoints, with Prometheus metrics
    /// at /metrics; read-only unless an admin token is given.
    Dashboard {
        /// Address to listen on (default: loopback only).
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: std::net::SocketAddr,
        /// A file holding the admin token that cancel, retry and purge ask for (also
        /// TARS_DASHBOARD_TOKEN_FILE). Without one the dashboard is read-only.
        #[arg(long, value_name = "FILE", env = "TARS_DASHBOARD_TOKEN_FILE")]
        admin_token_file: Option<PathBuf>,
        /// How long the fleet keeps its per-minute counts of finished tasks, in hours.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=720))]
        history_hours: u64,
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
pub struct ScanFilter {
    /// Scan only files matching this gitignore-style glob, relative to PATH (repeatable).
    #[arg(long = "include", value_name = "GLOB")]
    pub include: Vec<String>,
    /// Skip files matching this gitignore-style glob, relative to PATH (repeatable; wins over
    /// --include).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub exclude: Vec<String>,
}

#[derive(Subcommand)]
pub enum FleetCmd {
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
