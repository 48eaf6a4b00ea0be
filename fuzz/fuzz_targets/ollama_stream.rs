//! Ollama's NDJSON stream decoder (`OllamaStream`), fed arbitrary bytes in chunks. The first
//! byte picks the limits (small ones, so the fuzzer reaches them, or the defaults) and the
//! chunk size.
//!
//! Invariants: it never holds more than its line limit nor more answer than its content limit;
//! a limit it stops at is the one it was given; the result does not depend on how the bytes
//! were cut into chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tars_fleet::llm::{LlmError, OllamaDone, OllamaStream, StreamLimits};

const CHUNKS: [usize; 8] = [1, 2, 3, 7, 16, 64, 4096, usize::MAX];

fn decode(data: &[u8], limits: StreamLimits, chunk: usize) -> Result<OllamaDone, String> {
    let mut d = OllamaStream::with_limits("http://fuzz", limits);
    for piece in data.chunks(chunk.min(data.len().max(1))) {
        if let Err(e) = d.feed(piece) {
            if let LlmError::TooLarge { limit, what, .. } = &e {
                let want = match *what {
                    "an NDJSON line" => limits.max_line_bytes,
                    "an answer" => limits.max_content_bytes,
                    other => panic!("unexpected TooLarge {other}"),
                };
                assert_eq!(*limit, want);
            }
            assert!(d.buffered() <= limits.max_line_bytes);
            assert!(d.content().len() <= limits.max_content_bytes);
            return Err(e.to_string());
        }
        assert!(
            d.buffered() <= limits.max_line_bytes,
            "{} buffered",
            d.buffered()
        );
        assert!(d.content().len() <= limits.max_content_bytes);
        if d.is_done() {
            break;
        }
    }
    d.finish().map_err(|e| e.to_string())
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let limits = match sel & 3 {
        0 => StreamLimits::default(),
        n => StreamLimits {
            max_line_bytes: 16 << (2 * n),
            max_content_bytes: 4 << (3 * n),
            ..StreamLimits::default()
        },
    };
    let chunk = CHUNKS[usize::from(sel >> 2) % CHUNKS.len()];
    let whole = decode(rest, limits, usize::MAX);
    if let Ok(done) = &whole {
        assert!(done.content.len() <= limits.max_content_bytes);
    }
    if chunk != usize::MAX {
        assert_eq!(
            decode(rest, limits, chunk),
            whole,
            "chunks of {chunk} differ"
        );
    }
});
