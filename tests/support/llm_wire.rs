//! Pure helpers for the OpenAI-compatible wire format the stand-in LLM servers speak: the body
//! of a chat completion, and an answer that resolves the TODO a request asks about. Shared by
//! `tests/integration/fake_llm.rs` and `benches/llm_capacity.rs` through
//! `#[path = ...] mod llm_wire;` (this directory is no test target of its own).

/// An OpenAI chat completion body.
pub fn openai_completion(content: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    })
    .to_string()
}

/// An answer that resolves the TODO of an OpenAI chat request built by `prompt::build_prompt`:
/// the block to rewrite with each tag line replaced by a no-op statement of the block's
/// language at the same indentation (`let _ = 0;`, `_ = 0`, `void 0;`, `:`), so the code does
/// change, as the gates ask. Passes every gate, so tests that use it exercise delivery rather
/// than the model.
pub fn resolving_answer(request_body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(request_body).unwrap_or_default();
    let user = v["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    let Some((fence_line, rest)) = user
        .split_once("Block to rewrite:\n")
        .and_then(|x| x.1.split_once('\n'))
    else {
        return "```\n```".into();
    };
    let lang = fence_line.trim_start_matches('`');
    let block = rest.split_once("\n```").map(|x| x.0).unwrap_or_default();
    let statement = match lang {
        "rust" => Some("let _ = 0;"),
        "python" | "go" => Some("_ = 0"),
        "javascript" | "typescript" => Some("void 0;"),
        "shell" => Some(":"),
        "c" | "cpp" | "java" | "csharp" => Some(";"),
        _ => None,
    };
    let tags = ["TODO", "FIXME", "HACK", "XXX", "BUG"];
    let kept: Vec<String> = block
        .lines()
        .filter_map(|l| {
            if !tags.iter().any(|t| l.contains(t)) {
                return Some(l.to_string());
            }
            let indent = &l[..l.len() - l.trim_start().len()];
            statement.map(|s| format!("{indent}{s}"))
        })
        .collect();
    format!("```\n{}\n```", kept.join("\n"))
}
