//! Every human and JSON rendering of the dispatcher: scan listings and their tables, run
//! status, progress while waiting, end-of-run summaries, workers and the container fleet. The
//! library computes; this module only formats, so the CLI stays thin and every format is
//! tested in one place.
//!
//! Two rules hold for every human rendering here: text that came from a repository, Redis, the
//! LLM or the Docker engine goes through [`shown`], so that it cannot drive the terminal; and
//! the binaries write through [`stdout`] and [`stderr`], so that a reader that went away
//! (`dispatcher status | head -1`) ends the output, not the program. JSON output is written
//! as serde makes it: exact, with its own escaping.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::apply::Applied;
use crate::fleet::WorkerStatus;
use crate::queue::{RunStatus, TaskState, VerifyStatus};
use crate::results::{Summary, failure_kinds};
use crate::run::{Started, Waiting};
use crate::scan::ScanReport;

/// Whether a terminal would act on `c` or draw it misleadingly: C0 controls but tab (escape
/// sequences, carriage returns, newlines that fake a line of output), DEL, C1 controls (CSI and
/// OSC in one byte), and the bidirectional and line-separator format characters that reorder
/// or break what is shown (Trojan Source, CVE-2021-42574).
fn is_unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every character a terminal would act on written as an escape (`\x1b`, `\n`,
/// `\u{202e}`); everything else, backslashes included, as it is. For any text a person sees
/// that did not come from tars itself.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(is_unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_unsafe_char(c) && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape`] as a `Display`, for `format!` arguments; width and alignment apply to the
/// escaped text.
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&escape(self.0))
    }
}

/// Untrusted text for a human rendering: `format!("{}", shown(&t.path))`.
pub fn shown(s: &str) -> Shown<'_> {
    Shown(s)
}

/// An error and its causes for the binaries' last line: each cause after `: `, outermost
/// first, except a cause whose text is already shown (a message that embeds its source, or a
/// library error that repeats the I/O error under it), so that every cause appears once and
/// the message's own advice is not buried under a repeat. Escaped as [`shown`].
pub fn error_message<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut out = String::new();
    for e in chain {
        let text = e.to_string();
        let text = text.trim();
        if text.is_empty() || out.contains(text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(text);
    }
    escape(&out).into_owned()
}

/// The field formatter of the binaries' logs: field values (a task's path, an error with a
/// Redis value in it) go through [`escape`] like the rest of the human output.
pub fn log_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let value = format!("{value:?}");
        match field.name() {
            "message" => write!(w, "{}", escape(&value)),
            name => write!(w, "{name}={}", escape(&value)),
        }
    })
    .delimited(" ")
}

/// serde_json's compact output, but with the characters of [`is_unsafe_char`] that serde
/// leaves raw (C1 controls, bidi controls, DEL) written as `\uXXXX` escapes: the same JSON
/// value, exact once parsed, and harmless when the line lands on a terminal.
struct TerminalSafeJson;

impl serde_json::ser::Formatter for TerminalSafeJson {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(i) = rest.find(is_unsafe_char) {
            w.write_all(&rest.as_bytes()[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            // Every character of `is_unsafe_char` is in the Basic Multilingual Plane.
            write!(w, "\\u{:04x}", c as u32)?;
            rest = &rest[i + c.len_utf8()..];
        }
        w.write_all(rest.as_bytes())
    }
}

/// `value` as indented JSON for a file a person may `cat` (`summary.json`), with the same
/// escapes as [`write_json`]. serde escapes every C0 control inside strings, so the only raw
/// ones in its output are the indentation's newlines; every other character of
/// [`is_unsafe_char`] stands inside a string and is escaped in place.
pub fn pretty_json<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c != '\n' && is_unsafe_char(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// `value` as one line of JSON for stdout (see [`TerminalSafeJson`]).
pub fn write_json<T: serde::Serialize + ?Sized>(
    out: &mut impl Write,
    value: &T,
) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, TerminalSafeJson);
    value.serialize(&mut ser)?;
    writeln!(out).map_err(serde_json::Error::io)
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// A standard stream whose reader may go away. Rust ignores SIGPIPE, so a write to a closed
/// pipe fails with `BrokenPipe` (and `println!` panics on it); here the first such failure
/// closes the stream for the rest of the process and every write after it is dropped, so a
/// command finishes what it was doing (`run` has already enqueued its tasks) and exits as it
/// would have. Other write errors are returned.
pub struct Pipe<W> {
    inner: W,
    closed: &'static AtomicBool,
}

impl<W> Pipe<W> {
    /// Whether the reader went away: nothing written now is seen.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn done<T>(&self, r: io::Result<T>, n: T) -> io::Result<T> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed.store(true, Ordering::Relaxed);
                Ok(n)
            }
            r => r,
        }
    }
}

impl<W: Write> Write for Pipe<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.is_closed() {
            return Ok(buf.len());
        }
        let r = self.inner.write(buf);
        self.done(r, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.is_closed() {
            return Ok(());
        }
        let r = self.inner.flush();
        self.done(r, ())
    }
}

/// The process's standard output as a [`Pipe`]; lock it briefly (one rendering), not across
/// an await.
pub fn stdout() -> Pipe<io::StdoutLock<'static>> {
    Pipe {
        inner: io::stdout().lock(),
        closed: &STDOUT_CLOSED,
    }
}

/// The process's standard error as a [`Pipe`].
pub fn stderr() -> Pipe<io::StderrLock<'static>> {
    Pipe {
        inner: io::stderr().lock(),
        closed: &STDERR_CLOSED,
    }
}

/// Counts by language (rows) and tag (columns), most frequent first, with totals: the first
/// thing a person wants from a scan is where the debt is.
fn count_table(counts: &BTreeMap<(&str, &str), usize>) -> String {
    let mut by_tag: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_lang: BTreeMap<&str, usize> = BTreeMap::new();
    for (&(lang, tag), &n) in counts {
        *by_tag.entry(tag).or_default() += n;
        *by_lang.entry(lang).or_default() += n;
    }
    let tags = most_first(&by_tag);
    let langs = most_first(&by_lang);
    let first = langs.iter().map(|(l, _)| l.len()).max().unwrap_or(0).max(8);
    let widths: Vec<usize> = tags.iter().map(|(t, _)| t.len().max(5)).collect();
    let mut out = format!("  {:<first$}", "language");
    for ((tag, _), w) in tags.iter().zip(&widths) {
        out.push_str(&format!(" {tag:>w$}"));
    }
    out.push_str(&format!(" {:>5}\n", "total"));
    let rows = langs
        .iter()
        .map(|&(lang, n)| (lang, Some(lang), n))
        .chain([("total", None, by_lang.values().sum())]);
    for (label, lang, n) in rows {
        out.push_str(&format!("  {label:<first$}"));
        for ((tag, all), w) in tags.iter().zip(&widths) {
            let c = match lang {
                Some(l) => counts.get(&(l, *tag)).copied().unwrap_or(0),
                None => *all,
            };
            out.push_str(&format!(" {c:>w$}"));
        }
        out.push_str(&format!(" {n:>5}\n"));
    }
    out
}

fn most_first<'a>(m: &BTreeMap<&'a str, usize>) -> Vec<(&'a str, usize)> {
    let mut v: Vec<(&str, usize)> = m.iter().map(|(k, v)| (*k, *v)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v
}

/// Prints a scan: `path:line: TAG text` lines and a summary on `err`, or JSON lines.
pub fn print_scan(
    report: &ScanReport,
    json: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> std::io::Result<()> {
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut total = 0usize;
    for f in &report.files {
        for t in &f.todos {
            total += 1;
            *counts.entry((&t.language, &t.tag)).or_default() += 1;
            if json {
                write_json(out, t)?;
            } else {
                writeln!(
                    out,
                    "{}:{}: {} {}",
                    shown(&t.path),
                    t.line,
                    t.tag,
                    shown(&t.text)
                )?;
            }
        }
    }
    writeln!(
        err,
        "{total} TODOs in {} files ({} files scanned)",
        report.files.len(),
        report.files_scanned
    )?;
    if total > 0 {
        write!(err, "{}", count_table(&counts))?;
    }
    if !report.skipped.is_empty() {
        let s = report
            .skipped
            .iter()
            .map(|(k, v)| {
                format!(
                    "{} {v}",
                    serde_json::to_string(k)
                        .unwrap_or_default()
                        .trim_matches('"')
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(err, "  skipped files: {s}")?;
    }
    if let Some(line) = unknown_languages(report) {
        writeln!(err, "{line}")?;
    }
    for e in &report.errors {
        writeln!(err, "  warning: {}", shown(e))?;
    }
    Ok(())
}

/// `scan --languages`: one line per language (`name  Display  source  .ext file  comments`),
/// then a count per source; with `json`, one object per language.
pub fn print_languages(
    rows: &[crate::scan::LanguageInfo],
    json: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    if json {
        for r in rows {
            write_json(out, r)?;
        }
        return Ok(());
    }
    let mut per_source: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *per_source.entry(r.source).or_default() += 1;
        let names: Vec<String> = r
            .extensions
            .iter()
            .map(|e| format!(".{e}"))
            .chain(r.file_names.iter().map(|f| f.to_string()))
            .chain(r.interpreters.iter().map(|i| format!("#!{i}")))
            .collect();
        let comments: Vec<String> = r
            .line_comments
            .iter()
            .map(|c| c.to_string())
            .chain(r.block_comments.iter().map(|(o, c)| format!("{o} {c}")))
            .collect();
        let comments = if r.scanned {
            comments.join("  ") + if r.nested_comments { " (nested)" } else { "" }
        } else {
            "no comments: not read".to_string()
        };
        writeln!(
            out,
            "{:<16} {:<24} {:<28} {:<40} {}",
            r.name,
            r.display,
            r.source,
            names.join(" "),
            comments
        )?;
    }
    let sources: Vec<String> = per_source.iter().map(|(s, n)| format!("{n} {s}")).collect();
    writeln!(out, "{} languages: {}", rows.len(), sources.join(", "))
}

/// The files no language table knows, by extension, the ten most frequent first:
/// `  unknown_language: 120 files (.png 80, .lock 20, no extension 12, ...)`; None when every
/// file was known.
pub fn unknown_languages(report: &ScanReport) -> Option<String> {
    let total: u64 = report.unknown_language.values().sum();
    if total == 0 {
        return None;
    }
    let mut by_count: Vec<(&String, &u64)> = report.unknown_language.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut parts: Vec<String> = by_count
        .iter()
        .take(10)
        .map(|(ext, n)| match ext.as_str() {
            "" => format!("no extension {n}"),
            e => format!(".{} {n}", shown(e)),
        })
        .collect();
    if by_count.len() > 10 {
        parts.push(format!("{} more extensions", by_count.len() - 10));
    }
    Some(format!(
        "  unknown_language: {total} files not scanned ({}); see `dispatcher scan --languages`",
        parts.join(", ")
    ))
}

/// `dispatcher status` in words.
pub fn format_status(st: &RunStatus) -> String {
    let mut s = format!(
        "run {}  repo {}\n  total {}  finished {}{}\n",
        shown(&st.run),
        shown(&st.repo),
        st.total,
        st.finished(),
        if st.is_complete() { " (complete)" } else { "" }
    );
    for state in TaskState::ALL {
        s.push_str(&format!("  {:<10}{}\n", state, st.count(state)));
    }
    if let Some(n) = st.skipped_done {
        s.push_str(&format!("  {}\n", skipped_done_line(n)));
    }
    if let Some(v) = &st.verify {
        s.push_str(&format!("  {}\n", verify_line(v)));
    }
    s
}

/// A verifying run's check and its outcomes, in one line.
pub fn verify_line(v: &VerifyStatus) -> String {
    let baseline = match v.baseline.as_deref() {
        None => "baseline not checked yet".to_string(),
        Some("passed") => "baseline passed".to_string(),
        Some("failed") => {
            "BASELINE FAILED: the unpatched tree fails its check, patches are unverified".into()
        }
        Some(other) => format!("baseline {}", shown(other)),
    };
    format!(
        "verify `{}`: {} passed, {} failed, {} unverified; {baseline}",
        shown(&v.command),
        v.passed,
        v.failed,
        v.baseline_failed
    )
}

/// What `run --verify` says before it starts: the check, why `auto` chose it, and a warning
/// when no verifier is alive to run it.
pub fn verify_plan(v: &crate::verify::Resolved, verifier_alive: bool) -> String {
    let mut s = format!("verify: `{}`", shown(&v.command));
    if let Some(because) = &v.because {
        s.push_str(&format!(" (auto: {})", shown(because)));
    }
    s.push('\n');
    if !verifier_alive {
        s.push_str(
            "  no verifier is running: patches wait in `verifying` until one starts \
             (`worker --role verify --root REPO_PARENT`, or the compose `verifier` service)\n",
        );
    }
    s
}

/// How `run --only-new` reports the TODOs it left out.
pub fn skipped_done_line(n: u64) -> String {
    format!(
        "{n} TODO{} skipped: already done in an earlier run",
        if n == 1 { "" } else { "s" }
    )
}

/// The live workers' heartbeats under `dispatcher status`.
pub fn format_workers(workers: &[HashMap<String, String>]) -> String {
    let mut s = format!("workers {}\n", workers.len());
    for w in workers {
        let get = |k: &str| shown(w.get(k).map(String::as_str).unwrap_or_default());
        let current = match w.get("current").map(String::as_str) {
            None | Some("") => shown("-"),
            Some(c) => shown(c),
        };
        s.push_str(&format!(
            "  {}  host {}  {}  done {}  failed {}  current {}\n",
            get("id"),
            get("host"),
            get("state"),
            get("done"),
            get("failed"),
            current
        ));
    }
    s
}

/// The LLM endpoints the fleet uses: in flight against the limit (and where the limit comes
/// from), requests, errors, latency percentiles and whether each one is serving.
pub fn format_endpoints(endpoints: &[crate::queue::EndpointStatus]) -> String {
    if endpoints.is_empty() {
        return String::new();
    }
    let mut s = format!("llm endpoints {}\n", endpoints.len());
    for e in endpoints {
        let limit = match e.limit {
            Some(l) => format!("{l} ({})", e.limit_source),
            None => "none".to_string(),
        };
        let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
        s.push_str(&format!(
            "  {}  {}  {}  in flight {}  limit {}  requests {}  errors {}  p50 {}  p95 {}",
            shown(&e.url),
            shown(&e.model),
            shown(&e.state),
            e.in_flight,
            limit,
            e.requests,
            e.errors,
            ms(e.p50_ms),
            ms(e.p95_ms),
        ));
        if !e.reason.is_empty() && e.state != "serving" {
            s.push_str(&format!("  ({})", shown(&e.reason)));
        }
        s.push('\n');
    }
    s
}

/// One line of progress: what a log or a pipe gets while `run --wait` waits.
pub fn progress_line(st: &RunStatus) -> String {
    let mut s = format!(
        "{}: {}/{} finished (",
        shown(&st.run),
        st.finished(),
        st.total
    );
    let parts: Vec<String> = TaskState::ALL
        .into_iter()
        .filter(|s| s.is_terminal())
        .map(|state| format!("{state} {}", st.count(state)))
        .collect();
    s.push_str(&parts.join(", "));
    s.push_str("; ");
    // `verifying` only for a run that verifies: the others never have such tasks.
    let parts: Vec<String> = TaskState::ALL
        .into_iter()
        .filter(|s| !s.is_terminal())
        .filter(|s| *s != TaskState::Verifying || st.verify.is_some())
        .map(|state| format!("{state} {}", st.count(state)))
        .collect();
    s.push_str(&parts.join(", "));
    s.push(')');
    s
}

/// Progress on stderr while a run is waited for: a bar on a terminal, a plain line per change
/// otherwise (CI logs, pipes).
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    /// Where the bar draws: stderr, or a recorder in the tests.
    target: Option<indicatif::ProgressDrawTarget>,
    tty: bool,
    last_line: String,
    /// A failed baseline is said once, as soon as a verifier reports it.
    baseline_said: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            bar: None,
            target: None,
            tty: std::io::stderr().is_terminal(),
            last_line: String::new(),
            baseline_said: false,
        }
    }

    /// Shows what [`crate::run::wait_run`] reports.
    pub fn show(&mut self, ev: Waiting<'_>) {
        match ev {
            Waiting::Status(st) => self.status(st),
            Waiting::NoWorker {
                redis,
                waiting,
                others,
            } => self.say(&no_worker(redis, waiting, others)),
        }
    }

    /// A line of its own on stderr: above the bar while one shows.
    fn say(&self, line: &str) {
        match &self.bar {
            Some(b) if !b.is_finished() => b.println(line),
            _ => {
                let _ = writeln!(stderr(), "{line}");
            }
        }
    }

    fn status(&mut self, st: &RunStatus) {
        if let Some(v) = &st.verify
            && v.baseline.as_deref() == Some("failed")
            && !self.baseline_said
        {
            self.baseline_said = true;
            let line = format!(
                "warning: the unpatched tree fails `{}`: this run's patches are recorded as \
                 unverified (baseline_failed), not as wrong; fix the check, or see \
                 `dispatcher status --json` for its output",
                shown(&v.command)
            );
            self.say(&line);
        }
        if !self.tty {
            let line = progress_line(st);
            if line != self.last_line {
                let _ = writeln!(stderr(), "{line}");
                self.last_line = line;
            }
            return;
        }
        let target = self.target.take();
        let b = self.bar.get_or_insert_with(|| {
            let b = match target {
                Some(t) => indicatif::ProgressBar::with_draw_target(Some(st.total), t),
                None => indicatif::ProgressBar::new(st.total),
            };
            // The counts are all in the message, from one reading: a frame drawn between two
            // setters shows the fill of one reading and the counts of another, never two
            // readings' counts side by side.
            b.set_style(
                indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            show_logs_above(Some(&b));
            b
        });
        let mut msg = format!(
            "{}/{} done {} failed {} dead {} running {}",
            st.finished(),
            st.total,
            st.count(TaskState::Done),
            st.count(TaskState::Failed),
            st.count(TaskState::Dead),
            st.count(TaskState::Running)
        );
        if st.count(TaskState::Cancelled) > 0 {
            msg.push_str(&format!(" cancelled {}", st.count(TaskState::Cancelled)));
        }
        if st.verify.is_some() {
            msg.push_str(&format!(" verifying {}", st.count(TaskState::Verifying)));
        }
        b.update(|state| {
            state.set_len(st.total);
            state.set_pos(st.finished());
        });
        b.set_message(msg);
        // Drawn whatever the rate limit: the frame left on screen is this reading.
        b.force_draw();
        if st.is_complete() {
            self.finish();
        }
    }

    /// Takes the bar off the terminal, so that what is printed next (the run's summary, an
    /// error) starts on a line of its own; the summary repeats the bar's counts.
    pub fn finish(&mut self) {
        if let Some(b) = &self.bar {
            show_logs_above(None);
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The progress bar that log lines are printed above, while one shows (see [`LogWriter`]).
static LOGS_ABOVE: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

fn show_logs_above(bar: Option<&indicatif::ProgressBar>) {
    if let Ok(mut above) = LOGS_ABOVE.lock() {
        *above = bar.cloned();
    }
}

/// The binaries' log writer: stderr, as a [`Pipe`], and while `run --wait` draws its bar, above
/// it (the bar is taken off, the line printed, the bar drawn again), so that a warning logged
/// meanwhile (Redis restarting) neither lands inside the bar's line nor is drawn over by it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

impl Write for LogWriter {
    /// The formatter writes each event in one call.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let bar = LOGS_ABOVE.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(b) if !b.is_finished() => b.suspend(|| stderr().write_all(buf))?,
            _ => stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        stderr().flush()
    }
}

/// What `run --wait` says while no worker serves the LLM stage of its run: why the run does
/// not move, and how to start a worker.
pub fn no_worker(redis: &str, waiting: u64, others: usize) -> String {
    let who = match others {
        0 => "no worker is running".to_string(),
        n => format!(
            "no worker serves the LLM stage ({n} verifier{} only)",
            if n == 1 { "" } else { "s" }
        ),
    };
    format!(
        "warning: {who}: {waiting} task{} wait for one. Start one on this machine with \
         `TARS_REDIS__URL={} worker` (and the same llm.* settings), or containers with \
         `docker compose -f compose/docker-compose.yml up -d --scale worker=N`",
        if waiting == 1 { "" } else { "s" },
        shown(redis)
    )
}

/// `run` with nothing to do (no TODO, or with `--only-new` none left): no run was created.
pub fn nothing_to_do(started: &Started) -> String {
    let skipped = match started.tasks {
        0 => String::new(),
        _ => format!(", {}", skipped_done_line(started.skipped_done as u64)),
    };
    format!(
        "nothing to do: {} TODOs found in {} files{skipped}; no run created{}",
        started.tasks,
        started.report.files.len(),
        match started.earlier_runs.last() {
            Some(r) => format!(" (latest run of this repository: {})", shown(r)),
            None => String::new(),
        }
    )
}

/// What `run` says once the tasks are enqueued.
pub fn run_started(run: &str, started: &Started, only_new: bool) -> String {
    let mut s = format!(
        "run {}: {} tasks enqueued ({} TODOs found in {} files)\n",
        shown(run),
        started.added,
        started.tasks,
        started.report.files.len()
    );
    if only_new {
        s.push_str(&format!(
            "  {}\n",
            skipped_done_line(started.skipped_done as u64)
        ));
    }
    if let Some(line) = unknown_languages(&started.report) {
        s.push_str(&line);
        s.push('\n');
    }
    s
}

/// What `apply` did, a line per patch and a total.
pub fn applied(applied: &[Applied], repo: &str) -> String {
    let mut s = String::new();
    for a in applied {
        match &a.skipped {
            None => s.push_str(&format!("applied  {} {}\n", shown(&a.task), shown(&a.path))),
            Some(why) => s.push_str(&format!(
                "skipped  {} {}: {}\n",
                shown(&a.task),
                shown(&a.path),
                shown(why)
            )),
        }
    }
    let written = applied.iter().filter(|a| a.skipped.is_none()).count();
    s.push_str(&format!(
        "{written} of {} patches applied to {}; review with `git diff`\n",
        applied.len(),
        shown(repo)
    ));
    s
}

/// What `land` did: a line per done patch, then the count and the branch.
pub fn landed(r: &crate::land::LandReport) -> String {
    let mut s = String::new();
    for p in &r.patches {
        match &p.skipped {
            None => s.push_str(&format!("landed  {} {}\n", shown(&p.task), shown(&p.path))),
            Some(why) => s.push_str(&format!(
                "skipped {} {}: {}\n",
                shown(&p.task),
                shown(&p.path),
                shown(why)
            )),
        }
    }
    let whence = match (&r.branch, &r.tip, &r.mbox) {
        (Some(b), Some(tip), _) => format!(" on {} ({})", shown(b), &tip[..tip.len().min(12)]),
        (None, Some(tip), Some(m)) => {
            format!(" in {} ({})", shown(m), &tip[..tip.len().min(12)])
        }
        _ => ": no branch made".to_string(),
    };
    s.push_str(&format!(
        "{} of {} landed{whence}\n",
        r.landed(),
        r.patches.len()
    ));
    if let (Some(b), Some(_)) = (&r.branch, &r.tip) {
        s.push_str(&format!(
            "review: git log --stat {0}   push: git push origin {0}\n",
            shown(b)
        ));
    }
    s
}

/// The end of `run --wait`: counts, time, where the results are, and failures by kind.
pub fn run_finished(st: &RunStatus, secs: f64, dir: &str, summary: &Summary) -> String {
    let cancelled = match st.count(TaskState::Cancelled) {
        0 => String::new(),
        n => format!(", {n} cancelled"),
    };
    let mut s = format!(
        "run {} finished in {secs:.1} s: {} done, {} failed, {} dead{cancelled}; patches and summary.json in {}\n",
        shown(&st.run),
        st.count(TaskState::Done),
        st.count(TaskState::Failed),
        st.count(TaskState::Dead),
        shown(dir),
    );
    if let Some(n) = st.skipped_done {
        s.push_str(&format!("  {}\n", skipped_done_line(n)));
    }
    if let Some(v) = &st.verify {
        s.push_str(&format!("  {}\n", verify_line(v)));
    }
    if let Some(v) = &summary.verification {
        s.push_str(&format!(
            "  pass@1 {}/{}, pass@k {}/{}, after repairs {}/{}\n",
            v.pass_at_1, v.tasks, v.pass_at_k, v.tasks, v.passed, v.tasks
        ));
    }
    for (kind, (n, example)) in failure_kinds(summary) {
        s.push_str(&format!("  {n} x {}: {}\n", shown(&kind), shown(&example)));
    }
    s
}

/// `fleet status` as a table.
pub fn fleet_status(workers: &[WorkerStatus]) -> String {
    let mib = |b: i64| format!("{}Mi", b >> 20);
    let mut s = format!(
        "{:<16} {:<13} {:<10} {:<10} {:>8} {:>6} {:>6} {:>10} {:>6}  {}\n",
        "NAME",
        "CONTAINER",
        "STATE",
        "HEALTH",
        "MEMORY",
        "CPUS",
        "PIDS",
        "MEM USED",
        "DONE",
        "CURRENT"
    );
    for w in workers {
        s.push_str(&format!(
            "{:<16} {:<13} {:<10} {:<10} {:>8} {:>6} {:>6} {:>10} {:>6}  {}\n",
            shown(&w.name),
            shown(&w.id),
            shown(&w.state),
            shown(w.health.as_deref().unwrap_or("-")),
            w.memory_limit.map(mib).unwrap_or_else(|| "-".into()),
            w.nano_cpus
                .map(|n| format!("{:.2}", n as f64 / 1e9))
                .unwrap_or_else(|| "-".into()),
            w.pids_limit
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            w.memory_usage
                .map(|b| format!("{:.1}Mi", b as f64 / 1048576.0))
                .unwrap_or_else(|| "-".into()),
            w.tasks_done
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            shown(w.current.as_deref().unwrap_or("-")),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::StateCounts;

    fn status() -> RunStatus {
        let mut counts = StateCounts::default();
        counts.set(TaskState::Done, 2);
        counts.set(TaskState::Failed, 1);
        counts.set(TaskState::Queued, 3);
        RunStatus {
            run: "r1".into(),
            repo: "/repo".into(),
            created_at: 0,
            finished_at: None,
            total: 6,
            counts,
            duplicates: 0,
            stale_results: 0,
            skipped_done: Some(1),
            commit: None,
            verify: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            llm_ms: 0,
        }
    }

    #[test]
    fn status_lists_every_state_and_the_skipped_ones() {
        let s = format_status(&status());
        for state in TaskState::ALL {
            assert!(
                s.contains(&format!("  {state:<10}")),
                "{state} missing in\n{s}"
            );
        }
        assert!(s.contains("  done      2\n"), "{s}");
        assert!(
            s.contains("1 TODO skipped: already done in an earlier run"),
            "{s}"
        );
    }

    #[test]
    fn escape_leaves_plain_text_and_escapes_what_a_terminal_acts_on() {
        for plain in [
            "",
            "fix the parser",
            "caf\u{e9} \t tab, \\x1b as written, \u{5d0}\u{5d1} \u{1f600}",
        ] {
            assert!(matches!(escape(plain), Cow::Borrowed(_)), "{plain:?}");
        }
        assert_eq!(
            escape("a\x1b]0;t\x07b\x1b[2J\r\n\x00\x7f"),
            r"a\x1b]0;t\x07b\x1b[2J\r\n\x00\x7f"
        );
        // C1 controls (CSI and OSC in one character), bidi overrides and isolates, separators.
        assert_eq!(
            escape("\u{9b}\u{9d}\u{85}\u{202e}\u{202a}\u{2066}\u{2069}\u{200f}\u{61c}\u{2028}"),
            r"\u{9b}\u{9d}\u{85}\u{202e}\u{202a}\u{2066}\u{2069}\u{200f}\u{61c}\u{2028}"
        );
        assert_eq!(format!("[{:<6}]", shown("\x1b")), r"[\x1b  ]");
    }

    #[test]
    fn human_renderings_escape_what_came_from_outside() {
        let mut st = status();
        st.repo = "/r\x1b]0;t\x07".into();
        st.run = "r\u{202e}".into();
        let mut w = HashMap::new();
        w.insert("id".to_string(), "w\x1b[2J".to_string());
        w.insert("current".to_string(), "\u{9b}1m".to_string());
        for text in [format_status(&st), progress_line(&st), format_workers(&[w])] {
            assert!(
                !text.contains(['\x1b', '\x07', '\u{9b}', '\u{202e}']),
                "{text:?}"
            );
        }
    }

    #[test]
    fn log_fields_are_escaped() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(log_fields())
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let path = "a\x1b]52;c;aGk=\x07.py";
            tracing::info!(path = %path, reason = "x\u{202e}y", "asking \x1b[2J {}", path);
        });
        let logged = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf-8");
        assert!(!logged.contains(['\x1b', '\x07', '\u{202e}']), "{logged:?}");
        assert!(logged.contains(r"path=a\x1b]52;c;aGk=\x07.py"), "{logged}");
        assert!(logged.contains(r"asking \x1b[2J a\x1b]52"), "{logged}");
    }

    #[test]
    fn pretty_json_escapes_what_a_terminal_acts_on_and_parses_back_exactly() {
        let v = serde_json::json!({"model": "m\u{202e}x\u{9b}y\u{7f}", "reason": "a\nb\u{1b}[2J"});
        let text = pretty_json(&v).unwrap();
        assert!(
            text.chars().all(|c| c == '\n' || !is_unsafe_char(c)),
            "{text:?}"
        );
        assert!(text.contains("\\u202e") && text.contains('\n'), "{text}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), v);
    }

    #[test]
    fn a_closed_pipe_ends_the_output_quietly() {
        struct Closed(usize);
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                self.0 += 1;
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
        }
        static CLOSED: AtomicBool = AtomicBool::new(false);
        let mut p = Pipe {
            inner: Closed(0),
            closed: &CLOSED,
        };
        writeln!(p, "one").expect("a closed pipe is not an error");
        assert!(p.is_closed());
        writeln!(p, "two").expect("nor after");
        p.flush().expect("flush");
        assert_eq!(p.inner.0, 1, "nothing written after the reader left");
    }

    #[test]
    fn an_error_message_shows_each_cause_once() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl fmt::Display for E {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        fn chain(e: &E) -> Vec<&(dyn std::error::Error + 'static)> {
            let mut v: Vec<&(dyn std::error::Error + 'static)> = vec![e];
            while let Some(next) = v.last().and_then(|e| e.source()) {
                v.push(next);
            }
            v
        }
        // A message that embeds its source, over a library error that repeats its I/O error.
        let refused = E(
            "cannot reach Redis at r: refused (os error 111). Start one",
            Some(Box::new(E(
                "refused (os error 111)",
                Some(Box::new(E("refused (os error 111)", None))),
            ))),
        );
        assert_eq!(
            error_message(chain(&refused)),
            "cannot reach Redis at r: refused (os error 111). Start one"
        );
        // A context over a cause it does not repeat keeps both; the cause is escaped.
        let ctx = E(
            "writing the results",
            Some(Box::new(E("disk \x1b full", None))),
        );
        assert_eq!(
            error_message(chain(&ctx)),
            "writing the results: disk \\x1b full"
        );
        let esc = E("bad \x1b[2J", None);
        assert!(!error_message(chain(&esc)).contains('\x1b'));
    }

    /// A terminal that records what the bar writes.
    #[derive(Debug, Clone, Default)]
    struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl indicatif::TermLike for Recorder {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            if !s.trim().is_empty() {
                self.0.lock().expect("lock").push(s.to_string());
            }
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            self.0.lock().expect("lock").push("<clear>".into());
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_frame_of_the_bar_shows_one_reading_and_the_bar_is_gone_at_the_end() {
        let term = Recorder::default();
        let mut p = Progress::new();
        p.tty = true;
        p.target = Some(indicatif::ProgressDrawTarget::term_like(Box::new(
            term.clone(),
        )));
        let mut st = status();
        for (done, failed, queued) in [(0, 0, 6), (2, 0, 4), (3, 2, 1), (4, 2, 0)] {
            st.counts = StateCounts::default();
            st.counts.set(TaskState::Done, done);
            st.counts.set(TaskState::Failed, failed);
            st.counts.set(TaskState::Queued, queued);
            p.show(Waiting::Status(&st));
        }
        let frames = term.0.lock().expect("lock").clone();
        let counts: Vec<&String> = frames.iter().filter(|f| f.contains("/6 ")).collect();
        assert!(counts.len() >= 4, "{frames:#?}");
        for f in &counts {
            // `N/6 done D failed F dead X ...`: N is D + F + X, whatever frame it is.
            let words: Vec<&str> = f
                .split("] ")
                .nth(1)
                .unwrap_or_default()
                .split(' ')
                .collect();
            let count = |i: usize| -> u64 {
                let w = words.get(i).copied().unwrap_or_default();
                w.trim_end_matches("/6")
                    .parse()
                    .unwrap_or_else(|_| panic!("a frame without its counts: {f:?}"))
            };
            let (n, sum) = (count(0), count(2) + count(4) + count(6));
            assert_eq!(n, sum, "a frame mixes two readings: {f:?}");
        }
        assert!(
            counts.last().unwrap().contains("6/6 done 4 failed 2"),
            "{frames:#?}"
        );
        // Finished: the bar's line is cleared, for the summary to take.
        assert_eq!(
            frames.last().map(String::as_str),
            Some("<clear>"),
            "{frames:#?}"
        );
    }

    #[test]
    fn a_progress_line_shows_finished_and_pending_counts() {
        assert_eq!(
            progress_line(&status()),
            "r1: 3/6 finished (done 2, failed 1, dead 0, cancelled 0; queued 3, running 0, retrying 0)"
        );
    }
}
