//! Ollama's native `/api/chat`: streamed NDJSON, the last line `done: true` with the token
//! counts. The prompt's evaluated token count is compared with our estimate, since Ollama
//! silently drops the front of a prompt longer than `num_ctx` (ollama#3839).

use std::time::Instant;

use futures_util::StreamExt;
use serde::Deserialize;

use super::{Answer, LlmClient, LlmError, Message, StreamLimits, estimate_tokens};

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
            let retry_after = Self::retry_after(&resp);
            let body = self.error_body(resp).await;
            let mut err = self.status_error(status, retry_after, body.clone());
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
        let mut decoder = OllamaStream::with_limits(&self.cfg.shown_url(), self.limits);
        let mut stream = resp.bytes_stream();
        while !decoder.is_done() {
            match stream.next().await {
                Some(Ok(chunk)) => decoder.feed(&chunk)?,
                Some(Err(e)) => return Err(self.send_error(e)),
                None => break,
            }
        }
        let done = decoder.finish()?;
        if let Some(evaluated) = done.prompt_eval_count
            && evaluated * 2 < estimated
        {
            return Err(LlmError::Truncated {
                evaluated,
                estimated,
            });
        }
        Ok(Answer {
            content: done.content,
            model: done.model.unwrap_or_else(|| self.cfg.model.clone()),
            prompt_tokens: done.prompt_eval_count,
            completion_tokens: done.eval_count,
            finish_reason: done.done_reason,
            elapsed: started.elapsed(),
        })
    }
}

/// Ollama's NDJSON chat stream, decoded from the bytes as they arrive: pure and synchronous,
/// so the HTTP code only moves chunks into it (and a fuzzer can feed it anything).
///
/// It holds at most one unfinished line ([`StreamLimits::max_line_bytes`]) and the answer so far
/// ([`StreamLimits::max_content_bytes`]); past either it fails with [`LlmError::TooLarge`]
/// instead of growing. Everything after the `done: true` line is ignored, and so is a last line
/// without its `\n`.
#[derive(Debug)]
pub struct OllamaStream {
    url: String,
    limits: StreamLimits,
    /// The unfinished line: bytes after the last `\n` seen.
    partial: Vec<u8>,
    content: String,
    done: Option<OllamaChunk>,
}

/// What a complete Ollama stream said: the answer and its final line's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OllamaDone {
    pub content: String,
    pub model: Option<String>,
    pub prompt_eval_count: Option<u64>,
    pub eval_count: Option<u64>,
    pub done_reason: Option<String>,
}

impl OllamaStream {
    /// A decoder with the default [`StreamLimits`]; `url` only names the server in errors.
    pub fn new(url: &str) -> OllamaStream {
        OllamaStream::with_limits(url, StreamLimits::default())
    }

    pub fn with_limits(url: &str, limits: StreamLimits) -> OllamaStream {
        OllamaStream {
            url: url.to_string(),
            limits,
            partial: Vec::new(),
            content: String::new(),
            done: None,
        }
    }

    /// Whether the `done: true` line has come: nothing after it is read.
    pub fn is_done(&self) -> bool {
        self.done.is_some()
    }

    /// The answer so far.
    pub fn content(&self) -> &str {
        &self.content
    }

    /// Bytes held for the unfinished line.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Decodes the complete lines `chunk` finishes and keeps its unfinished tail.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), LlmError> {
        while !self.is_done() {
            let Some(nl) = memchr::memchr(b'\n', chunk) else {
                if self.partial.len() + chunk.len() > self.limits.max_line_bytes {
                    return Err(self.too_large("an NDJSON line", self.limits.max_line_bytes));
                }
                self.partial.extend_from_slice(chunk);
                return Ok(());
            };
            let (head, rest) = (&chunk[..nl], &chunk[nl + 1..]);
            chunk = rest;
            if self.partial.len() + head.len() > self.limits.max_line_bytes {
                return Err(self.too_large("an NDJSON line", self.limits.max_line_bytes));
            }
            if self.partial.is_empty() {
                self.line(head)?;
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                self.line(&line)?;
            }
        }
        Ok(())
    }

    /// The stream's end: its answer and counts, or why it is not a complete answer.
    pub fn finish(self) -> Result<OllamaDone, LlmError> {
        let Some(done) = self.done else {
            return Err(LlmError::Stream {
                url: self.url,
                detail: "the stream ended without its final `done: true` line".into(),
            });
        };
        Ok(OllamaDone {
            content: self.content,
            model: done.model,
            prompt_eval_count: done.prompt_eval_count,
            eval_count: done.eval_count,
            done_reason: done.done_reason,
        })
    }

    fn line(&mut self, line: &[u8]) -> Result<(), LlmError> {
        let line = String::from_utf8_lossy(line);
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        let c: OllamaChunk = serde_json::from_str(line).map_err(|e| LlmError::Protocol {
            url: self.url.clone(),
            detail: format!("bad NDJSON line {:?}: {e}", super::clip(line, 500)),
        })?;
        if let Some(err) = c.error {
            return Err(LlmError::Stream {
                url: self.url.clone(),
                detail: format!("server reported: {}", super::clip(&err, 500)),
            });
        }
        if let Some(m) = &c.message {
            if self.content.len() + m.content.len() > self.limits.max_content_bytes {
                return Err(self.too_large("an answer", self.limits.max_content_bytes));
            }
            self.content.push_str(&m.content);
        }
        if c.done {
            self.done = Some(c);
        }
        Ok(())
    }

    fn too_large(&self, what: &'static str, limit: usize) -> LlmError {
        LlmError::TooLarge {
            url: self.url.clone(),
            what,
            limit,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://llm:11434";

    fn small(line: usize, content: usize) -> StreamLimits {
        StreamLimits {
            max_line_bytes: line,
            max_content_bytes: content,
            ..StreamLimits::default()
        }
    }

    fn stream() -> String {
        [
            r#"{"model":"m","message":{"role":"assistant","content":"fn "},"done":false}"#,
            "",
            r#"{"model":"m","message":{"role":"assistant","content":"f() {}"},"done":false}"#,
            r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":7,"eval_count":3}"#,
            "ignored after done",
        ]
        .join("\n")
    }

    #[test]
    fn a_stream_decodes_the_same_whole_or_byte_by_byte() {
        let mut whole = OllamaStream::new(URL);
        whole.feed(stream().as_bytes()).unwrap();
        assert!(whole.is_done());
        let whole = whole.finish().unwrap();
        assert_eq!(whole.content, "fn f() {}");
        assert_eq!(whole.model.as_deref(), Some("m"));
        assert_eq!(whole.prompt_eval_count, Some(7));
        assert_eq!(whole.eval_count, Some(3));
        assert_eq!(whole.done_reason.as_deref(), Some("stop"));
        let mut bytes = OllamaStream::new(URL);
        for b in stream().as_bytes() {
            bytes.feed(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(bytes.finish().unwrap(), whole);
    }

    #[test]
    fn a_stream_without_its_done_line_is_a_stream_error() {
        let mut d = OllamaStream::new(URL);
        d.feed(br#"{"message":{"role":"assistant","content":"x"},"done":false}"#)
            .unwrap();
        let err = d.finish().unwrap_err();
        assert!(matches!(err, LlmError::Stream { .. }), "{err:?}");
    }

    #[test]
    fn an_endless_line_stops_at_the_line_limit() {
        let mut d = OllamaStream::new(URL);
        let chunk = vec![b'x'; 64 << 10];
        let err = loop {
            match d.feed(&chunk) {
                Ok(()) => assert!(d.buffered() <= StreamLimits::MAX_LINE_BYTES),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, LlmError::TooLarge { what: "an NDJSON line", limit, .. } if limit == StreamLimits::MAX_LINE_BYTES),
            "{err:?}"
        );
        assert!(err.to_string().contains("limit of 1048576 bytes"), "{err}");
        assert_eq!(err.kind(), "too_large");
        assert_eq!(err.failure_kind(), crate::failure::FailureKind::Permanent);
    }

    #[test]
    fn a_long_line_split_over_chunks_is_held_to_the_limit_too() {
        let mut d = OllamaStream::with_limits(URL, small(16, 1000));
        d.feed(b"0123456789").unwrap();
        let err = d.feed(b"0123456789\n").unwrap_err();
        assert!(
            matches!(
                err,
                LlmError::TooLarge {
                    what: "an NDJSON line",
                    limit: 16,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn an_endless_answer_stops_at_the_content_limit() {
        let line = format!(
            "{}\n",
            r#"{"message":{"role":"assistant","content":"0123456789"},"done":false}"#
        );
        let mut d = OllamaStream::with_limits(URL, small(1000, 25));
        d.feed(line.as_bytes()).unwrap();
        d.feed(line.as_bytes()).unwrap();
        let err = d.feed(line.as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                LlmError::TooLarge {
                    what: "an answer",
                    limit: 25,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(d.content().len(), 20);
    }

    #[test]
    fn a_bad_line_in_the_error_is_clipped() {
        let mut d = OllamaStream::new(URL);
        let line = format!("{}\n", "é".repeat(10_000));
        let err = d.feed(line.as_bytes()).unwrap_err();
        assert!(matches!(err, LlmError::Protocol { .. }), "{err:?}");
        assert!(err.to_string().len() < 1000, "{err}");
    }
}
