//! Context from a syntax tree for the languages whose tree-sitter grammar ships with us.
//!
//! The indentation heuristic in `block` guesses scopes from layout; a parser knows them, so a
//! multi-line signature, a method in a class, a decorated or exported function or a closure
//! passed to `describe(...)` come out as the unit a person would rewrite. When the tree has no
//! definition around the tag that fits the size bound, the caller falls back to the heuristic,
//! which can still narrow to a loop or a window.
//!
//! Parsing costs about 10 MB/s per core, far more than finding the tags, so it only runs on
//! files with a tag and only when [`super::ScanOptions::syntax_context`] asks for it.
//!
//! `grammar` holds what each grammar calls a unit, `unit` finds a tag's block in a parsed
//! tree, `errors` counts a file's syntax errors for the patch gate, and `defs` lists a file's
//! named definitions for the gates that check what a rewrite keeps and what it copies.

mod defs;
mod errors;
mod grammar;
mod unit;

#[cfg(test)]
mod tests;

use std::cell::RefCell;

use tree_sitter::{Parser, Tree};

use grammar::{Grammar, grammars};

pub use defs::{Definition, Definitions, definitions};
pub use errors::{SyntaxErrors, syntax_errors};
pub use grammar::has_grammar;

thread_local! {
    /// A parser per walker thread: creating one allocates, and a scan parses thousands of files.
    static PARSER: RefCell<Parser> = RefCell::new(Parser::new());
}

/// A parsed file, ready to answer for each of its tags.
pub(crate) struct SyntaxTree<'a> {
    tree: Tree,
    text: &'a str,
    grammar: &'static Grammar,
}

impl<'a> SyntaxTree<'a> {
    /// `None` for a language without a grammar, or if the parser gives up (it does not on
    /// malformed code: it recovers and marks errors).
    /// When several grammars may fit (a `.h` file), the first that parses cleanly, else the
    /// one with the fewest errors.
    pub fn parse(language: &str, path: &str, text: &'a str) -> Option<SyntaxTree<'a>> {
        let mut best: Option<(usize, SyntaxTree<'a>)> = None;
        let candidates = grammars(language, path);
        for &grammar in candidates {
            let Some(tree) = PARSER.with(|p| {
                let mut parser = p.borrow_mut();
                parser.set_language(&(grammar.language)()).ok()?;
                parser.parse(text, None)
            }) else {
                continue;
            };
            let parsed = SyntaxTree {
                tree,
                text,
                grammar,
            };
            // A clean tree needs no count, and a lone candidate no comparison.
            let errors = if !parsed.tree.root_node().has_error() {
                0
            } else if candidates.len() == 1 {
                return Some(parsed);
            } else {
                parsed.errors(0..0).count
            };
            if best.as_ref().is_none_or(|(e, _)| errors < *e) {
                best = Some((errors, parsed));
            }
            if errors == 0 {
                break;
            }
        }
        best.map(|(_, t)| t)
    }
}
