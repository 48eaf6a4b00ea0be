//! The two LLM backends.
//!
//! Ollama's native `/api/chat` is the default because it is the only protocol that lets us set
//! the context window per request (`options.num_ctx`): Ollama silently truncates a longer
//! prompt, so we size it ourselves and check `prompt_eval_count` afterwards. The
//! OpenAI-compatible `/v1/chat/completions` is the second backend for llama.cpp, vLLM, LM Studio
//! and friends.
//!
//! Errors say what kind of failure they are ([`LlmError::failure_kind`]): a busy or
//! unreachable server may answer in a moment, a missing model or a refused request never will;
//! [`crate::failure::decide`] turns that into a retry or a failure.
//!
//! The wire formats live in [`ollama`] and [`openai`].

mod ollama;
mod openai;

pub use ollama::{OllamaDone, OllamaStream};
pub use openai::{OpenAiCompletion, decode_completion};

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{LlmApi, LlmConfig};
use crate::failure::{Decision, FailureKind, decide};

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(
        "cannot reach the LLM server at {url}: {detail}. Start it or set llm.url / TARS_LLM__URL"
    )]
    Unreachable { url: String, detail: String },
    #[error("the LLM at {url} did not answer within {secs} s (llm.timeout_secs)")]
    Timeout { url: String, secs: u64 },
    /// HTTP 429 or 503: the server is up and asks to be asked later, maybe saying when
    /// (`Retry-After`, already bounded by [`MAX_RETRY_AFTER`]).
    #[error("the LLM at {url} is busy (HTTP {status}{}): {body}", retry_after_note(*retry_after))]
    Busy {
        url: String,
        status: u16,
        retry_after: Option<Duration>,
        body: String,
    },
    #[error("the LLM at {url} failed with HTTP {status}: {body}")]
    Server {
        url: String,
        status: u16,
        body: String,
    },
    #[error("model {model:?} is not available at {url}{hint}")]
    ModelMissing {
        url: String,
        model: String,
        hint: String,
    },
    /// The server speaks the other API than `llm.api`: the start check's listing answered
    /// 404, the other API's answered with a model list.
    #[error(
        "the server at {url} is an OpenAI-compatible server (not Ollama): set llm.api = \"openai\" \
         (TARS_LLM__API=openai; with several endpoints, api = \"openai\" on its [[llm.endpoints]] entry)"
    )]
    NotOllama { url: String },
    #[error("the LLM at {url} refused the request with HTTP {status}: {body}")]
    Rejected {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the LLM stream from {url} broke off: {detail}")]
    Stream { url: String, detail: String },
    #[error(
        "the prompt was truncated by the server: it evaluated {evaluated} tokens of about {estimated}; raise llm.num_ctx or lower scan.max_block_lines"
    )]
    Truncated { evaluated: u64, estimated: u64 },
    #[error("the LLM at {url} answered something that is not the documented format: {detail}")]
    Protocol { url: String, detail: String },
    /// The server sent more than the client holds in memory (see [`StreamLimits`]): a server
    /// that ignores the answer's token limit, or one that is not an LLM server.
    #[error(
        "the LLM at {url} sent {what} longer than the client's limit of {limit} bytes; \
         check that llm.url is an LLM server that honours llm.max_answer_tokens"
    )]
    TooLarge {
        url: String,
        what: &'static str,
        limit: usize,
    },
}

/// The most the client buffers from one LLM response, so that a broken or hostile server
/// (an endless line, an endless answer) costs a bounded amount of memory: past a limit the
/// response fails with [`LlmError::TooLarge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// One NDJSON line of Ollama's stream (a token or two, or the final counts).
    pub max_line_bytes: usize,
    /// The answer's text: far above what `llm.max_answer_tokens` (at most `llm.num_ctx`)
    /// tokens of code come to.
    pub max_content_bytes: usize,
    /// A whole non-streamed response body (OpenAI's completion, JSON-escaped answer included).
    pub max_body_bytes: usize,
}

impl StreamLimits {
    /// 1 MiB.
    pub const MAX_LINE_BYTES: usize = 1 << 20;
    /// 4 MiB.
    pub const MAX_CONTENT_BYTES: usize = 4 << 20;
    /// 16 MiB: room for the answer at its limit, every byte JSON-escaped.
    pub const MAX_BODY_BYTES: usize = 16 << 20;
    /// What an error response's body is read to at most: only its first 500 characters are
    /// shown.
    pub const MAX_ERROR_BODY_BYTES: usize = 64 << 10;
}

impl StreamLimits {
    /// The limits for answers of at most `max_answer_tokens` tokens: 64 bytes a token (far
    /// above what a token of code is, a run of indentation included), at least 256 KiB, at
    /// most the defaults. A server that ignores `max_tokens` and streams on is cut off here,
    /// long before a worker's memory or Redis (which stores the answer) feel it.
    pub fn for_answer_tokens(max_answer_tokens: u32) -> StreamLimits {
        let content = (max_answer_tokens as usize)
            .saturating_mul(64)
            .clamp(256 << 10, Self::MAX_CONTENT_BYTES);
        StreamLimits {
            max_line_bytes: Self::MAX_LINE_BYTES,
            max_content_bytes: content,
            // Every byte of the answer JSON-escaped (`\u00XX`: 6 bytes), plus the envelope.
            max_body_bytes: (content * 6 + (64 << 10)).min(Self::MAX_BODY_BYTES),
        }
    }
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_line_bytes: Self::MAX_LINE_BYTES,
            max_content_bytes: Self::MAX_CONTENT_BYTES,
            max_body_bytes: Self::MAX_BODY_BYTES,
        }
    }
}

/// A response body collected chunk by chunk up to a limit: past it, [`LlmError::TooLarge`]
/// instead of more memory.
#[derive(Debug)]
pub struct BoundedBody {
    url: String,
    limit: usize,
    buf: Vec<u8>,
}

impl BoundedBody {
    pub fn new(url: &str, limit: usize) -> BoundedBody {
        BoundedBody {
            url: url.to_string(),
            limit,
            buf: Vec::new(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), LlmError> {
        if self.buf.len() + chunk.len() > self.limit {
            return Err(LlmError::TooLarge {
                url: self.url.clone(),
                what: "a response body",
                limit: self.limit,
            });
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// The longest a worker waits on one `Retry-After`: a server asking for more is asked again
/// after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A `Retry-After` header's wait (delay-seconds or an HTTP date, RFC 9110 10.2.3) from `now`,
/// at most [`MAX_RETRY_AFTER`]; None when the value is neither.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

fn retry_after_note(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(", retry after {} s", d.as_secs()),
        None => String::new(),
    }
}

/// The in-place retry delay after the `n`th failure (1-based): 200 ms doubling, at most 10 s,
/// with jitter (between half and all of it).
fn in_place_backoff(n: u32) -> Duration {
    let base = 200u64
        .saturating_mul(1 << n.saturating_sub(1).min(6))
        .min(10_000);
    let jitter: u64 = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl LlmError {
    /// Whether, and how, the same request may succeed later. Truncation is worth a later
    /// attempt (not an immediate one) because a server under memory pressure may have loaded
    /// the model with a smaller context than asked.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            LlmError::Busy { .. } => FailureKind::Backpressure,
            LlmError::Unreachable { .. }
            | LlmError::Timeout { .. }
            | LlmError::Server { .. }
            | LlmError::Stream { .. } => FailureKind::Transient,
            LlmError::Truncated { .. } => FailureKind::Later,
            LlmError::ModelMissing { .. }
            | LlmError::NotOllama { .. }
            | LlmError::Rejected { .. }
            | LlmError::Protocol { .. }
            | LlmError::TooLarge { .. } => FailureKind::Permanent,
        }
    }

    /// A short stable word for summaries and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Unreachable { .. } => "unreachable",
            LlmError::Timeout { .. } => "timeout",
            LlmError::Busy { .. } => "busy",
            LlmError::Server { .. } => "server_error",
            LlmError::ModelMissing { .. } => "model_missing",
            LlmError::NotOllama { .. } => "wrong_api",
            LlmError::Rejected { .. } => "rejected",
            LlmError::Stream { .. } => "stream_error",
            LlmError::Truncated { .. } => "truncated",
            LlmError::Protocol { .. } => "protocol",
            LlmError::TooLarge { .. } => "too_large",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn system(c: impl Into<String>) -> Message {
        Message {
            role: "system".into(),
            content: c.into(),
        }
    }
    pub fn user(c: impl Into<String>) -> Message {
        Message {
            role: "user".into(),
            content: c.into(),
        }
    }
    pub fn assistant(c: impl Into<String>) -> Message {
        Message {
            role: "assistant".into(),
            content: c.into(),
        }
    }
}

/// One finished chat answer and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub content: String,
    pub model: String,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// Why generation stopped (`stop`, `length`...), as the server said: `length` means the
    /// answer was cut at `llm.max_answer_tokens`, which the rejection then says.
    pub finish_reason: Option<String>,
    pub elapsed: Duration,
}

/// A rough token estimate (about four bytes a token for code and English), used to size
/// `num_ctx` and to recognise a truncated prompt; it only has to be right within a factor.
pub fn estimate_tokens(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| (m.content.len() as u64).div_ceil(4) + 4)
        .sum()
}

#[derive(Clone)]
pub struct LlmClient {
    cfg: LlmConfig,
    /// What one answer may take in memory, from `llm.max_answer_tokens`.
    limits: StreamLimits,
    http: reqwest::Client,
    base: String,
}

impl LlmClient {
    pub fn new(cfg: &LlmConfig) -> Result<LlmClient, LlmError> {
        // reqwest is built without a TLS provider of its own (see Cargo.toml).
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(cfg.timeout_secs))
            .build()
            .map_err(|e| LlmError::Unreachable {
                url: cfg.shown_url(),
                detail: e.to_string(),
            })?;
        Ok(LlmClient {
            limits: StreamLimits::for_answer_tokens(cfg.max_answer_tokens),
            cfg: cfg.clone(),
            http,
            base: cfg.url.trim_end_matches('/').to_string(),
        })
    }

    fn send_error(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout {
                url: self.cfg.shown_url(),
                secs: self.cfg.timeout_secs,
            }
        } else if e.is_connect() || e.is_request() {
            LlmError::Unreachable {
                url: self.cfg.shown_url(),
                detail: root_cause(&e),
            }
        } else {
            LlmError::Stream {
                url: self.cfg.shown_url(),
                detail: root_cause(&e),
            }
        }
    }

    /// The whole body of a successful response, or [`LlmError::TooLarge`] past `limit`.
    async fn bounded_body(
        &self,
        mut resp: reqwest::Response,
        limit: usize,
    ) -> Result<Vec<u8>, LlmError> {
        let mut body = BoundedBody::new(&self.cfg.shown_url(), limit);
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.send_error(e))? {
            body.feed(&chunk)?;
        }
        Ok(body.buf)
    }

    /// The start of an error response's body, as text for the error: what follows
    /// [`StreamLimits::MAX_ERROR_BODY_BYTES`] is not read, and a body that breaks off is shown
    /// as far as it came.
    async fn error_body(&self, mut resp: reqwest::Response) -> String {
        let mut body = Vec::new();
        while body.len() < StreamLimits::MAX_ERROR_BODY_BYTES {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(StreamLimits::MAX_ERROR_BODY_BYTES);
        String::from_utf8_lossy(&body).into_owned()
    }

    /// The `Retry-After` of an error response (429, 503), read before its body.
    fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
        resp.headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()))
    }

    /// The error for a response that is not 200: its status, `Retry-After` and body.
    async fn response_error(&self, resp: reqwest::Response) -> LlmError {
        let status = resp.status().as_u16();
        let retry_after = Self::retry_after(&resp);
        let body = self.error_body(resp).await;
        self.status_error(status, retry_after, body)
    }

    fn status_error(&self, status: u16, retry_after: Option<Duration>, body: String) -> LlmError {
        let url = self.cfg.shown_url();
        let body: String = body.chars().take(500).collect();
        match status {
            // Backpressure (rate limited, overloaded): the same request passes later.
            429 | 503 => LlmError::Busy {
                url,
                status,
                retry_after,
                body,
            },
            404 if body.contains("model") || self.cfg.api == LlmApi::Ollama => {
                LlmError::ModelMissing {
                    url,
                    model: self.cfg.model.clone(),
                    hint: self.pull_hint(),
                }
            }
            500..=599 => LlmError::Server { url, status, body },
            _ => LlmError::Rejected { url, status, body },
        }
    }

    fn pull_hint(&self) -> String {
        match self.cfg.api {
            LlmApi::Ollama => format!(": run `ollama pull {}`", self.cfg.model),
            LlmApi::Openai => ": check llm.model against the server's /v1/models".into(),
        }
    }

    /// Checks that the server answers and has the model, so a worker started against a wrong
    /// URL or model says so at once instead of failing every task.
    pub async fn preflight(&self) -> Result<(), LlmError> {
        let (path, names): (&str, fn(&serde_json::Value) -> Vec<String>) = match self.cfg.api {
            LlmApi::Ollama => ("/api/tags", |v| {
                v["models"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .flat_map(|m| {
                                [m["name"].as_str(), m["model"].as_str()]
                                    .into_iter()
                                    .flatten()
                                    .map(str::to_string)
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            }),
            LlmApi::Openai => ("/v1/models", |v| {
                v["data"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|m| m["id"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            }),
        };
        let resp = self
            .with_auth(self.http.get(format!("{}{path}", self.base)))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        if resp.status().as_u16() != 200 {
            // Ollama's listing missing where OpenAI's answers: llama.cpp, vLLM, LM Studio...
            // with the default `llm.api`. Say so rather than suggest `ollama pull`.
            if resp.status().as_u16() == 404
                && self.cfg.api == LlmApi::Ollama
                && self.lists_openai_models().await
            {
                return Err(LlmError::NotOllama {
                    url: self.cfg.shown_url(),
                });
            }
            return Err(self.response_error(resp).await);
        }
        let body = self
            .bounded_body(resp, StreamLimits::MAX_BODY_BYTES)
            .await?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| LlmError::Protocol {
                url: self.cfg.shown_url(),
                detail: format!("{path}: {e}"),
            })?;
        let models = names(&v);
        let wanted = &self.cfg.model;
        let found = models.iter().any(|m| {
            m == wanted || (self.cfg.api == LlmApi::Ollama && m == &format!("{wanted}:latest"))
        });
        // A single-model OpenAI-compatible server (llama.cpp) answers to any model name.
        if found || (self.cfg.api == LlmApi::Openai && models.len() <= 1) {
            Ok(())
        } else {
            Err(LlmError::ModelMissing {
                url: self.cfg.shown_url(),
                model: wanted.clone(),
                hint: format!("{} (installed: {})", self.pull_hint(), models.join(", ")),
            })
        }
    }

    /// Whether the server answers OpenAI's `/v1/models` with a model list (`data`): an
    /// OpenAI-compatible server. False on any error.
    async fn lists_openai_models(&self) -> bool {
        let Ok(resp) = self
            .with_auth(self.http.get(format!("{}/v1/models", self.base)))
            .timeout(Duration::from_secs(10))
            .send()
            .await
        else {
            return false;
        };
        if resp.status().as_u16() != 200 {
            return false;
        }
        let Ok(body) = self.bounded_body(resp, 1 << 20).await else {
            return false;
        };
        serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v["data"].is_array())
    }

    /// How many requests the server serves at once, where it says so: llama.cpp's `/props`
    /// (`total_slots`). None for a server that does not (Ollama, most others), or on any error.
    pub async fn told_slots(&self) -> Option<u32> {
        let resp = self
            .with_auth(self.http.get(format!("{}/props", self.base)))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if resp.status().as_u16() != 200 {
            return None;
        }
        let body = self.bounded_body(resp, 1 << 20).await.ok()?;
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        v["total_slots"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| (1..=1024).contains(&n))
    }

    /// The configuration this client was made from.
    pub fn config(&self) -> &LlmConfig {
        &self.cfg
    }

    fn with_auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cfg.api_key {
            Some(k) => rb.bearer_auth(k.expose()),
            None => rb,
        }
    }

    /// Sends one chat request, retrying in place while [`decide`] says so and `llm.retries`
    /// allows (exponential backoff with jitter). A busy server (HTTP 429 or 503) is
    /// backpressure, not a failure: it is waited for (as its `Retry-After` says, at most
    /// [`MAX_RETRY_AFTER`] a time, or with the backoff when it does not say) and asked again
    /// without spending one of `llm.retries`, for up to `llm.timeout_secs` of waiting in all;
    /// past that the [`LlmError::Busy`] is returned and the task is deferred without spending
    /// an attempt ([`Decision::Defer`]).
    pub async fn chat(&self, messages: &[Message]) -> Result<Answer, LlmError> {
        let budget = Duration::from_secs(self.cfg.timeout_secs);
        let mut waited = Duration::ZERO;
        let mut busy = 0u32;
        let mut retries = 0u32;
        loop {
            let e = match self.chat_once(messages).await {
                Ok(a) => return Ok(a),
                Err(e) => e,
            };
            if let LlmError::Busy {
                status,
                retry_after,
                ..
            } = &e
            {
                busy += 1;
                let (wait, said) = match retry_after {
                    Some(w) => (*w, "as its Retry-After says"),
                    None => (in_place_backoff(busy), "with backoff"),
                };
                if waited + wait > budget {
                    return Err(e);
                }
                waited += wait;
                tracing::warn!(
                    error = %e,
                    status,
                    wait = ?wait,
                    "the LLM server is busy; waiting {said}, then asking again (no attempt spent)"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            let left = retries < self.cfg.retries;
            if decide(e.failure_kind(), left, 1) != Decision::RetryInPlace {
                return Err(e);
            }
            retries += 1;
            let delay = in_place_backoff(retries);
            tracing::warn!(error = %e, retry_in = ?delay, "LLM call failed, retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// One chat request, no retries.
    pub async fn chat_once(&self, messages: &[Message]) -> Result<Answer, LlmError> {
        match self.cfg.api {
            LlmApi::Ollama => self.ollama_chat(messages).await,
            LlmApi::Openai => self.openai_chat(messages).await,
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod retry_after_tests {
    use super::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn retry_after_is_seconds_or_an_http_date_and_bounded() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date in the past: ask again at once.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", SystemTime::now()), None);
    }
}
