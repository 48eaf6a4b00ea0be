//! The Lua scripts that move a task between states, each one atomic: the task's hash, the
//! run's counters, the streams and the result log change together or not at all.
//!
//! Every script is the shared prelude (`lua/prelude.lua`) after a header of constants rendered
//! here from the Rust definitions (key prefix, stream caps, the terminal states), so that a
//! name or a limit is written once. Scripts are loaded lazily and re-sent by redis-rs when a
//! restarted server answers `NOSCRIPT`.

use std::sync::LazyLock;

use redis::Script;

use super::keys::PREFIX;
use super::model::TaskState;

/// Entries kept in the result and dead-letter streams (`XADD ... MAXLEN ~`).
pub const LOG_MAXLEN: usize = 100_000;

/// The constants every script may use, as Lua.
fn header() -> String {
    let terminal: Vec<String> = TaskState::ALL
        .into_iter()
        .filter(|s| s.is_terminal())
        .map(|s| format!("'{s}'"))
        .collect();
    format!(
        "local PREFIX = '{PREFIX}'\nlocal LOG_MAXLEN = {LOG_MAXLEN}\nlocal TERMINAL_STATES = {{{}}}\n",
        terminal.join(", ")
    )
}

fn script(body: &str) -> Script {
    Script::new(&format!(
        "{}{}\n{body}",
        header(),
        include_str!("lua/prelude.lua")
    ))
}

macro_rules! scripts {
    ($($(#[$doc:meta])* $name:ident = $file:literal;)*) => {
        $(
            $(#[$doc])*
            pub static $name: LazyLock<Script> =
                LazyLock::new(|| script(include_str!(concat!("lua/", $file))));
        )*
    };
}

scripts! {
    /// Adds a task to a run (idempotent on the task id).
    ENQUEUE = "enqueue.lua";
    /// Creates a run's hash under a fresh id and lists it.
    CREATE_RUN = "create_run.lua";
    /// A worker takes a delivered task (or skips, or dead-letters it).
    START = "start.lua";
    /// Records a final state with its fields.
    COMPLETE = "complete.lua";
    /// Records a retryable failure: delayed retry or dead letter.
    RETRY = "retry.lua";
    /// Moves due retries back onto the task stream.
    PROMOTE = "promote.lua";
    /// Hands an in-flight task back without counting the attempt.
    RELEASE = "release.lua";
    /// Renews a lease only while the caller owns the delivery.
    RENEW = "renew.lua";
    /// Cancels a run.
    CANCEL = "cancel.lua";
    /// Requeues a run's tasks in one terminal state.
    RETRY_RUN = "retry_run.lua";
    /// Removes a run and its tasks.
    PURGE = "purge.lua";
    /// Takes one of an LLM endpoint's fleet-wide permits.
    PERMIT_ACQUIRE = "permit_acquire.lua";
    /// Extends a held permit.
    PERMIT_RENEW = "permit_renew.lua";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_every_terminal_state_once() {
        let h = header();
        assert!(h.contains("local PREFIX = '{tars}'"), "{h}");
        assert!(
            h.contains("TERMINAL_STATES = {'done', 'failed', 'dead', 'cancelled'}"),
            "{h}"
        );
        assert!(h.contains(&format!("LOG_MAXLEN = {LOG_MAXLEN}")), "{h}");
    }
}
