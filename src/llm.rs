//! The two LLM backends.
//!
//! Ollama's native `/api/chat` is the default because it is the only protocol that lets us set
//! the context window per request (`options.num_ctx`): Ollama silently truncates a longer
//! prompt, so we size it ourselves and check `prompt_eval_count` afterwards. The
//! OpenAI-compatible `/v1/chat/completions` is the second backend for llama.cpp, vLLM, LM Studio
//! and friends.
//!
//! Errors carry whether retrying can help ([`LlmError::is_retryable`]): a busy or unreachable
//! server can, a missing model or a refused request cannot.

use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::config::{LlmApi, LlmConfig};

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
    /// Whether the same request may succeed later. Truncation is retryable because a server
    /// under memory pressure may load the model with a smaller context than asked.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmError::Unreachable { .. }
                | LlmError::Timeout { .. }
                | LlmError::Busy { .. }
                | LlmError::Server { .. }
                | LlmError::Stream { .. }
                | LlmError::Truncated { .. }
        )
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
    /// Why generation stopped (`stop`, `length`...), as the server said.
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
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(cfg.timeout_secs))
            .build()
            .map_err(|e| LlmError::Unreachable {
                url: cfg.url.clone(),
                detail: e.to_string(),
            })?;
        Ok(LlmClient {
            cfg: cfg.clone(),
            http,
            base: cfg.url.trim_end_matches('/').to_string(),
        })
    }

    pub fn model(&self) -> &str {
        &self.cfg.model
    }

    fn send_error(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout {
                url: self.cfg.url.clone(),
                secs: self.cfg.timeout_secs,
            }
        } else if e.is_connect() || e.is_request() {
            LlmError::Unreachable {
                url: self.cfg.url.clone(),
                detail: root_cause(&e),
            }
        } else {
            LlmError::Stream {
                url: self.cfg.url.clone(),
                detail: root_cause(&e),
            }
        }
    }

    fn status_error(&self, status: u16, body: String) -> LlmError {
        let url = self.cfg.url.clone();
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
            url: self.cfg.url.clone(),
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
                url: self.cfg.url.clone(),
                model: wanted.clone(),
                hint: format!("{} (installed: {})", self.pull_hint(), models.join(", ")),
            })
        }
    }

    fn with_auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cfg.api_key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    /// Sends one chat request, retrying with exponential backoff and jitter while the error is
    /// retryable and `llm.retries` allows.
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
            .when(|e: &LlmError| e.is_retryable() && !matches!(e, LlmError::Truncated { .. }))
            .notify(|e, d| tracing::warn!(error = %e, retry_in = ?d, "LLM call failed, retrying"))
            .await
    }

    pub async fn chat_once(&self, messages: &[Message]) -> Result<Answer, LlmError> {
        match self.cfg.api {
            LlmApi::Ollama => self.ollama_chat(messages).await,
            LlmApi::Openai => self.openai_chat(messages).await,
        }
    }

    async fn ollama_chat(&self, messages: &[Message]) -> Result<Answer, LlmError> {
        let started = Instant::now();
        let estimated = estimate_tokens(messages);
        let body = serde_json::json!({
            "model": self.cfg.model,
            "messages": messages,
            "stream": true,
            "options": {
                "num_ctx": self.cfg.num_ctx,
                "num_predict": self.cfg.max_answer_tokens,
                "temperature": self.cfg.temperature,
            },
        });
        let resp = self
            .http
            .post(format!("{}/api/chat", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let body = resp.text().await.unwrap_or_default();
            let mut err = self.status_error(status, body.clone());
            if status == 404 && !body.contains("model") {
                err = LlmError::Rejected {
                    url: self.cfg.url.clone(),
                    status,
                    body: format!(
                        "{body} (is this an Ollama server? for /v1 servers set llm.api = \"openai\")"
                    ),
                };
            }
            return Err(err);
        }
        let mut content = String::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut last: Option<OllamaChunk> = None;
        let mut stream = resp.bytes_stream();
        let url = &self.cfg.url;
        'read: loop {
            let next = stream.next().await;
            let chunk = match next {
                Some(Ok(b)) => b,
                Some(Err(e)) => return Err(self.send_error(e)),
                None => break,
            };
            buf.extend_from_slice(&chunk);
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let c: OllamaChunk =
                    serde_json::from_str(line).map_err(|e| LlmError::Protocol {
                        url: url.clone(),
                        detail: format!("bad NDJSON line {line:?}: {e}"),
                    })?;
                if let Some(err) = c.error {
                    return Err(LlmError::Stream {
                        url: url.clone(),
                        detail: format!("server reported: {err}"),
                    });
                }
                if let Some(m) = &c.message {
                    content.push_str(&m.content);
                }
                if c.done {
                    last = Some(c);
                    break 'read;
                }
            }
        }
        let Some(done) = last else {
            return Err(LlmError::Stream {
                url: url.clone(),
                detail: "the stream ended without its final `done: true` line".into(),
            });
        };
        if let Some(evaluated) = done.prompt_eval_count
            && evaluated * 2 < estimated
        {
            return Err(LlmError::Truncated {
                evaluated,
                estimated,
            });
        }
        Ok(Answer {
            content,
            model: done.model.unwrap_or_else(|| self.cfg.model.clone()),
            prompt_tokens: done.prompt_eval_count,
            completion_tokens: done.eval_count,
            finish_reason: done.done_reason,
            elapsed: started.elapsed(),
        })
    }

    async fn openai_chat(&self, messages: &[Message]) -> Result<Answer, LlmError> {
        let started = Instant::now();
        let body = serde_json::json!({
            "model": self.cfg.model,
            "messages": messages,
            "stream": false,
            "max_tokens": self.cfg.max_answer_tokens,
            "temperature": self.cfg.temperature,
        });
        let resp = self
            .with_auth(self.http.post(format!("{}/v1/chat/completions", self.base)))
            .json(&body)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.send_error(e))?;
        if status != 200 {
            return Err(self.status_error(status, text));
        }
        let r: OpenAiResponse = serde_json::from_str(&text).map_err(|e| LlmError::Protocol {
            url: self.cfg.url.clone(),
            detail: format!("chat completion: {e}"),
        })?;
        let choice = r
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmError::Protocol {
                url: self.cfg.url.clone(),
                detail: "no choices in the completion".into(),
            })?;
        Ok(Answer {
            content: choice.message.content.unwrap_or_default(),
            model: r.model.unwrap_or_else(|| self.cfg.model.clone()),
            prompt_tokens: r.usage.as_ref().and_then(|u| u.prompt_tokens),
            completion_tokens: r.usage.as_ref().and_then(|u| u.completion_tokens),
            finish_reason: choice.finish_reason,
            elapsed: started.elapsed(),
        })
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[derive(Debug, Deserialize)]
struct OllamaChunk {
    model: Option<String>,
    message: Option<Message>,
    #[serde(default)]
    done: bool,
    done_reason: Option<String>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OpenAiResponse {
    model: Option<String>,
    choices: Vec<OpenAiChoice>,
    usage: Option<OpenAiUsage>,
}

#[derive(Debug, Deserialize)]
struct OpenAiChoice {
    message: OpenAiMessage,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OpenAiMessage {
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OpenAiUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}
