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

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
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
    #[error("the LLM at {url} is busy (HTTP 503): {body}")]
    Busy { url: String, body: String },
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
}

impl LlmError {
    /// Whether, and how, the same request may succeed later. Truncation is worth a later
    /// attempt (not an immediate one) because a server under memory pressure may have loaded
    /// the model with a smaller context than asked.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            LlmError::Unreachable { .. }
            | LlmError::Timeout { .. }
            | LlmError::Busy { .. }
            | LlmError::Server { .. }
            | LlmError::Stream { .. } => FailureKind::Transient,
            LlmError::Truncated { .. } => FailureKind::Later,
            LlmError::ModelMissing { .. }
            | LlmError::Rejected { .. }
            | LlmError::Protocol { .. } => FailureKind::Permanent,
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
            LlmError::Rejected { .. } => "rejected",
            LlmError::Stream { .. } => "stream_error",
            LlmError::Truncated { .. } => "truncated",
            LlmError::Protocol { .. } => "protocol",
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

    fn status_error(&self, status: u16, body: String) -> LlmError {
        let url = self.cfg.shown_url();
        let body: String = body.chars().take(500).collect();
        match status {
            503 => LlmError::Busy { url, body },
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
        let status = resp.status().as_u16();
        if status != 200 {
            let body = resp.text().await.unwrap_or_default();
            return Err(self.status_error(status, body));
        }
        let v: serde_json::Value = resp.json().await.map_err(|e| LlmError::Protocol {
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

    fn with_auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cfg.api_key {
            Some(k) => rb.bearer_auth(k.expose()),
            None => rb,
        }
    }

    /// Sends one chat request, retrying in place with exponential backoff and jitter while
    /// [`decide`] says so and `llm.retries` allows.
    pub async fn chat(&self, messages: &[Message]) -> Result<Answer, LlmError> {
        let attempt = || async { self.chat_once(messages).await };
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(10))
                    .with_max_times(self.cfg.retries as usize)
                    .with_jitter(),
            )
            .when(|e: &LlmError| decide(e.failure_kind(), true, 1) == Decision::RetryInPlace)
            .notify(|e, d| tracing::warn!(error = %e, retry_in = ?d, "LLM call failed, retrying"))
            .await
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
