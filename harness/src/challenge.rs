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

/// The scheme of every challenge in `WWW-Authenticate` values (one header
/// may hold several challenges, RFC 9110 §11.6.1), lowercased: schemes are
/// case-insensitive (§11.1).
pub fn schemes<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut found = Vec::new();
    for value in values {
        // Elements are separated by commas outside quoted strings; an element
        // that starts with a token not followed by `=` starts a challenge.
        let mut elements = Vec::new();
        let mut current = String::new();
        let mut quoted = false;
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => quoted = !quoted,
                '\\' if quoted => {
                    current.extend(chars.next());
                    continue;
                }
                ',' if !quoted => {
                    elements.push(std::mem::take(&mut current));
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        elements.push(current);
        for element in elements {
            let element = element.trim();
            let end = element
                .find(|c: char| c == '=' || c.is_whitespace())
                .unwrap_or(element.len());
            let (token, rest) = element.split_at(end);
            if !token.is_empty() && !rest.trim_start().starts_with('=') {
                found.push(token.to_ascii_lowercase());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::{parse, schemes};
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

    #[test]
    fn finds_every_challenge_scheme_lowercased() {
        assert_eq!(schemes([r#"Basic realm="token""#]), ["basic"]);
        assert_eq!(schemes(["basic"]), ["basic"]);
        assert_eq!(
            schemes([
                r#"Bearer realm="a, b=c", error="invalid_token", Basic realm = "x""#,
                "Negotiate abc==",
            ]),
            ["bearer", "basic", "negotiate"]
        );
        assert!(schemes([""]).is_empty());
    }
}
