//! The OpenAI-compatible client's response path: the body collected under its limit
//! (`BoundedBody`) and decoded (`decode_completion`). The server answers with one JSON
//! document (the client sends `"stream": false`), so there is no SSE stream to decode. The
//! first byte picks the limits (small ones, or the defaults) and the chunk size.
//!
//! Invariants: the body never grows past its limit, the answer never past its own, and a
//! limit it stops at is the one it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tars_fleet::llm::{BoundedBody, LlmError, StreamLimits, decode_completion};

const CHUNKS: [usize; 8] = [1, 2, 3, 7, 16, 64, 4096, usize::MAX];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let limits = match sel & 3 {
        0 => StreamLimits::default(),
        n => StreamLimits {
            max_content_bytes: 4 << (3 * n),
            max_body_bytes: 64 << (3 * n),
            ..StreamLimits::default()
        },
    };
    let chunk = CHUNKS[usize::from(sel >> 2) % CHUNKS.len()];
    let mut body = BoundedBody::new("http://fuzz", limits.max_body_bytes);
    for piece in rest.chunks(chunk.min(rest.len().max(1))) {
        let fed = body.feed(piece);
        assert!(body.bytes().len() <= limits.max_body_bytes);
        if let Err(e) = fed {
            assert!(
                matches!(e, LlmError::TooLarge { what: "a response body", limit, .. } if limit == limits.max_body_bytes),
                "{e:?}"
            );
            assert!(rest.len() > limits.max_body_bytes);
            return;
        }
    }
    assert_eq!(body.bytes(), rest);
    match decode_completion("http://fuzz", body.bytes(), &limits) {
        Ok(c) => assert!(c.content.len() <= limits.max_content_bytes),
        Err(LlmError::TooLarge { what, limit, .. }) => {
            assert_eq!((what, limit), ("an answer", limits.max_content_bytes));
        }
        Err(LlmError::Protocol { .. }) => {}
        Err(e) => panic!("unexpected error {e:?}"),
    }
});
