/// Parses a port number from text.
pub fn parse_port(s: &str) -> u16 {
    // TODO: return a Result instead of panicking on bad input
    s.trim().parse().unwrap()
}

pub fn greet(name: &str) -> String {
    let todo_list = "TODO inside a string literal";
    let _ = todo_list;
    format!("hello {name}")
}
