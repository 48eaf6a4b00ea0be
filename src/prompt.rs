//! What the model is asked. It gets the block and as much of the file above it as the
//! context window allows, and must answer with the whole rewritten block in one fenced code
//! block: local models write whole blocks far more reliably than diffs (Aider's leaderboards:
//! ~99% well-formed whole outputs against ~70% for SEARCH/REPLACE), and they cannot count lines.

use crate::llm::{Message, estimate_tokens};
use crate::task::Target;

const SYSTEM_PROMPT: &str = "You are a careful senior software engineer. You get one block of \
code from a file and a TODO or FIXME comment inside it. Rewrite the block so that the TODO is \
done, and delete the TODO comment. Reply with the complete rewritten block in ONE fenced code \
block and nothing else. Keep the rest of the block as it is. Never shorten code with '...' or \
comments such as 'rest of the code'.";

/// Builds the chat messages. `budget_tokens` bounds the prompt: the block always goes in; the
/// lines before it are added, nearest first, while they fit, since they carry the imports and
/// types the rewrite needs.
pub fn build_prompt(target: &Target<'_>, budget_tokens: u64) -> Vec<Message> {
    let Target {
        spec,
        content,
        block,
    } = *target;
    let fence = fence_for(block);
    let lang = spec.language.as_str();
    let tag_line = if spec.text.is_empty() {
        spec.tag.clone()
    } else {
        format!("{}: {}", spec.tag, spec.text)
    };
    let head = format!(
        "File: {}\nLanguage: {}\nTask (line {}): {}\n",
        spec.path, lang, spec.line, tag_line
    );
    let tail = format!(
        "\nBlock to rewrite:\n{fence}{lang}\n{}{}{fence}\n\nReply with the whole rewritten block \
         in one {fence}{lang} code block.",
        block,
        if block.ends_with('\n') { "" } else { "\n" },
    );
    let fixed = (SYSTEM_PROMPT.len() + head.len() + tail.len()) as u64 / 4 + 16;
    let mut context = String::new();
    if budget_tokens > fixed {
        let mut room = ((budget_tokens - fixed) * 4) as usize;
        let before = content.get(..spec.block_start).unwrap_or_default();
        let mut lines: Vec<&str> = Vec::new();
        for line in before.split_inclusive('\n').rev().take(200) {
            if line.len() + 1 > room {
                break;
            }
            room -= line.len();
            lines.push(line);
        }
        lines.reverse();
        if !lines.is_empty() {
            context = format!(
                "\nThe file before the block (context, do not repeat it):\n{fence}{lang}\n{}{fence}\n",
                lines.concat()
            );
        }
    }
    vec![
        Message::system(SYSTEM_PROMPT),
        Message::user(format!("{head}{context}{tail}")),
    ]
}

/// A fence longer than any backtick run in the block, so code that contains ``` stays intact.
fn fence_for(block: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in block.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat(longest.max(2) + 1)
}

/// The next ask after a rejected answer: the same prompt, plus why the last answer failed.
pub fn after_rejection(base: &[Message], why: &dyn std::fmt::Display) -> Vec<Message> {
    let mut messages = base.to_vec();
    if let Some(user) = messages.last_mut() {
        user.content.push_str(&format!(
            "\n\nA previous answer was rejected: {why}. Avoid that."
        ));
    }
    messages
}

/// A repair round: the task's prompt (smaller by what the rest takes), the model's answer
/// whose patch failed the repository's check, and that check's first error, with the ask to
/// fix it. The error was trimmed by the verifier; the answer is cut here if it is huge.
pub fn for_repair(
    target: &Target<'_>,
    budget_tokens: u64,
    repair: &crate::verify::Repair,
) -> Vec<Message> {
    let answer = crate::verify::tail(&repair.answer, 8 * 1024);
    let follow_up = format!(
        "Your rewrite was applied to the file and the repository's check `{}` failed:\n\n\
         {fence}\n{}\n{fence}\n\nFix the block so that the check passes. Reply with the whole \
         rewritten block again, in one fenced code block, and nothing left out.",
        repair.command,
        repair.error.trim_end(),
        fence = fence_for(&repair.error),
    );
    let extra = estimate_tokens(&[
        Message::assistant(answer.clone()),
        Message::user(follow_up.clone()),
    ]);
    let mut messages = build_prompt(target, budget_tokens.saturating_sub(extra));
    messages.push(Message::assistant(answer));
    messages.push(Message::user(follow_up));
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::test_spec as spec;

    const FILE: &str = "use std::fmt;\n\nfn add(a: i32, b: i32) -> i32 {\n    // TODO: handle overflow\n    a + b\n}\n\nfn main() {}\n";
    const BLOCK: &str =
        "fn add(a: i32, b: i32) -> i32 {\n    // TODO: handle overflow\n    a + b\n}\n";

    #[test]
    fn prompt_holds_block_and_fits_budget() {
        let s = spec(FILE, BLOCK, "handle overflow");
        let m = build_prompt(&s.target(FILE).unwrap(), 2000);
        assert_eq!(m.len(), 2);
        assert!(m[1].content.contains(BLOCK));
        assert!(m[1].content.contains("use std::fmt;"));
        let small = build_prompt(&s.target(FILE).unwrap(), 10);
        assert!(!small[1].content.contains("use std::fmt;"));
        assert!(small[1].content.contains(BLOCK));
    }

    #[test]
    fn a_new_ask_says_why_the_last_answer_failed() {
        let s = spec(FILE, BLOCK, "handle overflow");
        let base = build_prompt(&s.target(FILE).unwrap(), 2000);
        let again = after_rejection(&base, &"the TODO comment is still there");
        assert_eq!(again[0], base[0]);
        assert!(again[1].content.starts_with(&base[1].content));
        assert!(
            again[1]
                .content
                .ends_with("the TODO comment is still there. Avoid that.")
        );
    }
}
