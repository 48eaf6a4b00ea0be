//! `dispatcher dashboard`: a small web server over the same Redis keys `status` reads. Runs,
//! a run's tasks (filtered, paged, summarised), a task, workers and endpoints, Prometheus
//! metrics, and (with an admin token) cancel, retry and purge.
//!
//! Read-only unless started with a token: the actions change the fleet's work, so a page that
//! anyone on the network can open must not offer them for free. The token is typed into each
//! action's form (or sent as `Authorization: Bearer`), never kept in a cookie, so another site
//! cannot make a browser submit an action (no CSRF). Every action is logged.

pub mod html;
pub mod metrics;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::queue::{Queue, QueueError, TaskRecord, TaskState, keys};
use crate::secret::Secret;
use stats::{Filter, PAGE_SIZE};

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("cannot listen on {addr}: {source}. Pick a free address with --listen")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the dashboard server failed: {0}")]
    Serve(std::io::Error),
}

/// What the server holds.
pub struct Dashboard {
    queue: Queue,
    admin_token: Option<Secret>,
}

type Shared = Arc<Dashboard>;

/// Headers on every answer: no page may be framed by another site (the action forms would be
/// clickjacked), no content sniffed, nothing loaded from elsewhere.
async fn hardened(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    r
}

/// A dashboard on a loopback address answers only requests for that address (`Host:
/// 127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`): a web page elsewhere cannot read it through
/// a DNS name that resolves to 127.0.0.1 (DNS rebinding).
async fn loopback_host(
    State(port): State<Option<u16>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(port) = port {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ok = ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|h| host == format!("{h}:{port}") || (port == 80 && host == *h));
        if !ok {
            return (
                StatusCode::MISDIRECTED_REQUEST,
                "this dashboard listens on loopback and answers only for 127.0.0.1, localhost \
                 or [::1] with its port",
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// The app, for [`serve`] and for tests that drive it without a socket.
pub fn router(queue: Queue, admin_token: Option<Secret>) -> Router {
    let state: Shared = Arc::new(Dashboard { queue, admin_token });
    Router::new()
        .route("/", get(runs))
        .route("/runs/{run}", get(run))
        .route("/runs/{run}/tasks/{task}", get(task))
        .route("/runs/{run}/cancel", post(cancel))
        .route("/runs/{run}/retry", post(retry))
        .route("/runs/{run}/purge", post(purge))
        .route("/workers", get(workers))
        .route("/metrics", get(metrics_handler))
        .with_state(state)
        .layer(axum::middleware::map_response(hardened))
}

/// Serves on `addr` until `shutdown` completes; logs the address it listens on.
pub async fn serve(
    queue: Queue,
    addr: SocketAddr,
    admin_token: Option<Secret>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DashboardError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DashboardError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(
        address = %local,
        actions = if admin_token.is_some() { "on (token required)" } else { "off (read-only)" },
        "dashboard listening on http://{local}/"
    );
    let loopback = local.ip().is_loopback().then_some(local.port());
    let app = router(queue, admin_token).layer(axum::middleware::from_fn_with_state(
        loopback,
        loopback_host,
    ));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(DashboardError::Serve)
}

/// An error page with its status: a missing run is 404, Redis trouble 503.
fn failure(e: QueueError) -> Response {
    let code = match e {
        QueueError::NoSuchRun(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let msg = e.to_string();
    (
        code,
        Html(html::page(
            "Error",
            &format!("<p>{}</p>", html::esc(&msg)),
            None,
        )),
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(html::page(
            "Not found",
            &format!("<p>{}</p>", html::esc(what)),
            None,
        )),
    )
        .into_response()
}

async fn runs(State(d): State<Shared>) -> Response {
    let now = crate::time::now_ms();
    let ids = match d.queue.recent_runs(100).await {
        Ok(ids) => ids,
        Err(e) => return failure(e),
    };
    let mut rows = Vec::new();
    for id in ids {
        // A run purged between the listing and now is left out.
        // One hash per run: its counters and cost totals are kept by the scripts, so a page
        // that reloads every few seconds never reads a run's tasks.
        let Ok(status) = d.queue.run_status(&id).await else {
            continue;
        };
        rows.push(status);
    }
    let history = d.queue.minute_history(60).await.unwrap_or_default();
    Html(html::runs_page(&rows, &history, now)).into_response()
}

/// What a run page needs; `notice` says what an action just did.
async fn render_run(d: &Dashboard, run: &str, filter: &Filter, notice: Option<String>) -> Response {
    let status = match d.queue.run_status(run).await {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    let tasks = match d.queue.run_tasks(run).await {
        Ok(t) => t,
        Err(e) => return failure(e),
    };
    let summary = stats::summarize(&tasks);
    let mut languages: Vec<String> = tasks.iter().map(|t| t.spec.language.clone()).collect();
    languages.sort();
    languages.dedup();
    let mut kinds: Vec<String> = tasks
        .iter()
        .filter_map(|t| t.outcome.reason_kind.clone())
        .collect();
    kinds.sort();
    kinds.dedup();
    let mut matching: Vec<&TaskRecord> = tasks.iter().filter(|t| filter.matches(t)).collect();
    matching.sort_by(|a, b| (&a.spec.path, a.spec.line).cmp(&(&b.spec.path, b.spec.line)));
    let pages = matching.len().div_ceil(PAGE_SIZE).max(1);
    let page_no = filter.page.clamp(1, pages);
    let shown: Vec<&TaskRecord> = matching
        .iter()
        .skip((page_no - 1).saturating_mul(PAGE_SIZE))
        .take(PAGE_SIZE)
        .copied()
        .collect();
    Html(html::run_page(&html::RunPage {
        status: &status,
        tasks: &shown,
        matching: matching.len(),
        summary: &summary,
        filter,
        languages,
        kinds,
        admin: d.admin_token.is_some(),
        notice,
    }))
    .into_response()
}

async fn run(
    State(d): State<Shared>,
    Path(run): Path<String>,
    Query(filter): Query<Filter>,
) -> Response {
    let notice = (!filter.notice.is_empty()).then(|| filter.notice.clone());
    render_run(&d, &run, &filter, notice).await
}

async fn task(State(d): State<Shared>, Path((run, id)): Path<(String, String)>) -> Response {
    let t = match d.queue.task(&run, &id).await {
        Ok(Some(t)) => t,
        Ok(None) => return not_found(&format!("no task {id} in run {run}")),
        Err(e) => return failure(e),
    };
    // The block as scanned, from the stored file (its range checked: it comes from Redis).
    let block = match d.queue.get_blob(&t.spec.content_hash).await {
        Ok(Some(text)) => text
            .get(t.spec.block_start..t.spec.block_end)
            .map(str::to_string),
        _ => None,
    };
    Html(html::task_page(&t, block.as_deref())).into_response()
}

async fn workers(State(d): State<Shared>) -> Response {
    let beats = match d.queue.heartbeats().await {
        Ok(b) => b,
        Err(e) => return failure(e),
    };
    // Heartbeat age from the key's time to live: a beat sets it to its full length.
    let mut c = d.queue.conn();
    let mut rows = Vec::new();
    for b in beats {
        let ttl: Option<i64> = match b.get("id") {
            Some(id) => redis::cmd("PTTL")
                .arg(keys::worker(id))
                .query_async(&mut c)
                .await
                .ok(),
            None => None,
        };
        let beat_age = ttl
            .filter(|t| *t >= 0)
            .map(|t| crate::worker::HEARTBEAT_TTL_MS.saturating_sub(t as u64));
        rows.push((b, beat_age));
    }
    let endpoints = d.queue.llm_endpoint_status().await.unwrap_or_default();
    Html(html::workers_page(&rows, &endpoints, crate::time::now_ms())).into_response()
}

async fn metrics_handler(State(d): State<Shared>) -> Response {
    match metrics::render(&d.queue).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// An action's form: the token, and for retry the state and the filter it applies to.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ActionForm {
    token: String,
    state: String,
    kind: String,
    lang: String,
    path: String,
    q: String,
}

/// The refusal of an action, unless the request carries the admin token (form field or bearer
/// header, compared in constant time): the dashboard has none, or it does not match.
fn refusal(d: &Dashboard, headers: &HeaderMap, form: &ActionForm) -> Option<Response> {
    let Some(want) = &d.admin_token else {
        return Some(
            (
                StatusCode::FORBIDDEN,
                Html(html::page(
                    "Read-only",
                    "<p>This dashboard is read-only: start it with --admin-token-file FILE (or \
                 TARS_DASHBOARD_TOKEN_FILE) to allow cancel, retry and purge.</p>",
                    None,
                )),
            )
                .into_response(),
        );
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme's name is case-insensitive (RFC 9110).
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .unwrap_or("");
    let given = if form.token.is_empty() {
        bearer
    } else {
        &form.token
    };
    if constant_time_eq(given.as_bytes(), want.expose().as_bytes()) {
        None
    } else {
        tracing::warn!("dashboard: an action was refused: wrong or missing admin token");
        Some(
            (
                StatusCode::UNAUTHORIZED,
                Html(html::page(
                    "Unauthorized",
                    "<p>Wrong or missing admin token: type the token the dashboard was started \
                 with.</p>",
                    None,
                )),
            )
                .into_response(),
        )
    }
}

/// An action's form, from a urlencoded body whatever its content type says (a client that sends
/// only `Authorization: Bearer` sends no form at all); a body that does not parse is empty.
fn action_form(body: &[u8]) -> ActionForm {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

/// After an action, the run page by GET (303), with what was done: a reload of the page does
/// not repeat the action, and its links and filter work from the run's own URL.
fn done(run: &str, notice: &str) -> Response {
    Redirect::to(&format!(
        "/runs/{}?notice={}",
        stats::percent(run),
        stats::percent(notice)
    ))
    .into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

async fn cancel(
    State(d): State<Shared>,
    Path(run): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = action_form(&body);
    if let Some(r) = refusal(&d, &headers, &form) {
        return r;
    }
    match d.queue.cancel_run(&run).await {
        Ok(n) => {
            tracing::info!(run = %run, tasks = n, "dashboard: run cancelled");
            done(&run, &format!("cancelled {n} tasks"))
        }
        Err(e) => failure(e),
    }
}

async fn retry(
    State(d): State<Shared>,
    Path(run): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = action_form(&body);
    if let Some(r) = refusal(&d, &headers, &form) {
        return r;
    }
    let state = match form.state.parse::<TaskState>() {
        Ok(s @ (TaskState::Failed | TaskState::Dead | TaskState::Cancelled)) => s,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "state must be failed, dead or cancelled",
            )
                .into_response();
        }
    };
    let filter = Filter {
        state: state.as_str().to_string(),
        kind: form.kind.clone(),
        lang: form.lang.clone(),
        path: form.path.clone(),
        q: form.q.clone(),
        ..Filter::default()
    };
    let filtered = !(filter.kind.is_empty()
        && filter.lang.is_empty()
        && filter.path.is_empty()
        && filter.q.is_empty());
    let result = if filtered {
        let ids: Vec<String> = match d.queue.run_tasks(&run).await {
            Ok(tasks) => tasks
                .iter()
                .filter(|t| filter.matches(t))
                .map(|t| t.spec.id.clone())
                .collect(),
            Err(e) => return failure(e),
        };
        d.queue.retry_tasks(&run, state, Some(&ids)).await
    } else {
        d.queue.retry_run(&run, state).await
    };
    match result {
        Ok(n) => {
            tracing::info!(run = %run, state = state.as_str(), tasks = n, filtered, "dashboard: tasks retried");
            done(&run, &format!("{n} {} tasks queued again", state.as_str()))
        }
        Err(e) => failure(e),
    }
}

async fn purge(
    State(d): State<Shared>,
    Path(run): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = action_form(&body);
    if let Some(r) = refusal(&d, &headers, &form) {
        return r;
    }
    match d.queue.purge_run(&run).await {
        Ok(n) => {
            tracing::info!(run = %run, tasks = n, "dashboard: run purged");
            Html(html::page(
                "Purged",
                &format!(
                    "<p id=\"notice\">run {} purged: {n} tasks removed. <a href=\"/\">runs</a></p>",
                    html::esc(&run)
                ),
                None,
            ))
            .into_response()
        }
        Err(e) => failure(e),
    }
}
