//! Integration tests: one target, shared helpers (tests/integration/util.rs), real processes.

mod apply;
mod apply_guard;
mod apply_hostile;
mod bad_input;
mod crash_safety;
mod docker;
mod e2e;
mod fake_llm;
mod llm_backpressure;
mod llm_ollama;
mod only_new;
mod queue_redis;
mod redis_faults;
mod redis_tls;
mod reliability;
mod run_control;
mod run_lifecycle;
mod scan_cli;
mod scan_corpus;
mod scan_hostile;
mod secret_redaction;
mod terminal_paths;
mod untrusted_text;
mod util;
mod verify;
mod worker_inprocess;
