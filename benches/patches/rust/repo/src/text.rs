//! Text.

/// Whether `s` reads the same backwards.
pub fn is_palindrome(s: &str) -> bool {
    // TODO: ignore case and every character that is not alphanumeric
    let chars: Vec<char> = s.chars().collect();
    chars.iter().eq(chars.iter().rev())
}

/// Capitalises the first letter of every word.
pub fn title_case(s: &str) -> String {
    // TODO: keep the small words a, an, the, of, and, or in lower case, except as the first word
    s.split(' ')
        .map(|w| {
            let mut cs = w.chars();
            match cs.next() {
                Some(f) => f.to_uppercase().collect::<String>() + &cs.as_str().to_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Greedy word wrap: lines of at most `width` characters, words separated by single spaces.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        // TODO: split a word longer than width across lines instead of letting a line exceed width
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
