//! The Lua scripts that move a task between states, each one atomic: the task's hash, the
//! run's counters, the streams and the result log change together or not at all.
//!
//! Every script is the shared prelude (`lua/prelude.lua`) after a header of constants rendered
//! here from the Rust definitions (key templates, stream caps, the terminal states), so that a
//! name or a limit is written once. Scripts are loaded lazily and re-sent by redis-rs when a
//! restarted server answers `NOSCRIPT`.

use std::sync::LazyLock;

use redis::Script;

use super::keys;
use super::model::TaskState;

/// Entries kept in the result and dead-letter streams (`XADD ... MAXLEN ~`).
pub const LOG_MAXLEN: usize = 100_000;

/// The placeholder the key templates hold where a key function takes an argument, filled in
/// by Lua's `string.format`.
const SLOT: &str = "%s";

/// `s` as a Lua string literal.
fn lua_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The constants every script may use, as Lua. Keys a script finds by id (a run's tasks) are
/// templates made by the functions of [`keys`] themselves: `string.format(TASK_KEY, run, id)`.
fn header() -> String {
    let terminal: Vec<String> = TaskState::ALL
        .into_iter()
        .filter(|s| s.is_terminal())
        .map(|s| lua_string(s.as_str()))
        .collect();
    format!(
        "local TASK_KEY = {}\nlocal RUN_KEY = {}\nlocal LOG_MAXLEN = {LOG_MAXLEN}\n\
         local MINUTE_KEY = {}\nlocal HISTORY_WINDOW_KEY = {}\n\
         local LATENCY_BUCKETS_MS = {{{}}}\nlocal TASK_BUCKETS_MS = {{{}}}\n\
         local TASK_DURATIONS_KEY = {}\n\
         local TERMINAL_STATES = {{{}}}\n",
        lua_string(&keys::task(SLOT, SLOT)),
        lua_string(&keys::run(SLOT)),
        lua_string(&keys::minute(0).replace(":0", ":%d")),
        lua_string(&keys::history_window()),
        super::permits::LATENCY_BUCKETS_MS
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        keys::TASK_BUCKETS_MS
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        lua_string(&keys::task_durations()),
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
    /// Creates a run's hash under a fresh id, unlisted, expiring after the retention.
    CREATE_RUN = "create_run.lua";
    /// Lists a created run in `{tars}:runs` (once its tasks are in).
    LIST_RUN = "list_run.lua";
    /// A worker takes a delivered task (or skips, or dead-letters it).
    START = "start.lua";
    /// Records a final state with its fields.
    COMPLETE = "complete.lua";
    /// Hands a gated patch from the LLM stage to the verify stage.
    HANDOFF = "handoff.lua";
    /// Sends a task whose verification failed back to the LLM stage for a repair.
    REPAIR = "repair.lua";
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
    /// Gives an LLM permit back (or stops waiting for one) and hands it to the next waiter.
    PERMIT_RELEASE = "permit_release.lua";
    /// Records one LLM call's outcome: counters, latency, breaker, `auto` limit.
    LLM_OBSERVE = "llm_observe.lua";
    /// Which endpoints may get work now (serving, out, or to be probed by the caller).
    LLM_STATES = "llm_states.lua";
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The string literal `local NAME = '...'` of the header, unquoted.
    fn constant(h: &str, name: &str) -> String {
        let start = format!("local {name} = '");
        let line = h
            .lines()
            .find_map(|l| l.strip_prefix(start.as_str()))
            .unwrap_or_else(|| panic!("no {name} in {h}"));
        line.strip_suffix('\'')
            .expect("one quoted string")
            .to_string()
    }

    /// Lua's `string.format` for a template of `%s` slots only (any other `%` would be a
    /// directive, or an error, there).
    fn format(template: &str, args: &[&str]) -> String {
        let parts: Vec<&str> = template.split(SLOT).collect();
        assert_eq!(parts.len(), args.len() + 1, "slots in {template}");
        assert!(parts.iter().all(|p| !p.contains('%')), "{template}");
        let mut out = parts[0].to_string();
        for (arg, part) in args.iter().zip(&parts[1..]) {
            out.push_str(arg);
            out.push_str(part);
        }
        out
    }

    #[test]
    fn the_header_renders_the_key_templates_from_the_key_functions() {
        let h = header();
        let task = constant(&h, "TASK_KEY");
        let run = constant(&h, "RUN_KEY");
        assert_eq!(task, "{tars}:task:%s:%s");
        assert_eq!(run, "{tars}:run:%s");
        for (r, t) in [("20250101T000000Z-0a1b", "t1"), ("r", "a:b%c")] {
            assert_eq!(format(&task, &[r, t]), keys::task(r, t));
            assert_eq!(format(&run, &[r]), keys::run(r));
        }
    }

    #[test]
    fn the_header_names_every_terminal_state_once() {
        let h = header();
        assert!(
            h.contains("TERMINAL_STATES = {'done', 'failed', 'dead', 'cancelled'}"),
            "{h}"
        );
        assert!(h.contains(&format!("LOG_MAXLEN = {LOG_MAXLEN}")), "{h}");
    }

    #[test]
    fn lua_strings_are_quoted_and_escaped() {
        assert_eq!(lua_string("{tars}:run:%s"), "'{tars}:run:%s'");
        assert_eq!(lua_string(r"a'b\c"), r"'a\'b\\c'");
    }
}
