//! Every human and JSON rendering of the dispatcher: scan listings and their tables, run
//! status, progress while waiting, end-of-run summaries, workers and the container fleet. The
//! library computes; this module only formats, so the CLI stays thin and every format is
//! tested in one place.
//!
//! The binaries write through [`stdout`] and [`stderr`], so that a reader that went away
//! (`dispatcher status | head -1`) ends the output, not the program.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::apply::Applied;
use crate::fleet::WorkerStatus;
use crate::queue::{RunStatus, TaskState};
use crate::results::{Summary, failure_kinds};
use crate::run::Started;
use crate::scan::ScanReport;

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
                serde_json::to_writer(&mut *out, t)?;
                writeln!(out)?;
            } else {
                writeln!(out, "{}:{}: {} {}", t.path, t.line, t.tag, t.text)?;
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
    for e in &report.errors {
        writeln!(err, "  warning: {e}")?;
    }
    Ok(())
}

/// `dispatcher status` in words.
pub fn format_status(st: &RunStatus) -> String {
    let mut s = format!(
        "run {}  repo {}\n  total {}  finished {}{}\n",
        st.run,
        st.repo,
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
        let get = |k: &str| w.get(k).map(String::as_str).unwrap_or_default();
        let current = match get("current") {
            "" => "-",
            c => c,
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

/// One line of progress: what a log or a pipe gets while `run --wait` waits.
pub fn progress_line(st: &RunStatus) -> String {
    let mut s = format!("{}: {}/{} finished (", st.run, st.finished(), st.total);
    let parts: Vec<String> = TaskState::ALL
        .into_iter()
        .filter(|s| s.is_terminal())
        .map(|state| format!("{state} {}", st.count(state)))
        .collect();
    s.push_str(&parts.join(", "));
    s.push_str("; ");
    let parts: Vec<String> = TaskState::ALL
        .into_iter()
        .filter(|s| !s.is_terminal())
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
    tty: bool,
    last_line: String,
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
            tty: std::io::stderr().is_terminal(),
            last_line: String::new(),
        }
    }

    pub fn show(&mut self, st: &RunStatus) {
        if !self.tty {
            let line = progress_line(st);
            if line != self.last_line {
                let _ = writeln!(stderr(), "{line}");
                self.last_line = line;
            }
            return;
        }
        let b = self.bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::new(st.total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        });
        b.set_length(st.total);
        b.set_position(st.finished());
        let mut msg = format!(
            "done {} failed {} dead {} running {}",
            st.count(TaskState::Done),
            st.count(TaskState::Failed),
            st.count(TaskState::Dead),
            st.count(TaskState::Running)
        );
        if st.count(TaskState::Cancelled) > 0 {
            msg.push_str(&format!(" cancelled {}", st.count(TaskState::Cancelled)));
        }
        b.set_message(msg);
        if st.is_complete() {
            b.finish();
        }
    }
}

/// `run --only-new` with nothing left: no run was created.
pub fn nothing_to_do(started: &Started) -> String {
    format!(
        "nothing to do: {} TODOs found in {} files, {}; no run created{}",
        started.tasks,
        started.report.files.len(),
        skipped_done_line(started.skipped_done as u64),
        match started.earlier_runs.last() {
            Some(r) => format!(" (latest run of this repository: {r})"),
            None => String::new(),
        }
    )
}

/// What `run` says once the tasks are enqueued.
pub fn run_started(run: &str, started: &Started, only_new: bool) -> String {
    let mut s = format!(
        "run {run}: {} tasks enqueued ({} TODOs found in {} files)\n",
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
    s
}

/// What `apply` did, a line per patch and a total.
pub fn applied(applied: &[Applied], repo: &str) -> String {
    let mut s = String::new();
    for a in applied {
        match &a.skipped {
            None => s.push_str(&format!("applied  {} {}\n", a.task, a.path)),
            Some(why) => s.push_str(&format!("skipped  {} {}: {why}\n", a.task, a.path)),
        }
    }
    let written = applied.iter().filter(|a| a.skipped.is_none()).count();
    s.push_str(&format!(
        "{written} of {} patches applied to {repo}; review with `git diff`\n",
        applied.len()
    ));
    s
}

/// The end of `run --wait`: counts, time, where the results are, and failures by kind.
pub fn run_finished(st: &RunStatus, secs: f64, dir: &str, summary: &Summary) -> String {
    let cancelled = match st.count(TaskState::Cancelled) {
        0 => String::new(),
        n => format!(", {n} cancelled"),
    };
    let mut s = format!(
        "run {} finished in {secs:.1} s: {} done, {} failed, {} dead{cancelled}; patches and summary.json in {dir}\n",
        st.run,
        st.count(TaskState::Done),
        st.count(TaskState::Failed),
        st.count(TaskState::Dead),
    );
    if let Some(n) = st.skipped_done {
        s.push_str(&format!("  {}\n", skipped_done_line(n)));
    }
    for (kind, (n, example)) in failure_kinds(summary) {
        s.push_str(&format!("  {n} x {kind}: {example}\n"));
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
            w.name,
            w.id,
            w.state,
            w.health.as_deref().unwrap_or("-"),
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
            w.current.as_deref().unwrap_or("-"),
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
            skipped_done: Some(1),
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
    fn a_progress_line_shows_finished_and_pending_counts() {
        assert_eq!(
            progress_line(&status()),
            "r1: 3/6 finished (done 2, failed 1, dead 0, cancelled 0; queued 3, running 0, retrying 0)"
        );
    }
}
