//! Parsers.

/// A TCP port number.
pub fn parse_port(s: &str) -> Result<u16, String> {
    // TODO: reject port 0 with an error
    s.trim()
        .parse::<u16>()
        .map_err(|e| format!("bad port {s:?}: {e}"))
}

/// `#rrggbb` -> (r, g, b).
pub fn parse_hex_color(s: &str) -> Option<(u8, u8, u8)> {
    let hex = s.strip_prefix('#')?;
    // TODO: accept the short form #rgb too, where each digit is doubled: #fa0 is (255, 170, 0)
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some((channel(0)?, channel(2)?, channel(4)?))
}

/// Run-length decoding: `a3b1` -> `aaab`.
pub fn rle_decode(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        // TODO: support counts of more than one digit, e.g. a12b1
        let count = chars.next()?.to_digit(10)?;
        for _ in 0..count {
            out.push(c);
        }
    }
    Some(out)
}
