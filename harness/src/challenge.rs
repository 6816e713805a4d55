//! Parsing `WWW-Authenticate` challenges (RFC 9110 §11.6.1, RFC 6750 §3).

use serde_json::{Map, Value};

/// The first challenge's scheme and auth-params, as JSON facts:
/// `{"scheme": "Bearer", "params": {"resource_metadata": "…"}}`.
pub fn parse(header: &str) -> Value {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Map::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',' && !c.is_whitespace()))
                .collect();
        if name.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next_if_eq(&'=').is_none() {
            // A token68 or the start of another challenge: stop at the first challenge.
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let value = if chars.next_if_eq(&'"').is_some() {
            let mut v = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => v.extend(chars.next()),
                    '"' => break,
                    c => v.push(c),
                }
            }
            v
        } else {
            std::iter::from_fn(|| chars.next_if(|c| *c != ',' && !c.is_whitespace())).collect()
        };
        params.insert(name.to_ascii_lowercase(), Value::String(value));
    }
    serde_json::json!({"scheme": scheme, "params": params})
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    #[test]
    fn parses_quoted_and_token_params() {
        let v = parse(
            r#"Bearer resource_metadata="https://x/.well-known/a", error=insufficient_scope, scope="a b""#,
        );
        assert_eq!(v["scheme"], "Bearer");
        assert_eq!(v["params"]["resource_metadata"], "https://x/.well-known/a");
        assert_eq!(v["params"]["error"], "insufficient_scope");
        assert_eq!(v["params"]["scope"], json!("a b"));
    }
}
