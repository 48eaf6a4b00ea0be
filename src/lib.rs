//! tars-fleet turns the TODO and FIXME comments of a codebase into checked patches, using a
//! local LLM, through a Redis queue served by any number of worker processes or containers.
//!
//! # Layout
//! - [`config`]: layered configuration (defaults < file < `TARS_*` environment < flags), validated
//!   once so every later stage can trust it.
//! - [`scan`]: the language-aware, `.gitignore`-honouring TODO scanner; needs no Redis.
//! - [`queue`]: the Redis schema (documented key names, JSON values, a `{tars}` hash tag) and the
//!   Lua scripts that move a task between states atomically.
//! - [`llm`]: the two LLM backends, Ollama's native `/api/chat` and OpenAI-compatible
//!   `/v1/chat/completions`, with timeouts and retries.
//! - [`edit`]: prompt building, answer parsing, splicing the rewritten block back, the unified
//!   diff and the gates a patch must pass.
//! - [`worker`]: the worker loop: fetch, lease, call the LLM, validate, complete.
//! - [`dispatch`]: run bookkeeping for the dispatcher CLI: enqueue (all TODOs, or with
//!   `--only-new` those not already done in an earlier run of the repository), wait, status,
//!   results.
//! - [`fleet`]: worker containers managed through Docker's API (bollard), found by label.
//!
//! The binaries in `src/bin` only parse arguments, load configuration, initialise tracing and
//! call into these modules.

pub mod config;
pub mod dispatch;
pub mod edit;
pub mod fleet;
pub mod llm;
pub mod queue;
pub mod scan;
pub mod worker;
