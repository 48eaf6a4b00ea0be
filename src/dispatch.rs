//! What the dispatcher CLI does, as library calls: print a scan, start a run, wait for it with
//! progress, write its patches and summary, report its status.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::queue::{Queue, QueueError, RunStatus, TaskRecord, TaskSpec, TaskState};
use crate::scan::{self, ScanError, ScanReport};

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("run {run} did not finish within {secs} s ({finished} of {total} tasks finished)")]
    WaitTimeout {
        run: String,
        secs: u64,
        finished: u64,
        total: u64,
    },
}

/// One line of `dispatcher scan --json`.
#[derive(Debug, Serialize)]
pub struct ScanLine<'a> {
    pub id: &'a str,
    pub path: &'a str,
    pub line: usize,
    pub tag: &'a str,
    pub text: &'a str,
    pub author: Option<&'a str>,
    pub issue: Option<&'a str>,
    pub language: &'a str,
    pub symbol: Option<&'a str>,
    pub block: scan::ByteRange,
    pub block_lines: (usize, usize),
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
                let l = ScanLine {
                    id: &t.id,
                    path: &t.path,
                    line: t.line,
                    tag: &t.tag,
                    text: &t.text,
                    author: t.author.as_deref(),
                    issue: t.issue.as_deref(),
                    language: &t.language,
                    symbol: t.symbol.as_deref(),
                    block: t.block,
                    block_lines: t.block_lines,
                };
                serde_json::to_writer(&mut *out, &l)?;
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

/// How `start_run` picks the TODOs to enqueue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `dispatcher run --only-new`: leave out every TODO whose id has a `done` task in an
    /// earlier run of the same repository, i.e. a listed run whose hash records the same
    /// canonical root path. Failed, dead and cancelled tasks do not count; purged and expired
    /// runs are gone from Redis and do not count either.
    pub only_new: bool,
}

/// What `start_run` did.
#[derive(Debug)]
pub struct Started {
    /// The run created and filled. None only with `only_new` when nothing was left to do: no
    /// run is created then, so `status`, `results` and `apply` keep defaulting to the latest
    /// run that has work in it.
    pub run: Option<String>,
    /// TODOs the scan found.
    pub tasks: usize,
    /// Tasks added to the run.
    pub added: usize,
    /// TODOs left out because an earlier run of the repository has them done (`only_new`).
    pub skipped_done: usize,
    /// The earlier runs of the repository that were consulted (`only_new`), oldest first.
    pub earlier_runs: Vec<String>,
    pub report: ScanReport,
}

/// The repository's identity on a run: its canonical root path.
pub fn repo_key(root: &Path) -> String {
    std::fs::canonicalize(root)
        .unwrap_or_else(|_| root.to_path_buf())
        .display()
        .to_string()
}

/// Creates a run for a scan of `root` and enqueues one task per TODO (with `only_new`, per TODO
/// not already done in an earlier run of the same repository). The caller scans, so that a bad
/// path fails before Redis is touched without walking the tree twice.
pub async fn start_run(
    queue: &Queue,
    root: &Path,
    report: ScanReport,
    opts: RunOptions,
) -> Result<Started, DispatchError> {
    queue.ensure_group().await?;
    let repo = repo_key(root);
    let mut specs: Vec<TaskSpec> = report
        .files
        .iter()
        .flat_map(|f| f.todos.iter().map(|t| TaskSpec::from_todo(t, &f.content)))
        .collect();
    let tasks = specs.len();
    let mut earlier_runs = Vec::new();
    let mut skipped_done = 0;
    if opts.only_new {
        // Read before the new run exists, so it is never one of the earlier runs.
        earlier_runs = queue.runs_of_repo(&repo).await?;
        let candidates: HashMap<&str, &str> = specs
            .iter()
            .map(|s| (s.id.as_str(), s.block_hash.as_str()))
            .collect();
        let done = queue.done_among(&earlier_runs, &candidates).await?;
        specs.retain(|s| !done.contains(&s.id));
        skipped_done = tasks - specs.len();
        if specs.is_empty() {
            return Ok(Started {
                run: None,
                tasks,
                added: 0,
                skipped_done,
                earlier_runs,
                report,
            });
        }
    }
    let run = queue
        .create_run_with(&repo, opts.only_new.then_some(skipped_done as u64))
        .await?;
    // Only the files that still have a task to do are stored.
    let wanted: HashSet<&str> = specs.iter().map(|s| s.content_hash.as_str()).collect();
    let blobs: Vec<(&str, &str)> = report
        .files
        .iter()
        .filter(|f| wanted.contains(f.content_hash.as_str()))
        .map(|f| (f.content_hash.as_str(), f.content.as_str()))
        .collect();
    queue.put_blobs(&blobs).await?;
    let added = queue.enqueue_batch(&run, &specs).await?;
    Ok(Started {
        run: Some(run),
        tasks,
        added,
        skipped_done,
        earlier_runs,
        report,
    })
}

/// Polls the run's counters until every task has finished, showing progress on stderr: a bar
/// on a terminal, a plain line per change otherwise (CI logs, pipes).
pub async fn wait_run(
    queue: &Queue,
    run: &str,
    timeout: Option<Duration>,
) -> Result<RunStatus, DispatchError> {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut last_line = String::new();
    let mut failures = 0u32;
    loop {
        let st = match queue.run_status(run).await {
            Ok(st) => {
                failures = 0;
                st
            }
            Err(QueueError::Redis(e)) if failures < 30 => {
                failures += 1;
                tracing::warn!(error = %e, "Redis unavailable while waiting; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let line = format!(
            "{run}: {}/{} finished (done {}, failed {}, dead {}, cancelled {}; running {}, queued {}, retrying {})",
            st.finished(),
            st.total,
            st.done,
            st.failed,
            st.dead,
            st.cancelled,
            st.running,
            st.queued,
            st.retrying
        );
        if tty {
            let b = bar.get_or_insert_with(|| {
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
                st.done, st.failed, st.dead, st.running
            );
            if st.cancelled > 0 {
                msg.push_str(&format!(" cancelled {}", st.cancelled));
            }
            b.set_message(msg);
        } else if line != last_line {
            eprintln!("{line}");
            last_line = line;
        }
        if st.is_complete() {
            if let Some(b) = bar {
                b.finish();
            }
            return Ok(st);
        }
        if let Some(t) = timeout
            && started.elapsed() > t
        {
            return Err(DispatchError::WaitTimeout {
                run: run.into(),
                secs: t.as_secs(),
                finished: st.finished(),
                total: st.total,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One task in `summary.json`.
#[derive(Debug, Serialize)]
pub struct TaskSummary {
    pub id: String,
    pub path: String,
    pub line: usize,
    pub tag: String,
    pub text: String,
    pub language: String,
    pub state: TaskState,
    pub reason: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub attempts: u32,
    /// Time in the LLM call of the last attempt.
    pub llm_ms: Option<u64>,
    /// From enqueue to the first start.
    pub wait_ms: Option<u64>,
    /// From enqueue to the final result.
    pub total_ms: Option<u64>,
    pub worker: Option<String>,
    /// File name of the patch in the output directory, for done tasks.
    pub patch: Option<String>,
    pub errors: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub run: String,
    pub repo: String,
    pub status: RunStatus,
    pub tasks: Vec<TaskSummary>,
}

fn summarize(t: &TaskRecord) -> TaskSummary {
    let since = |end: Option<u64>| match (t.enqueued_at, end) {
        (Some(a), Some(b)) if b >= a => Some(b - a),
        _ => None,
    };
    TaskSummary {
        id: t.spec.id.clone(),
        path: t.spec.path.clone(),
        line: t.spec.line,
        tag: t.spec.tag.clone(),
        text: t.spec.text.clone(),
        language: t.spec.language.clone(),
        state: t.state,
        reason: t.reason.clone(),
        model: t.model.clone(),
        prompt_tokens: t.prompt_tokens,
        completion_tokens: t.completion_tokens,
        attempts: t.attempts,
        llm_ms: t.llm_ms,
        wait_ms: since(t.started_at),
        total_ms: since(t.finished_at),
        worker: t.worker.clone(),
        patch: (t.state == TaskState::Done && t.patch.is_some())
            .then(|| format!("{}.patch", t.spec.id)),
        errors: t.errors.clone(),
    }
}

/// Writes `DIR/<task-id>.patch` for every done task and `DIR/summary.json` for all of them.
pub async fn write_results(queue: &Queue, run: &str, dir: &Path) -> Result<Summary, DispatchError> {
    let status = queue.run_status(run).await?;
    let tasks = queue.run_tasks(run).await?;
    let werr = |path: PathBuf| {
        move |source| DispatchError::Write {
            path: path.display().to_string(),
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(werr(dir.to_path_buf()))?;
    for t in &tasks {
        if let (TaskState::Done, Some(p)) = (t.state, &t.patch) {
            let path = dir.join(format!("{}.patch", t.spec.id));
            std::fs::write(&path, p).map_err(werr(path.clone()))?;
        }
    }
    let summary = Summary {
        run: run.to_string(),
        repo: status.repo.clone(),
        status,
        tasks: tasks.iter().map(summarize).collect(),
    };
    let path = dir.join("summary.json");
    let json = serde_json::to_string_pretty(&summary).unwrap_or_default();
    std::fs::write(&path, json + "\n").map_err(werr(path.clone()))?;
    Ok(summary)
}

/// The run named, or the latest one.
pub async fn resolve_run(queue: &Queue, run: Option<&str>) -> Result<String, DispatchError> {
    Ok(match run {
        Some(r) => r.to_string(),
        None => queue.latest_run().await?,
    })
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
        s.push_str(&format!("  {:<10}{}\n", state.as_str(), st.count(state)));
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

/// Failure reasons counted, for the end-of-run report.
pub fn failure_reasons(summary: &Summary) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for t in &summary.tasks {
        if matches!(t.state, TaskState::Failed | TaskState::Dead) {
            let r = t.reason.clone().unwrap_or_else(|| "unknown".into());
            *m.entry(r).or_default() += 1;
        }
    }
    m
}

/// What `apply` did with one patch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Applied {
    pub task: String,
    pub path: String,
    /// None when written; otherwise why the file was left untouched.
    pub skipped: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "{repo} is not a git work tree: apply writes only where every change can be reviewed and undone (git diff, git checkout)"
    )]
    NotGit { repo: String },
    #[error("git failed in {repo}: {detail}")]
    Git { repo: String, detail: String },
}

fn git_out(repo: &Path, args: &[&str]) -> Result<String, ApplyError> {
    let o = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| ApplyError::Git {
            repo: repo.display().to_string(),
            detail: e.to_string(),
        })?;
    if !o.status.success() {
        return Err(ApplyError::Git {
            repo: repo.display().to_string(),
            detail: String::from_utf8_lossy(&o.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Writes done patches into the working tree at `repo`. A file is touched only when its
/// content is still exactly what was scanned (so a patch never lands on other work, including
/// an earlier patch to the same file) and git shows no uncommitted change to it. Each write
/// replaces the file atomically.
pub fn apply_patches(
    repo: &Path,
    tasks: &[TaskRecord],
    only: &[String],
) -> Result<Vec<Applied>, ApplyError> {
    let inside =
        git_out(repo, &["rev-parse", "--is-inside-work-tree"]).map_err(|_| ApplyError::NotGit {
            repo: repo.display().to_string(),
        })?;
    if inside.trim() != "true" {
        return Err(ApplyError::NotGit {
            repo: repo.display().to_string(),
        });
    }
    let mut out = Vec::new();
    let mut touched: std::collections::HashSet<String> = std::collections::HashSet::new();
    for t in tasks {
        if !only.is_empty() && !only.contains(&t.spec.id) {
            continue;
        }
        let (TaskState::Done, Some(patch)) = (t.state, &t.patch) else {
            continue;
        };
        let path = &t.spec.path;
        let skip = |why: String| Applied {
            task: t.spec.id.clone(),
            path: path.clone(),
            skipped: Some(why),
        };
        let file = repo.join(path);
        if touched.contains(path) {
            out.push(skip(
                "another patch of this run was just applied to this file; commit, then `dispatcher run` again for the rest"
                    .into(),
            ));
            continue;
        }
        let dirty = git_out(repo, &["status", "--porcelain", "--", path])?;
        if !dirty.trim().is_empty() {
            out.push(skip("the file has uncommitted changes".into()));
            continue;
        }
        let content = match std::fs::read_to_string(&file) {
            Ok(c) => c,
            Err(e) => {
                out.push(skip(format!("cannot read it: {e}")));
                continue;
            }
        };
        use sha2::{Digest, Sha256};
        let hash = hex::encode(Sha256::digest(content.as_bytes()));
        if hash != t.spec.content_hash {
            out.push(skip(
                "the file changed since the scan (or another patch to it was applied): scan again"
                    .into(),
            ));
            continue;
        }
        let new = match crate::edit::apply_unified(&content, patch) {
            Ok(n) => n,
            Err(e) => {
                out.push(skip(format!("the patch does not apply: {e}")));
                continue;
            }
        };
        let tmp = file.with_extension(format!("tars-{}.tmp", &t.spec.id));
        let write = std::fs::write(&tmp, &new).and_then(|()| {
            if let Ok(meta) = std::fs::metadata(&file) {
                std::fs::set_permissions(&tmp, meta.permissions())?;
            }
            std::fs::rename(&tmp, &file)
        });
        match write {
            Ok(()) => {
                touched.insert(path.clone());
                out.push(Applied {
                    task: t.spec.id.clone(),
                    path: path.clone(),
                    skipped: None,
                })
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                out.push(skip(format!("cannot write it: {e}")));
            }
        }
    }
    Ok(out)
}
