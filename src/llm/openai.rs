//! `/v1/chat/completions` as llama.cpp, vLLM, LM Studio and Ollama's `/v1` serve it, without
//! streaming: the whole answer in one JSON document.

use std::time::Instant;

use serde::Deserialize;

use super::{Answer, LlmClient, LlmError, Message, StreamLimits};

impl LlmClient {
    pub(super) async fn openai_chat(&self, messages: &[Message]) -> Result<Answer, LlmError> {
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
        if resp.status().as_u16() != 200 {
            return Err(self.response_error(resp).await);
        }
        let body = self.bounded_body(resp, self.limits.max_body_bytes).await?;
        let c = decode_completion(&self.cfg.shown_url(), &body, &self.limits)?;
        Ok(Answer {
            content: c.content,
            model: c.model.unwrap_or_else(|| self.cfg.model.clone()),
            prompt_tokens: c.prompt_tokens,
            completion_tokens: c.completion_tokens,
            finish_reason: c.finish_reason,
            elapsed: started.elapsed(),
        })
    }
}

/// What one chat completion said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiCompletion {
    pub content: String,
    pub model: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub finish_reason: Option<String>,
}

/// Decodes a whole `/v1/chat/completions` response body (pure and synchronous, as the fuzzer
/// calls it): the first choice's answer, which must fit [`StreamLimits::max_content_bytes`].
/// `url` only names the server in errors.
pub fn decode_completion(
    url: &str,
    body: &[u8],
    limits: &StreamLimits,
) -> Result<OpenAiCompletion, LlmError> {
    let text = String::from_utf8_lossy(body);
    let r: OpenAiResponse = serde_json::from_str(&text).map_err(|e| LlmError::Protocol {
        url: url.to_string(),
        detail: format!("chat completion: {e}"),
    })?;
    let choice = r
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| LlmError::Protocol {
            url: url.to_string(),
            detail: "no choices in the completion".into(),
        })?;
    let content = choice.message.content.unwrap_or_default();
    if content.len() > limits.max_content_bytes {
        return Err(LlmError::TooLarge {
            url: url.to_string(),
            what: "an answer",
            limit: limits.max_content_bytes,
        });
    }
    Ok(OpenAiCompletion {
        content,
        model: r.model,
        prompt_tokens: r.usage.as_ref().and_then(|u| u.prompt_tokens),
        completion_tokens: r.usage.as_ref().and_then(|u| u.completion_tokens),
        finish_reason: choice.finish_reason,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::BoundedBody;

    const URL: &str = "http://llm:8080";

    #[test]
    fn a_completion_decodes_its_first_choice() {
        let body = br#"{"model":"m","choices":[{"message":{"content":"fn f() {}"},"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#;
        let c = decode_completion(URL, body, &StreamLimits::default()).unwrap();
        assert_eq!(c.content, "fn f() {}");
        assert_eq!(c.model.as_deref(), Some("m"));
        assert_eq!(c.finish_reason.as_deref(), Some("length"));
        assert_eq!((c.prompt_tokens, c.completion_tokens), (Some(5), Some(2)));
        let err = decode_completion(URL, br#"{"choices":[]}"#, &StreamLimits::default());
        assert!(matches!(err, Err(LlmError::Protocol { .. })), "{err:?}");
    }

    #[test]
    fn an_answer_over_the_content_limit_is_too_large() {
        let body = br#"{"choices":[{"message":{"content":"0123456789"}}]}"#;
        let limits = StreamLimits {
            max_content_bytes: 9,
            ..StreamLimits::default()
        };
        let err = decode_completion(URL, body, &limits).unwrap_err();
        assert!(
            matches!(
                err,
                LlmError::TooLarge {
                    what: "an answer",
                    limit: 9,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn an_endless_body_stops_at_the_body_limit() {
        let mut body = BoundedBody::new(URL, StreamLimits::MAX_BODY_BYTES);
        let chunk = vec![b' '; 1 << 20];
        let err = loop {
            match body.feed(&chunk) {
                Ok(()) => assert!(body.bytes().len() <= StreamLimits::MAX_BODY_BYTES),
                Err(e) => break e,
            }
        };
        assert_eq!(body.bytes().len(), StreamLimits::MAX_BODY_BYTES);
        assert!(
            matches!(
                err,
                LlmError::TooLarge {
                    what: "a response body",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("16777216"), "{err}");
    }
}
