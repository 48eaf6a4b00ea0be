//! The pages, server-rendered. Everything shown comes from Redis, and through it from
//! repositories (paths, TODO text, answers, patches) and LLMs: every value goes through
//! [`esc`], so no text of theirs can become markup or script. No file is fetched from
//! elsewhere (no CDN): the style is inline and the only script is the reload of a live page.

use std::collections::HashMap;
use std::fmt::Write;

use super::stats::{Filter, PAGE_SIZE, RunSummary, Yield, percent};
use crate::queue::{EndpointStatus, RunStatus, TaskRecord, TaskState};

/// HTML-escapes `s` for text and for attribute values in double quotes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Terminal escapes and other controls from a hostile repository: shown, not kept.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;\
text-align:left;vertical-align:top}th{background:#f3f3f3}pre{background:#f7f7f7;padding:8px;\
overflow:auto;max-height:40em}.add{color:#064}.del{color:#a00}.bar{background:#58c;height:10px;\
display:inline-block}nav a{margin-right:1em}.muted{color:#777}form.inline{display:inline}";

/// The page around `body`; a live page reloads itself every `refresh` seconds.
pub fn page(title: &str, body: &str, refresh: Option<u32>) -> String {
    let reload = refresh
        .map(|s| {
            format!(
                "<script>setTimeout(function(){{location.reload()}},{});</script>",
                s * 1000
            )
        })
        .unwrap_or_default();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} - tars-fleet</title>\
         <style>{STYLE}</style></head><body><nav><a href=\"/\">runs</a><a href=\"/workers\">\
         workers and endpoints</a><a href=\"/metrics\">metrics</a></nav><h1>{t}</h1>{body}{reload}\
         </body></html>",
        t = esc(title)
    )
}

fn ms(v: Option<u64>) -> String {
    v.map(|v| format!("{v} ms")).unwrap_or_else(|| "-".into())
}

fn age(now_ms: u64, then_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

/// Minutes with their counts per final state, oldest first (the bounded history).
pub type History = [(u64, std::collections::BTreeMap<String, u64>)];

pub fn runs_page(rows: &[RunStatus], history: &History, now_ms: u64) -> String {
    let mut b = String::new();
    if rows.is_empty() {
        b.push_str("<p>No runs in Redis. Start one with <code>dispatcher run PATH</code>.</p>");
    }
    b.push_str(
        "<table id=\"runs\"><tr><th>run</th><th>repository</th><th>age</th><th>progress</th>\
         <th>queued</th><th>running</th><th>retrying</th><th>verifying</th><th>done</th>\
         <th>failed</th><th>dead</th><th>cancelled</th><th>done / finished</th><th>tokens</th>\
         <th>LLM time</th></tr>",
    );
    let mut live = false;
    for st in rows {
        let c = &st.counts;
        let finished = c.finished();
        live |= st.finished_at.is_none() && finished < st.total;
        let ended = c.get(TaskState::Done) + c.get(TaskState::Failed) + c.get(TaskState::Dead);
        let ratio = if ended == 0 {
            "-".to_string()
        } else {
            format!(
                "{:.0}%",
                100.0 * c.get(TaskState::Done) as f64 / ended as f64
            )
        };
        let _ = write!(
            b,
            "<tr class=\"run\" data-run=\"{id}\"><td><a href=\"/runs/{href}\">{id}</a></td>\
             <td>{repo}</td><td>{age}</td><td>{finished}/{total}</td>",
            id = esc(&st.run),
            href = percent(&st.run),
            repo = esc(&st.repo),
            age = age(now_ms, st.created_at),
            total = st.total
        );
        for s in TaskState::ALL {
            let _ = write!(b, "<td class=\"{}\">{}</td>", s.as_str(), c.get(s));
        }
        let _ = write!(
            b,
            "<td>{ratio}</td><td>{} + {}</td><td>{:.1} s</td></tr>",
            st.prompt_tokens,
            st.completion_tokens,
            st.llm_ms as f64 / 1000.0
        );
    }
    b.push_str("</table>");
    // The fleet's last hour, from the per-minute counters the scripts keep in Redis.
    b.push_str(
        "<h2>Tasks finished per minute, last hour (all runs)</h2><table id=\"history\">\
         <tr><th>minute (UTC)</th><th>done</th><th>failed</th><th>dead</th><th>cancelled</th>\
         <th></th></tr>",
    );
    let total = |c: &std::collections::BTreeMap<String, u64>| {
        c.values().fold(0u64, |a, v| a.saturating_add(*v))
    };
    let top = history
        .iter()
        .map(|(_, c)| total(c))
        .max()
        .unwrap_or(1)
        .max(1);
    for (minute, counts) in history {
        let n = |s: &str| counts.get(s).copied().unwrap_or(0);
        let all = total(counts);
        let _ = write!(
            b,
            "<tr class=\"minute\"><td>{:02}:{:02}</td><td class=\"done\">{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td><span class=\"bar\" style=\"width:{}px\"></span></td></tr>",
            (minute / 60) % 24,
            minute % 60,
            n("done"),
            n("failed"),
            n("dead"),
            n("cancelled"),
            (200.0 * all as f64 / top as f64) as u64
        );
    }
    b.push_str("</table>");
    page("Runs", &b, live.then_some(5))
}

fn yield_table(title: &str, y: &Yield) -> String {
    let mut b = format!(
        "<h3>{}</h3><table><tr><th></th><th>done</th><th>finished</th><th>yield</th></tr>",
        esc(title)
    );
    for (k, (done, all)) in y {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{done}</td><td>{all}</td><td>{:.0}%</td></tr>",
            esc(k),
            100.0 * *done as f64 / (*all).max(1) as f64
        );
    }
    b.push_str("</table>");
    b
}

pub struct RunPage<'a> {
    pub status: &'a RunStatus,
    pub tasks: &'a [&'a TaskRecord],
    /// Matching the filter, before paging.
    pub matching: usize,
    pub summary: &'a RunSummary,
    pub filter: &'a Filter,
    pub languages: Vec<String>,
    pub kinds: Vec<String>,
    pub admin: bool,
    pub notice: Option<String>,
}

fn select(name: &str, current: &str, options: &[String]) -> String {
    let mut b = format!("<select name=\"{name}\"><option value=\"\">any {name}</option>");
    for o in options {
        let sel = if o == current { " selected" } else { "" };
        let _ = write!(b, "<option value=\"{v}\"{sel}>{v}</option>", v = esc(o));
    }
    b.push_str("</select>");
    b
}

fn action(run: &str, what: &str, label: &str, hidden: &[(&str, &str)]) -> String {
    let mut fields = String::new();
    for (k, v) in hidden {
        let _ = write!(
            fields,
            "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
            esc(v)
        );
    }
    format!(
        "<form class=\"inline\" method=\"post\" action=\"/runs/{}/{what}\">{fields}\
         <input type=\"password\" name=\"token\" placeholder=\"admin token\" size=\"12\">\
         <button>{label}</button></form> ",
        percent(run)
    )
}

pub fn run_page(p: &RunPage<'_>) -> String {
    let st = p.status;
    let s = p.summary;
    let f = p.filter;
    let mut b = String::new();
    if let Some(n) = &p.notice {
        let _ = write!(b, "<p id=\"notice\"><b>{}</b></p>", esc(n));
    }
    let c = &st.counts;
    let _ = write!(
        b,
        "<p>repository <code>{repo}</code>{commit}; {fin} of {total} finished</p>\
         <p id=\"counts\">",
        repo = esc(&st.repo),
        commit = st
            .commit
            .as_deref()
            .map(|c| format!(" at <code>{}</code>", esc(c)))
            .unwrap_or_default(),
        fin = c.finished(),
        total = st.total
    );
    for state in TaskState::ALL {
        let _ = write!(
            b,
            "<span class=\"count\" data-state=\"{s}\">{s} {n}</span> ",
            s = state.as_str(),
            n = c.get(state)
        );
    }
    b.push_str("</p>");
    let _ = write!(
        b,
        "<p>tokens {} prompt + {} completion; LLM time {:.1} s; LLM time per task p50 {} p95 {} \
         p99 {}; whole task p50 {} p95 {} p99 {}</p>",
        s.prompt_tokens,
        s.completion_tokens,
        s.llm_ms_total as f64 / 1000.0,
        ms(s.llm_ms[0]),
        ms(s.llm_ms[1]),
        ms(s.llm_ms[2]),
        ms(s.task_ms[0]),
        ms(s.task_ms[1]),
        ms(s.task_ms[2]),
    );
    if p.admin {
        b.push_str("<p>");
        b.push_str(&action(&st.run, "cancel", "cancel the run", &[]));
        for state in ["failed", "dead"] {
            b.push_str(&action(
                &st.run,
                "retry",
                &format!("retry the {state} tasks shown"),
                &[
                    ("state", state),
                    ("kind", &f.kind),
                    ("lang", &f.lang),
                    ("path", &f.path),
                    ("q", &f.q),
                ],
            ));
        }
        b.push_str(&action(&st.run, "purge", "purge the run", &[]));
        b.push_str("</p>");
    } else {
        b.push_str(
            "<p class=\"muted\">read-only: start the dashboard with --admin-token-file to \
             cancel, retry and purge here</p>",
        );
    }
    // Failure reasons, as a histogram.
    b.push_str("<h3>Failure reasons</h3><table id=\"reasons\">");
    let top = s.reasons.first().map(|r| r.1).unwrap_or(1).max(1);
    for (kind, n) in &s.reasons {
        let _ = write!(
            b,
            "<tr><td><a href=\"?{q}\">{k}</a></td><td>{n}</td><td><span class=\"bar\" \
             style=\"width:{w}px\"></span></td></tr>",
            q = Filter {
                kind: kind.clone(),
                page: 1,
                ..Filter::default()
            }
            .query(1),
            k = esc(kind),
            w = (200.0 * *n as f64 / top as f64) as u64
        );
    }
    b.push_str("</table>");
    b.push_str(&yield_table("Yield per language", &s.by_language));
    b.push_str(&yield_table("Yield per model", &s.by_model));
    b.push_str("<h3>Tasks finished per minute</h3><table id=\"throughput\">");
    for (minute, n) in &s.per_minute {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{n}</td></tr>",
            crate::time::format_utc(minute * 60)
        );
    }
    b.push_str("</table>");
    // The filter and the table.
    let _ = write!(
        b,
        "<h2>Tasks</h2><form method=\"get\" id=\"filter\">{}{}{}\
         <input name=\"path\" placeholder=\"path contains\" value=\"{}\">\
         <input name=\"q\" placeholder=\"text contains\" value=\"{}\"><button>filter</button></form>",
        select(
            "state",
            &f.state,
            &TaskState::ALL.map(|s| s.as_str().to_string())
        ),
        select("kind", &f.kind, &p.kinds),
        select("lang", &f.lang, &p.languages),
        esc(&f.path),
        esc(&f.q)
    );
    let pages = p.matching.div_ceil(PAGE_SIZE).max(1);
    let page_no = f.page.clamp(1, pages);
    let _ = write!(
        b,
        "<p id=\"matching\">{} tasks match; page {page_no} of {pages}</p>",
        p.matching
    );
    b.push_str(
        "<table id=\"tasks\"><tr><th>task</th><th>state</th><th>path:line</th><th>tag</th>\
         <th>text</th><th>language</th><th>attempts</th><th>reason</th></tr>",
    );
    for t in p.tasks {
        let _ = write!(
            b,
            "<tr class=\"task\"><td><a href=\"/runs/{run}/tasks/{id}\">{idt}</a></td>\
             <td>{state}</td><td>{path}:{line}</td><td>{tag}</td><td>{text}</td><td>{lang}</td>\
             <td>{att}</td><td>{reason}</td></tr>",
            run = percent(&st.run),
            id = percent(&t.spec.id),
            idt = esc(&t.spec.id),
            state = t.state.as_str(),
            path = esc(&t.spec.path),
            line = t.spec.line,
            tag = esc(&t.spec.tag),
            text = esc(&t.spec.text),
            lang = esc(&t.spec.language),
            att = t.outcome.attempts,
            reason = esc(t.outcome.reason_kind.as_deref().unwrap_or(""))
        );
    }
    b.push_str("</table><p>");
    if page_no > 1 {
        let _ = write!(
            b,
            "<a rel=\"prev\" href=\"?{}\">previous</a> ",
            f.query(page_no - 1)
        );
    }
    if page_no < pages {
        let _ = write!(
            b,
            "<a rel=\"next\" href=\"?{}\">next</a>",
            f.query(page_no + 1)
        );
    }
    b.push_str("</p>");
    let live = st.finished_at.is_none() && c.finished() < st.total;
    page(&format!("Run {}", st.run), &b, live.then_some(5))
}

/// A unified diff, each line coloured by its kind.
fn diff_html(patch: &str) -> String {
    let mut b = String::from("<pre id=\"diff\">");
    for line in patch.lines() {
        let class = match line.as_bytes().first() {
            Some(b'+') if !line.starts_with("+++") => "add",
            Some(b'-') if !line.starts_with("---") => "del",
            _ => "",
        };
        let _ = writeln!(b, "<span class=\"{class}\">{}</span>", esc(line));
    }
    b.push_str("</pre>");
    b
}

pub fn task_page(t: &TaskRecord, block: Option<&str>) -> String {
    let o = &t.outcome;
    let mut b = String::new();
    let _ = write!(
        b,
        "<p><a href=\"/runs/{run}\">run {runt}</a></p><table id=\"todo\">\
         <tr><th>state</th><td id=\"state\">{state}</td></tr>\
         <tr><th>where</th><td>{path}:{line} ({lang}){sym}</td></tr>\
         <tr><th>TODO</th><td>{tag}: {text}</td></tr>\
         <tr><th>attempts</th><td>{att}{repairs}</td></tr>\
         <tr><th>worker</th><td>{worker}</td></tr>\
         <tr><th>model</th><td>{model}, {pt} + {ct} tokens, {calls} calls, LLM {llm}</td></tr>\
         <tr><th>reason</th><td>{kind} {reason}</td></tr></table>",
        run = percent(&t.run),
        runt = esc(&t.run),
        state = t.state.as_str(),
        path = esc(&t.spec.path),
        line = t.spec.line,
        lang = esc(&t.spec.language),
        sym = t
            .spec
            .symbol
            .as_deref()
            .map(|s| format!(", in <code>{}</code>", esc(s)))
            .unwrap_or_default(),
        tag = esc(&t.spec.tag),
        text = esc(&t.spec.text),
        att = o.attempts,
        repairs = if o.repairs > 0 {
            format!(", {} repair rounds", o.repairs)
        } else {
            String::new()
        },
        worker = esc(o.worker.as_deref().unwrap_or("-")),
        model = esc(o.model.as_deref().unwrap_or("-")),
        pt = o.prompt_tokens.unwrap_or(0),
        ct = o.completion_tokens.unwrap_or(0),
        calls = o.llm_calls.unwrap_or(0),
        llm = ms(o.llm_ms),
        kind = esc(o.reason_kind.as_deref().unwrap_or("")),
        reason = esc(o.reason.as_deref().unwrap_or("")),
    );
    b.push_str("<h3>Timeline</h3><table id=\"timeline\">");
    for (what, at) in [
        ("enqueued", o.enqueued_at),
        ("started", o.started_at),
        ("finished", o.finished_at),
    ] {
        if let Some(at) = at {
            let _ = write!(
                b,
                "<tr><td>{what}</td><td>{}</td></tr>",
                crate::time::format_utc(at / 1000)
            );
        }
    }
    for (i, e) in o.errors.iter().enumerate() {
        let when = e["at"]
            .as_u64()
            .map(|at| format!("{} ", crate::time::format_utc(at / 1000)))
            .unwrap_or_default();
        let what = e["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string());
        let _ = write!(
            b,
            "<tr class=\"attempt\"><td>attempt {} failed</td><td>{}{} ({})</td></tr>",
            e["attempt"].as_u64().unwrap_or(i as u64 + 1),
            esc(&when),
            esc(&what),
            esc(e["kind"].as_str().unwrap_or(""))
        );
    }
    b.push_str("</table>");
    if let Some(block) = block {
        let _ = write!(
            b,
            "<h3>The block as scanned</h3><pre id=\"block\">{}</pre>",
            esc(block)
        );
    }
    match &t.patch {
        Some(p) => {
            b.push_str("<h3>Patch</h3>");
            b.push_str(&diff_html(p));
        }
        None => b.push_str("<p class=\"muted\">no patch</p>"),
    }
    if let Some(v) = &o.verified {
        let _ = write!(
            b,
            "<h3>Verification: {}</h3><pre id=\"verify\">{}</pre>",
            esc(v),
            esc(o.verify_output.as_deref().unwrap_or(""))
        );
    }
    if let Some(a) = &t.answer {
        let _ = write!(b, "<h3>Raw answer</h3><pre id=\"answer\">{}</pre>", esc(a));
    }
    page(&format!("Task {}", t.spec.id), &b, None)
}

pub fn workers_page(
    workers: &[(HashMap<String, String>, Option<u64>)],
    endpoints: &[EndpointStatus],
    now_ms: u64,
) -> String {
    let mut b = String::from(
        "<h2>Workers</h2><table id=\"workers\"><tr><th>worker</th><th>host</th><th>role</th>\
         <th>state</th><th>current</th><th>up</th><th>done</th><th>failed</th>\
         <th>heartbeat</th></tr>",
    );
    for (w, beat_age) in workers {
        let g = |k: &str| esc(w.get(k).map(String::as_str).unwrap_or(""));
        // Each task at work, linked, with how long it has been at it.
        let field = |k: &str| -> Vec<String> {
            w.get(k)
                .map(|v| {
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (tasks, runs, since) = (
            field("current"),
            field("current_runs"),
            field("current_since"),
        );
        let current: Vec<String> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let age_of = since
                    .get(i)
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(|s| format!(" ({})", age(now_ms, s)))
                    .unwrap_or_default();
                match runs.get(i) {
                    Some(r) => format!(
                        "<a href=\"/runs/{}/tasks/{}\">{}</a>{age_of}",
                        percent(r),
                        percent(t),
                        esc(t)
                    ),
                    None => format!("{}{age_of}", esc(t)),
                }
            })
            .collect();
        let up = w
            .get("started_at")
            .and_then(|s| s.parse::<u64>().ok())
            .map(|s| age(now_ms, s))
            .unwrap_or_default();
        let _ = write!(
            b,
            "<tr class=\"worker\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{up}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            g("id"),
            g("host"),
            g("role"),
            g("state"),
            current.join(" "),
            g("done"),
            g("failed"),
            beat_age
                .map(|a| format!("{} s ago", a / 1000))
                .unwrap_or_default()
        );
    }
    b.push_str(
        "</table><h2>LLM endpoints</h2><table id=\"endpoints\"><tr><th>url</th>\
                <th>model</th><th>state</th><th>in flight</th><th>limit</th><th>requests</th>\
                <th>errors</th><th>p50</th><th>p95</th></tr>",
    );
    for e in endpoints {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.url),
            esc(&e.model),
            esc(&e.state),
            e.in_flight,
            e.limit
                .map(|l| l.to_string())
                .unwrap_or_else(|| "none".into()),
            esc(&e.limit_source),
            e.requests,
            e.errors,
            ms(e.p50_ms),
            ms(e.p95_ms)
        );
    }
    b.push_str("</table>");
    page("Workers and endpoints", &b, Some(5))
}
