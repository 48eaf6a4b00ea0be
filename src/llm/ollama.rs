//! Ollama's native `/api/chat`: streamed NDJSON, the last line `done: true` with the token
//! counts. The prompt's evaluated token count is compared with our estimate, since Ollama
//! silently drops the front of a prompt longer than `num_ctx` (ollama#3839).

use std::time::Instant;

use futures_util::StreamExt;
use serde::Deserialize;

use super::{Answer, LlmClient, LlmError, Message, estimate_tokens};

impl LlmClient {
    pub(super) async fn ollama_chat(&self, messages: &[Message]) -> Result<Answer, LlmError> {
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
                    url: self.cfg.shown_url(),
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
        let url = &self.cfg.shown_url();
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
}

#[derive(Debug, Deserialize)]
struct OllamaChunk {
    model: Option<String>,
    message: Option<Message>,
    #[serde(default)]
    done: bool,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
    done_reason: Option<String>,
    error: Option<String>,
}
