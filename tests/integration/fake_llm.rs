//! A scripted HTTP server for the LLM faults a real server cannot be made to show on demand:
//! a 503, an error line in the middle of an NDJSON stream, a truncated prompt, an answer with no
//! code block. It speaks the documented wire formats (Ollama's NDJSON `/api/chat`, OpenAI's
//! `/v1/chat/completions`) and nothing else.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

// The pure wire helpers, shared with benches/llm_capacity.rs.
#[path = "../support/llm_wire.rs"]
mod llm_wire;
pub use llm_wire::{openai_completion, resolving_answer};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: String,
    /// The `Authorization` header, if the client sent one.
    pub authorization: Option<String>,
}

pub enum Reply {
    Json {
        status: u16,
        body: String,
    },
    /// [`Reply::Json`] with extra response headers (`Retry-After`...).
    JsonWithHeaders {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// NDJSON lines sent as HTTP chunks; `cut` drops the connection after them without the
    /// terminating chunk.
    Ndjson {
        lines: Vec<String>,
        cut: bool,
    },
    /// A 200 whose body never ends: `start`, then `piece` again and again, `every` apart, until
    /// the client hangs up. Fast, it is a server that ignores the token limit (the client's
    /// read limit ends it); slow, a server that trickles (the client's timeout ends it).
    Endless {
        start: String,
        piece: String,
        every: std::time::Duration,
    },
}

type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

pub struct FakeLlm {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeLlm {
    /// `handler` gets the request and its 0-based index among all requests.
    pub fn start(handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> FakeLlm {
        FakeLlm::start_on("127.0.0.1", handler)
    }

    /// Listens on `ip` (e.g. 0.0.0.0, so that containers reach it through host-gateway).
    pub fn start_on(
        ip: &str,
        handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    ) -> FakeLlm {
        FakeLlm::start_at((ip, 0), handler)
    }

    /// Listens on `addr` (a port chosen beforehand: a server that comes up late).
    pub fn start_at(
        addr: impl std::net::ToSocketAddrs,
        handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    ) -> FakeLlm {
        let listener = TcpListener::bind(addr).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let reqs = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let handler = handler.clone();
                let reqs = reqs.clone();
                std::thread::spawn(move || serve(stream, &*handler, &reqs));
            }
        });
        FakeLlm { port, requests }
    }

    /// An OpenAI-compatible server whose every answer resolves the TODO it is asked about
    /// ([`resolving_answer`]), for tests about delivery and applying rather than the model.
    pub fn resolving() -> FakeLlm {
        FakeLlm::start(|req, _| match req.path.as_str() {
            "/v1/chat/completions" => Reply::Json {
                status: 200,
                body: openai_completion(&resolving_answer(&req.body)),
            },
            _ => models_reply(),
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn count(&self, path: &str) -> usize {
        self.requests
            .lock()
            .map(|r| r.iter().filter(|q| q.path == path).count())
            .unwrap_or(0)
    }
}

fn serve(stream: TcpStream, handler: &Handler, reqs: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut len = 0usize;
        let mut authorization = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("authorization") {
                    authorization = Some(v.trim().to_string());
                }
            }
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let req = Request {
            method,
            path,
            body: String::from_utf8_lossy(&body).into_owned(),
            authorization,
        };
        let index = {
            let mut r = reqs.lock().expect("lock");
            r.push(req.clone());
            r.len() - 1
        };
        match handler(&req, index) {
            Reply::Json { status, body } => {
                let reason = if status == 200 { "OK" } else { "Error" };
                let _ = write!(
                    out,
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
            Reply::JsonWithHeaders {
                status,
                headers,
                body,
            } => {
                let extra: String = headers
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}\r\n"))
                    .collect();
                let _ = write!(
                    out,
                    "HTTP/1.1 {status} Error\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
            Reply::Ndjson { lines, cut } => {
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
                );
                for l in lines {
                    let chunk = format!("{l}\n");
                    let _ = write!(out, "{:x}\r\n{chunk}\r\n", chunk.len());
                    let _ = out.flush();
                }
                if cut {
                    let _ = out.shutdown(std::net::Shutdown::Both);
                    return;
                }
                let _ = write!(out, "0\r\n\r\n");
            }
            Reply::Endless {
                start,
                piece,
                every,
            } => {
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{start}\r\n",
                    start.len()
                );
                let chunk = format!("{:x}\r\n{piece}\r\n", piece.len());
                while out
                    .write_all(chunk.as_bytes())
                    .and_then(|_| out.flush())
                    .is_ok()
                {
                    if !every.is_zero() {
                        std::thread::sleep(every);
                    }
                }
                return;
            }
        }
        let _ = out.flush();
    }
}

/// Ollama `/api/chat` stream lines for `content`, split in pieces, ending with the `done` line.
pub fn ollama_stream(content: &str, prompt_eval_count: u64) -> Vec<String> {
    let mut lines: Vec<String> = content
        .split_inclusive(' ')
        .map(|piece| {
            serde_json::json!({
                "model": "test-model", "created_at": "2026-11-24T00:00:00Z",
                "message": {"role": "assistant", "content": piece}, "done": false
            })
            .to_string()
        })
        .collect();
    lines.push(
        serde_json::json!({
            "model": "test-model", "created_at": "2026-11-24T00:00:01Z",
            "message": {"role": "assistant", "content": ""},
            "done": true, "done_reason": "stop",
            "total_duration": 1_000_000u64, "prompt_eval_count": prompt_eval_count,
            "eval_count": 42
        })
        .to_string(),
    );
    lines
}

/// The `/v1/models` answer of a single-model server.
pub fn models_reply() -> Reply {
    Reply::Json {
        status: 200,
        body: r#"{"object":"list","data":[{"id":"m"}]}"#.into(),
    }
}

/// A repository of `files` Python files with `per_file` small functions, each with one TODO.
pub fn many_todos_repo(files: usize, per_file: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in 0..files {
        let mut s = String::from("\"\"\"Generated fixture.\"\"\"\n\n");
        for j in 0..per_file {
            s.push_str(&format!(
                "\ndef f_{f}_{j}(x):\n    # TODO: handle case {f}-{j}\n    return x + {j}\n\n"
            ));
        }
        std::fs::write(dir.path().join(format!("m{f}.py")), s).expect("write fixture");
    }
    dir
}

/// A finished run of `repo` whose every answer resolved its TODO: a resolving LLM and one worker
/// serve `dispatcher run --wait --out out`; returns the run id. For tests of what comes after a
/// run (results, apply) rather than of the run itself.
pub fn resolved_run(
    redis: &crate::util::RedisServer,
    repo: &std::path::Path,
    out: &std::path::Path,
) -> String {
    let fake = FakeLlm::resolving();
    let _worker = crate::util::spawn_worker(redis, &fake.url(), &[], std::process::Stdio::null());
    let mut d = crate::util::cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(["run", "--wait", "--timeout", "120", "--out"])
        .arg(out)
        .arg(repo);
    crate::util::run(d).success().stdout.trim().to_string()
}
