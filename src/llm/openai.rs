//! `/v1/chat/completions` as llama.cpp, vLLM, LM Studio and Ollama's `/v1` serve it, without
//! streaming: the whole answer in one JSON document.

use std::time::Instant;

use serde::Deserialize;

use super::{Answer, LlmClient, LlmError, Message};

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
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.send_error(e))?;
        if status != 200 {
            return Err(self.status_error(status, text));
        }
        let r: OpenAiResponse = serde_json::from_str(&text).map_err(|e| LlmError::Protocol {
            url: self.cfg.shown_url(),
            detail: format!("chat completion: {e}"),
        })?;
        let choice = r
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmError::Protocol {
                url: self.cfg.shown_url(),
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
