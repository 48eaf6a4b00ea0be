//! Between Redis values and our types: a task as hash fields and back, stream entries out of
//! RESP replies. Every value read here may have been written by anyone on the network, so
//! decoding names what is wrong instead of guessing.

use std::collections::HashMap;

use crate::queue::Conn;
use redis::Value;

use super::QueueError;
use super::model::{Delivery, Stage, TaskOutcome, TaskRecord, TaskState};
use crate::task::TaskSpec;

/// The task's fields as stored in its hash (the README's key layout lists them).
pub fn spec_fields(spec: &TaskSpec) -> Vec<(&'static str, String)> {
    vec![
        ("id", spec.id.clone()),
        ("path", spec.path.clone()),
        ("line", spec.line.to_string()),
        ("tag", spec.tag.clone()),
        ("text", spec.text.clone()),
        ("language", spec.language.clone()),
        ("symbol", spec.symbol.clone().unwrap_or_default()),
        ("block_start", spec.block_start.to_string()),
        ("block_end", spec.block_end.to_string()),
        ("content_hash", spec.content_hash.clone()),
        ("block_hash", spec.block_hash.clone()),
    ]
}

/// A task hash read back. Missing result fields are `None`; a missing or unknown state, id,
/// path or block range is an error, since nothing sensible can be done with such a task.
pub fn task_record(run: &str, h: &HashMap<String, String>) -> Result<TaskRecord, QueueError> {
    let get = |k: &str| h.get(k).filter(|v| !v.is_empty()).cloned();
    let num = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
    let malformed = |detail: String| QueueError::Malformed {
        what: "task hash",
        detail,
    };
    let need = |k: &'static str| get(k).ok_or_else(|| malformed(format!("no `{k}` field")));
    let need_num =
        |k: &'static str| num(k).ok_or_else(|| malformed(format!("no number in the `{k}` field")));
    let state: TaskState = need("state")?
        .parse()
        .map_err(|e: super::model::UnknownState| malformed(e.to_string()))?;
    let spec = TaskSpec {
        id: need("id")?,
        path: need("path")?,
        line: num("line").unwrap_or(0) as usize,
        tag: get("tag").unwrap_or_default(),
        text: get("text").unwrap_or_default(),
        language: get("language").unwrap_or_default(),
        symbol: get("symbol"),
        block_start: need_num("block_start")? as usize,
        block_end: need_num("block_end")? as usize,
        content_hash: get("content_hash").unwrap_or_default(),
        block_hash: get("block_hash").unwrap_or_default(),
    };
    let errors = get("errors")
        .and_then(|e| serde_json::from_str::<Vec<serde_json::Value>>(&e).ok())
        .unwrap_or_default();
    Ok(TaskRecord {
        run: run.to_string(),
        spec,
        state,
        outcome: TaskOutcome {
            attempts: num("attempts").unwrap_or(0) as u32,
            reason: get("reason"),
            reason_kind: get("reason_kind"),
            model: get("model"),
            prompt_tokens: num("prompt_tokens"),
            completion_tokens: num("completion_tokens"),
            llm_ms: num("llm_ms"),
            llm_calls: num("llm_calls"),
            enqueued_at: num("enqueued_at"),
            started_at: num("started_at"),
            finished_at: num("finished_at"),
            worker: get("worker"),
            errors,
            verified: get("verified"),
            verify_ms: num("verify_ms"),
            verify_output: get("verify_output"),
            repairs: num("repairs").unwrap_or(0) as u32,
            candidates: num("candidates_count").map(|n| n as u32),
            candidate: num("candidate").map(|n| n as u32),
        },
        patch: get("patch"),
        answer: get("answer"),
        candidates_json: get("candidates"),
        repair: get("repair"),
    })
}

pub async fn hgetall(c: &mut Conn, key: String) -> Result<HashMap<String, String>, QueueError> {
    Ok(redis::cmd("HGETALL").arg(key).query_async(c).await?)
}

/// A scalar reply as text; "" for anything else.
pub fn value_string(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Okay => "OK".into(),
        _ => String::new(),
    }
}

/// Parses `[[id, [field, value, ...]], ...]` (RESP2) or its RESP3 map form; entries whose
/// fields were deleted, or that lack `run` or `task`, are skipped.
pub fn parse_entries(v: &Value, stage: Stage, out: &mut Vec<Delivery>) {
    let Value::Array(entries) = v else { return };
    for e in entries {
        let Value::Array(pair) = e else { continue };
        if pair.len() != 2 {
            continue;
        }
        let entry = value_string(&pair[0]);
        let mut run = None;
        let mut task = None;
        let mut field = |k: &Value, val: &Value| match value_string(k).as_str() {
            "run" => run = Some(value_string(val)),
            "task" => task = Some(value_string(val)),
            _ => {}
        };
        match &pair[1] {
            Value::Array(kv) => {
                for f in kv.chunks(2) {
                    if let [k, val] = f {
                        field(k, val);
                    }
                }
            }
            Value::Map(kv) => {
                for (k, val) in kv {
                    field(k, val);
                }
            }
            _ => {}
        }
        if let (Some(run), Some(task)) = (run, task) {
            out.push(Delivery {
                entry,
                run,
                task,
                stage,
            });
        }
    }
}

/// The deliveries of an `XREADGROUP` reply (RESP2 array or RESP3 map of streams).
pub fn read_reply(v: Value, stage: Stage) -> Vec<Delivery> {
    let mut out = Vec::new();
    match v {
        Value::Array(streams) => {
            for s in streams {
                if let Value::Array(parts) = s
                    && parts.len() == 2
                {
                    parse_entries(&parts[1], stage, &mut out);
                }
            }
        }
        Value::Map(streams) => {
            for (_, entries) in streams {
                parse_entries(&entries, stage, &mut out);
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn entries_without_run_or_task_are_skipped() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("tasks"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("run"), bulk("r"), bulk("task"), bulk("t")]),
                ]),
                Value::Array(vec![
                    bulk("2-0"),
                    Value::Array(vec![bulk("run"), bulk("r")]),
                ]),
                Value::Array(vec![bulk("3-0"), Value::Nil]),
            ]),
        ])]);
        assert_eq!(
            read_reply(reply, Stage::Verify),
            vec![Delivery {
                entry: "1-0".into(),
                run: "r".into(),
                task: "t".into(),
                stage: Stage::Verify,
            }]
        );
    }

    #[test]
    fn a_task_hash_without_a_state_or_range_is_malformed() {
        let mut h: HashMap<String, String> = [
            ("state", "queued"),
            ("id", "a"),
            ("path", "p"),
            ("block_start", "0"),
            ("block_end", "4"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert!(task_record("r", &h).is_ok());
        h.insert("state".into(), "weird".into());
        let e = task_record("r", &h).unwrap_err().to_string();
        assert!(e.contains("weird"), "{e}");
        h.insert("state".into(), "queued".into());
        h.remove("block_end");
        let e = task_record("r", &h).unwrap_err().to_string();
        assert!(e.contains("block_end"), "{e}");
    }
}
