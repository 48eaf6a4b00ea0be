//! The task a TODO becomes: what a worker needs to rewrite its block, and what a patch is made
//! against. It is written at enqueue time and read back from Redis, where anyone on the network
//! can have changed it, so [`TaskSpec::target`] checks it against the file before any work.

use serde::{Deserialize, Serialize};

use crate::scan::{self, Todo};

/// What a worker needs to do a task. Stored as plain hash fields so a person reading Redis sees
/// the task without decoding anything (see `queue::wire`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The TODO's stable id ([`Todo::id`]).
    pub id: String,
    /// Relative to the repository root, `/`-separated.
    pub path: String,
    /// 1-based line of the tag.
    pub line: usize,
    /// Upper case, as the scanner reports it.
    pub tag: String,
    pub text: String,
    pub language: String,
    pub symbol: Option<String>,
    /// Byte range of the block the LLM may rewrite, in the file whose hash is `content_hash`.
    pub block_start: usize,
    pub block_end: usize,
    /// SHA-256 of the whole file at scan time; names the stored blob and lets `apply` refuse a
    /// file that changed since.
    pub content_hash: String,
    /// SHA-256 (16 hex digits) of the block's text at scan time. `run --only-new` skips a TODO
    /// done in an earlier run only while this is unchanged: ids count identical TODOs in order,
    /// so once an applied patch removes the first of two, the second inherits its id, and only
    /// the changed block tells them apart.
    pub block_hash: String,
}

/// Whether `id` has the form of a task id (16 lower-case hex digits, [`Todo::id`]). Ids come
/// back from Redis, which anyone on its network can write, and name files (`<id>.patch`): a
/// value such as `../../x` must never reach a path.
pub fn is_task_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `run` has the form of a run id (`YYYYMMDD-HHMMSS-xxxx`, as `create_run` makes
/// them): checked before a run id read from Redis or a command line names a directory.
pub fn is_run_id(run: &str) -> bool {
    let b = run.as_bytes();
    b.len() == 20
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'-'
        && b[16..]
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// A task checked against its file: what a prompt is built from and a patch is made against.
/// Only [`TaskSpec::target`] makes one, so holding one means the block is really there.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub spec: &'a TaskSpec,
    /// The whole file at scan time.
    pub content: &'a str,
    /// `content[spec.block_start..spec.block_end]`.
    pub block: &'a str,
}

/// Why a task cannot be worked on, whatever the LLM would answer: asking it would only waste
/// a call, so the task fails at once with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskDefect {
    #[error("the task has no tag: its hash in Redis is damaged; scan and run again")]
    NoTag,
    #[error(
        "the task's block range {start}..{end} does not fit the file ({len} bytes): its hash in \
         Redis is damaged or the file changed; scan and run again"
    )]
    BadRange {
        start: usize,
        end: usize,
        len: usize,
    },
}

impl TaskDefect {
    /// A short stable word for summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            TaskDefect::NoTag => "bad_task",
            TaskDefect::BadRange { .. } => "bad_range",
        }
    }
}

impl TaskSpec {
    /// The task for `todo`, found in the file `content` (its block range points into it).
    pub fn from_todo(todo: &Todo, content: &str) -> TaskSpec {
        let block = content.get(todo.block.start..todo.block.end).unwrap_or("");
        let mut block_hash = scan::sha256_hex(block.as_bytes());
        block_hash.truncate(16);
        TaskSpec {
            id: todo.id.clone(),
            path: todo.path.clone(),
            line: todo.line,
            tag: todo.tag.clone(),
            text: todo.text.clone(),
            language: todo.language.clone(),
            symbol: todo.symbol.clone(),
            block_start: todo.block.start,
            block_end: todo.block.end,
            content_hash: todo.content_hash.clone(),
            block_hash,
        }
    }

    /// This task against the file's `content`, once it is known to be workable: a tag to
    /// look for, and a block range inside the file on character boundaries. Checked before
    /// the LLM is asked, since no answer can mend a damaged task.
    pub fn target<'a>(&'a self, content: &'a str) -> Result<Target<'a>, TaskDefect> {
        if self.tag.trim().is_empty() {
            return Err(TaskDefect::NoTag);
        }
        let (start, end) = (self.block_start, self.block_end);
        match content.get(start..end) {
            Some(block) if start < end => Ok(Target {
                spec: self,
                content,
                block,
            }),
            _ => Err(TaskDefect::BadRange {
                start,
                end,
                len: content.len(),
            }),
        }
    }
}

/// A Rust task on `block` of `content`, for the unit tests of the stages after the queue.
#[cfg(test)]
pub(crate) fn test_spec(content: &str, block: &str, text: &str) -> TaskSpec {
    let start = content.find(block).expect("the block is in the content");
    TaskSpec {
        id: "t1".into(),
        path: "src/lib.rs".into(),
        line: 2,
        tag: "TODO".into(),
        text: text.into(),
        language: "rust".into(),
        symbol: None,
        block_start: start,
        block_end: start + block.len(),
        content_hash: String::new(),
        block_hash: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_name_a_path_elsewhere_are_refused() {
        assert!(is_task_id("a258402d575808ad"));
        assert!(is_run_id("20261202-062507-1401"));
        for bad in [
            "../../x",
            "/abs/x",
            "A258402D575808AD",
            "a258402d575808a",
            "",
        ] {
            assert!(!is_task_id(bad), "{bad}");
        }
        for bad in [
            "../../outside/evilrun",
            "20261202-062507-14/1",
            "20261202_062507-1401",
        ] {
            assert!(!is_run_id(bad), "{bad}");
        }
    }

    fn spec(start: usize, end: usize, tag: &str) -> TaskSpec {
        TaskSpec {
            id: "t".into(),
            path: "a.rs".into(),
            line: 1,
            tag: tag.into(),
            text: String::new(),
            language: "rust".into(),
            symbol: None,
            block_start: start,
            block_end: end,
            content_hash: String::new(),
            block_hash: String::new(),
        }
    }

    #[test]
    fn a_damaged_task_is_refused_before_any_work() {
        let content = "// TODO: é\nfn f() {}\n";
        assert_eq!(
            spec(0, 12, "TODO").target(content).map(|t| t.block),
            Ok("// TODO: é\n")
        );
        assert_eq!(
            spec(0, 12, "").target(content).map(|t| t.block),
            Err(TaskDefect::NoTag)
        );
        for (s, e) in [(0, 99), (5, 2), (3, 3), (0, 10)] {
            // 99: past the end; 5..2: reversed; 3..3: empty; 10: inside `é`.
            assert!(
                matches!(
                    spec(s, e, "TODO").target(content).map(|t| t.block),
                    Err(TaskDefect::BadRange { .. })
                ),
                "{s}..{e}"
            );
        }
    }
}
