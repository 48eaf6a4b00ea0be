//! Secrets kept out of everything tars shows or stores.
//!
//! A URL may carry credentials (`redis://:password@host`, `http://user:token@llm`). Such a URL is
//! configuration, but its text ends up in log lines, error messages, Redis fields (`reason`,
//! `errors`), `summary.json` and, for LLM permits, in key names, all of which other people read.
//! Every URL that is shown or stored goes through [`redact_url`] first.

/// A secret value (a password, an API key): `Debug` and `Serialize` show [`MASK`], so a
/// configuration can be logged or dumped whole without leaking it; [`Secret::expose`] is the one
/// way to the value, for the code that sends it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MASK)
    }
}

/// What stands in for a removed secret.
pub const MASK: &str = "***";

/// `url` with the password of its userinfo replaced by [`MASK`] (`redis://:***@host:6379`,
/// `http://alice:***@host`); a user name alone is kept, since it is not a secret and tells
/// which account was used. Text that is not a URL with userinfo comes back unchanged, so the
/// function is safe to apply to anything that might be a URL.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    // The authority ends at the first '/', '?' or '#'; userinfo is what precedes its last '@'.
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let user = match userinfo.find(':') {
        Some(colon) => &userinfo[..colon],
        // No colon: the whole userinfo may be a token (`http://TOKEN@host`).
        None if userinfo.is_empty() => "",
        None => return format!("{}{MASK}{}", &url[..rest_start], &rest[at..]),
    };
    format!("{}{user}:{MASK}{}", &url[..rest_start], &rest[at..])
}

/// The password (or token) in a URL's userinfo, if it has one (`fleet up` moves it into a
/// file mounted into the workers).
pub fn url_password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    match userinfo.find(':') {
        Some(colon) => Some(&userinfo[colon + 1..]).filter(|p| !p.is_empty()),
        None => Some(userinfo).filter(|u| !u.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_the_rest_kept() {
        assert_eq!(
            redact_url("redis://:s3cret@redis:6379/0"),
            "redis://:***@redis:6379/0"
        );
        assert_eq!(
            redact_url("rediss://tars:p%40ss@h:6380"),
            "rediss://tars:***@h:6380"
        );
        assert_eq!(
            redact_url("http://alice:tok@llm:8080/v1?x=a@b"),
            "http://alice:***@llm:8080/v1?x=a@b"
        );
        assert_eq!(redact_url("http://TOKEN@llm"), "http://***@llm");
        // An '@' in the password itself: the userinfo ends at the last '@' of the authority.
        assert_eq!(redact_url("http://u:a@b@host/p"), "http://u:***@host/p");
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        for u in [
            "redis://127.0.0.1:6379",
            "http://llm:11434/api?a=b@c",
            "unix:///run/redis.sock",
            "not a url",
            "",
        ] {
            assert_eq!(redact_url(u), u);
        }
    }

    #[test]
    fn the_password_is_found() {
        assert_eq!(
            url_password("redis://:hunter22@redis:6379"),
            Some("hunter22")
        );
        assert_eq!(url_password("redis://redis:6379"), None);
        assert_eq!(url_password("http://tok@llm"), Some("tok"));
        assert_eq!(url_password("http://user:@llm"), None);
    }
}
