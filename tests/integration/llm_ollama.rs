//! The Ollama-native client against a server speaking Ollama's documented NDJSON stream.

use crate::fake_llm::{FakeLlm, Reply, ollama_stream};
use tars_fleet::config::{LlmApi, LlmConfig};
use tars_fleet::failure::FailureKind;
use tars_fleet::llm::{LlmClient, LlmError, Message};

fn client(url: String) -> LlmClient {
    let cfg = LlmConfig {
        api: LlmApi::Ollama,
        url,
        model: "test-model".into(),
        num_ctx: 4096,
        retries: 2,
        timeout_secs: 30,
        ..LlmConfig::default()
    };
    LlmClient::new(&cfg).unwrap()
}

fn prompt() -> Vec<Message> {
    vec![Message::system("be brief"), Message::user("x".repeat(2000))]
}

#[tokio::test]
async fn stream_is_assembled_with_token_counts_and_num_ctx_is_sent() {
    let fake = FakeLlm::start(|_, _| Reply::Ndjson {
        lines: ollama_stream("```rust\nfn f() {}\n```", 520),
        cut: false,
    });
    let a = client(fake.url()).chat(&prompt()).await.unwrap();
    assert_eq!(a.content, "```rust\nfn f() {}\n```");
    assert_eq!(a.prompt_tokens, Some(520));
    assert_eq!(a.completion_tokens, Some(42));
    assert_eq!(a.finish_reason.as_deref(), Some("stop"));
    let reqs = fake.requests.lock().unwrap();
    let body: serde_json::Value = serde_json::from_str(&reqs[0].body).unwrap();
    assert_eq!(reqs[0].path, "/api/chat");
    assert_eq!(body["options"]["num_ctx"], 4096);
    assert_eq!(body["stream"], true);
    assert_eq!(body["model"], "test-model");
}

#[tokio::test]
async fn error_line_in_the_middle_of_a_stream_is_an_error() {
    let fake = FakeLlm::start(|_, _| {
        let mut lines = ollama_stream("partial answer here", 520);
        lines.truncate(2);
        lines.push(
            r#"{"error":"an error was encountered while running the model: unexpected EOF"}"#
                .into(),
        );
        Reply::Ndjson { lines, cut: false }
    });
    let err = client(fake.url()).chat_once(&prompt()).await.unwrap_err();
    assert!(matches!(err, LlmError::Stream { .. }), "{err:?}");
    assert!(err.to_string().contains("unexpected EOF"), "{err}");
    assert_eq!(err.failure_kind(), FailureKind::Transient);
}

#[tokio::test]
async fn stream_cut_before_done_is_an_error() {
    let fake = FakeLlm::start(|_, _| {
        let mut lines = ollama_stream("partial answer here", 520);
        lines.truncate(2);
        Reply::Ndjson { lines, cut: true }
    });
    let err = client(fake.url()).chat_once(&prompt()).await.unwrap_err();
    assert!(matches!(err, LlmError::Stream { .. }), "{err:?}");
}

#[tokio::test]
async fn busy_503_is_retried_until_the_server_answers() {
    let fake = FakeLlm::start(|_, i| {
        if i < 2 {
            Reply::Json { status: 503, body: r#"{"error":"server busy, please try again.  maximum pending requests exceeded"}"#.into() }
        } else {
            Reply::Ndjson {
                lines: ollama_stream("```\nok\n```", 520),
                cut: false,
            }
        }
    });
    let a = client(fake.url()).chat(&prompt()).await.unwrap();
    assert_eq!(a.content, "```\nok\n```");
    assert_eq!(fake.count("/api/chat"), 3);
}

/// A 503 is backpressure: waited for (the backoff doubling from 100-200 ms) for up to
/// `llm.timeout_secs` in all, not counted against `llm.retries` (2 here); then `Busy`.
#[tokio::test]
async fn persistent_503_is_waited_for_up_to_the_timeout_then_busy() {
    let fake = FakeLlm::start(|_, _| Reply::Json {
        status: 503,
        body: r#"{"error":"busy"}"#.into(),
    });
    let cfg = LlmConfig {
        timeout_secs: 2,
        ..client(fake.url()).config().clone()
    };
    let err = LlmClient::new(&cfg)
        .unwrap()
        .chat(&prompt())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Busy { .. }), "{err:?}");
    // Waits of at most 200 + 400 + 800 ms fit in 2 s: at least four requests, more than the
    // 1 + 2 that llm.retries would allow.
    assert!(fake.count("/api/chat") >= 4, "{}", fake.count("/api/chat"));
}

#[tokio::test]
async fn truncated_prompt_is_detected_from_prompt_eval_count() {
    // The prompt is ~500 tokens; a server that evaluated 100 of them cut it.
    let fake = FakeLlm::start(|_, _| Reply::Ndjson {
        lines: ollama_stream("```\nok\n```", 100),
        cut: false,
    });
    let err = client(fake.url()).chat(&prompt()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Truncated { evaluated: 100, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("llm.num_ctx"), "{err}");
    assert_eq!(
        fake.count("/api/chat"),
        1,
        "a truncation is not retried in place"
    );
}

#[tokio::test]
async fn missing_model_suggests_ollama_pull() {
    let fake = FakeLlm::start(|_, _| Reply::Json {
        status: 404,
        body: r#"{"error":"model \"test-model\" not found, try pulling it first"}"#.into(),
    });
    let err = client(fake.url()).chat(&prompt()).await.unwrap_err();
    assert!(matches!(err, LlmError::ModelMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("ollama pull test-model"), "{err}");
    assert_eq!(err.failure_kind(), FailureKind::Permanent);
    assert_eq!(fake.count("/api/chat"), 1);
}

#[tokio::test]
async fn preflight_finds_the_model_in_api_tags() {
    let fake = FakeLlm::start(|_, _| Reply::Json {
        status: 200,
        body: r#"{"models":[{"name":"test-model:latest","model":"test-model:latest"}]}"#.into(),
    });
    client(fake.url()).preflight().await.unwrap();
}

/// A server that ignores `max_tokens` and answers on and on is cut off at a bound derived from
/// `llm.max_answer_tokens`, on both APIs, instead of filling the worker's memory and Redis.
#[tokio::test]
async fn an_answer_far_past_max_answer_tokens_is_cut_off_at_a_bound() {
    let huge = format!("```\n{}\n```", "x = 1\n".repeat(200_000)); // 1.2 MB
    let for_ollama = huge.clone();
    let ollama = FakeLlm::start(move |_, _| Reply::Ndjson {
        lines: ollama_stream(&for_ollama, 10),
        cut: false,
    });
    let openai = FakeLlm::start(move |_, _| Reply::Json {
        status: 200,
        body: crate::fake_llm::openai_completion(&huge),
    });
    for (api, url) in [
        (LlmApi::Ollama, ollama.url()),
        (LlmApi::Openai, openai.url()),
    ] {
        let cfg = LlmConfig {
            api,
            url,
            model: "test-model".into(),
            max_answer_tokens: 2048,
            retries: 0,
            ..LlmConfig::default()
        };
        let err = LlmClient::new(&cfg)
            .unwrap()
            .chat(&prompt())
            .await
            .unwrap_err();
        match &err {
            LlmError::TooLarge { limit, .. } => assert_eq!(*limit, 256 << 10, "{api:?}: {err}"),
            other => panic!("{api:?}: expected TooLarge, got {other}"),
        }
        assert!(err.to_string().contains("llm"), "{api:?}: {err}");
    }
}
