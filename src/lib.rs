//! tars-fleet turns the TODO and FIXME comments of a codebase into checked patches, using a
//! local LLM, through a Redis queue served by any number of worker processes or containers.
//!
//! # Layout
//! One module per stage of a TODO's trip, in the order it takes them:
//! - [`scan`]: the language-aware, `.gitignore`-honouring scanner (walk, lex, tags, blocks,
//!   syntax trees); needs no Redis.
//! - [`task`]: the task a TODO becomes, and the checked [`task::Target`] a prompt and a patch
//!   are made against.
//! - [`queue`]: the Redis schema (key names, JSON values, a `{tars}` hash tag) and the Lua
//!   scripts that move a task between states atomically: delivery, runs, blobs, LLM permits,
//!   worker presence.
//! - [`worker`]: fetch, lease, attempt, health: a [`worker::Worker`] built from its parts and
//!   run until a shutdown future completes.
//! - [`llm`]: the two LLM backends, Ollama's native `/api/chat` and OpenAI-compatible
//!   `/v1/chat/completions`, with timeouts and in-place retries.
//! - [`prompt`]: what the model is asked.
//! - [`patch`]: the answer's code block, the gates it must pass, the diff and its check.
//! - [`verify`]: the verify stage's parts: the repository's check (`verify = "auto"`), a
//!   scratch tree at the scanned state, the check run with limits, the first error; the stage
//!   itself is `worker --role verify`.
//! - [`failure`]: failure kinds and the one function that decides retry-in-place, retry-later
//!   or fail.
//! - [`run`]: starting a run (all TODOs, or `--only-new`) and waiting for it.
//! - [`results`]: a run's patches and `summary.json` on disk.
//! - [`report`]: every human and JSON rendering of the dispatcher.
//! - [`apply`]: writing done patches into a git work tree.
//! - [`fleet`]: worker containers managed through Docker's API (bollard), found by label.
//!
//! Around them: [`config`] (layered configuration, validated once into a value nothing changes
//! afterwards), [`exit`] (the binaries' exit codes), [`time`] (timestamps), [`secret`]
//! (credentials kept out of logs, errors, Redis and files), [`tls`] (the rustls provider of
//! both `https://` and `rediss://`).
//!
//! The binaries in `src/bin` only parse arguments, load configuration, initialise tracing and
//! call into these modules.

pub mod apply;
pub mod config;
pub mod dashboard;
pub mod exit;
pub mod failure;
pub mod fleet;
pub mod git;
pub mod land;
pub mod llm;
pub mod patch;
pub mod prompt;
pub mod queue;
pub mod report;
pub mod results;
pub mod run;
pub mod scan;
pub mod secret;
pub mod stack;
pub mod task;
pub mod time;
pub mod tls;
pub mod verify;
pub mod worker;
