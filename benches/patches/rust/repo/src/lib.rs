//! Small helpers over numbers and text.

pub mod num;
pub mod parse;
pub mod text;
