//! The whole transcript of a step, for people: every exchange (bounded), and
//! the decoded claims of the JWTs it carried, read *before* redaction (the
//! tokens themselves are secrets and never leave the run). `report.html` and
//! `conform --narrate` show it; report.json keeps only failing steps'
//! exchanges, as before.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use crate::http::{scrub, Exchange};

/// Exchanges kept per step; a burst of registrations keeps its first ones.
pub const MAX_EXCHANGES: usize = 12;
/// Characters of a body the transcript keeps (report.json's cut is 4 KiB).
pub const BODY_LIMIT: usize = 2048;

/// A JWT seen in an exchange: where, and its decoded (unverified) header and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSeen {
    /// `request` or `response`, and the field that carried it (`access_token`, `client_assertion`).
    pub place: String,
    pub header: Value,
    pub claims: Value,
}

/// One exchange with the tokens it carried.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub exchange: Exchange,
    pub tokens: Vec<TokenSeen>,
}

/// What a step said on the wire, for people.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    pub exchanges: Vec<Recorded>,
    /// Exchanges beyond [`MAX_EXCHANGES`], not kept.
    pub omitted: usize,
}

impl Transcript {
    /// Keeps the first exchanges of a step (unredacted still) and decodes their JWTs.
    pub fn of(exchanges: &[Exchange]) -> Transcript {
        let kept = exchanges.iter().take(MAX_EXCHANGES).map(|e| {
            let mut tokens = Vec::new();
            if let Some(body) = &e.request_body {
                tokens.extend(jwts_in("request", body));
            }
            if let Some(body) = &e.response_body {
                tokens.extend(jwts_in("response", body));
            }
            let mut exchange = e.clone();
            for body in [&mut exchange.request_body, &mut exchange.response_body]
                .into_iter()
                .flatten()
            {
                cut(body);
            }
            Recorded { exchange, tokens }
        });
        Transcript {
            exchanges: kept.collect(),
            omitted: exchanges.len().saturating_sub(MAX_EXCHANGES),
        }
    }

    /// Redacts every secret the scenario saw, in the exchanges and the claims,
    /// and masks any JWT left (one the harness did not keep as a secret).
    pub fn redact(&mut self, secrets: &[String]) {
        for r in &mut self.exchanges {
            r.exchange.redact(secrets);
            // Cookies (sent and set) keep their names and attributes only: `Exchange::redact`.
            mask_exchange(&mut r.exchange);
            for t in &mut r.tokens {
                scrub_value(&mut t.header, secrets);
                scrub_value(&mut t.claims, secrets);
            }
        }
    }
}

fn cut(body: &mut String) {
    if body.len() > BODY_LIMIT {
        let mut end = BODY_LIMIT;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        let cut = body.len() - end;
        body.truncate(end);
        body.push_str(&format!("… [{cut} bytes cut]"));
    }
}

fn scrub_value(value: &mut Value, secrets: &[String]) {
    match value {
        Value::String(s) => {
            scrub(s, secrets);
            *s = mask_jwts(s);
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_value(v, secrets)),
        Value::Object(map) => map.values_mut().for_each(|v| scrub_value(v, secrets)),
        _ => {}
    }
}

/// Masks JWTs anywhere in an exchange.
pub fn mask_exchange(e: &mut Exchange) {
    e.url = mask_jwts(&e.url);
    for (_, value) in e
        .request_headers
        .iter_mut()
        .chain(e.response_headers.iter_mut())
    {
        *value = mask_jwts(value);
    }
    for body in [&mut e.request_body, &mut e.response_body]
        .into_iter()
        .flatten()
    {
        *body = mask_jwts(body);
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// Decodes a compact JWS's header and payload, if `candidate` is one.
pub fn decode_jwt(candidate: &str) -> Option<(Value, Value)> {
    let mut parts = candidate.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || header.len() < 8 || payload.is_empty() || signature.is_empty() {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    header.get("alg")?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.is_object().then_some((header, claims))
}

/// Replaces every JWT in `text` by `[jwt]`: a report shows claims, never a token.
pub fn mask_jwts(text: &str) -> String {
    if !text.contains("eyJ") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if decode_jwt(word).is_some() || (word.starts_with("eyJ") && word.matches('.').count() == 2)
        {
            out.push_str("[jwt]");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if is_token_char(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The JWTs in a body: by JSON path, by form key, or found in plain text.
pub fn jwts_in(side: &str, body: &str) -> Vec<TokenSeen> {
    let mut found = Vec::new();
    let mut push = |name: &str, value: &str| {
        if let Some((header, claims)) = decode_jwt(value) {
            found.push(TokenSeen {
                place: format!("{side} {name}"),
                header,
                claims,
            });
        }
    };
    if let Ok(json) = serde_json::from_str::<Value>(body) {
        fn walk(path: &str, v: &Value, push: &mut dyn FnMut(&str, &str)) {
            match v {
                Value::String(s) => push(path, s),
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        walk(&format!("{path}[{i}]"), item, push);
                    }
                }
                Value::Object(map) => {
                    for (k, item) in map {
                        let p = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        };
                        walk(&p, item, push);
                    }
                }
                _ => {}
            }
        }
        walk("", &json, &mut push);
    } else if body.contains('=') && !body.trim_start().starts_with('<') {
        for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
            push(&k, &v);
        }
    } else {
        for word in body.split(|c: char| !is_token_char(c)) {
            push("text", word);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &Value) -> String {
        format!(
            "{}.{}.c2lnbmF0dXJl",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"at+jwt"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    #[test]
    fn finds_jwts_in_json_and_forms_and_masks_them() {
        let token = jwt(&serde_json::json!({"sub": "user-alice", "scope": "a b"}));
        let json = format!(r#"{{"access_token":"{token}","token_type":"Bearer"}}"#);
        let seen = jwts_in("response", &json);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].place, "response access_token");
        assert_eq!(seen[0].claims["sub"], "user-alice");
        let form = format!("grant_type=x&subject_token={token}");
        assert_eq!(jwts_in("request", &form)[0].place, "request subject_token");
        assert_eq!(
            mask_jwts(&format!("Bearer {token}, more")),
            "Bearer [jwt], more"
        );
        assert_eq!(mask_jwts("eyJnot.a.jwt-but-looks"), "[jwt]");
        assert_eq!(mask_jwts("plain a.b.c"), "plain a.b.c");
    }

    #[test]
    fn redaction_covers_bodies_claims_and_cookies() {
        let token = jwt(&serde_json::json!({"sub": "user-alice", "secret_note": "s3cret-value"}));
        let exchange = Exchange {
            method: "POST".into(),
            url: "http://hub/oauth/token".into(),
            request_headers: vec![("authorization".into(), "Basic YWJjOmRlZg==".into())],
            request_body: Some("grant_type=password&password=s3cret-value".into()),
            status: Some(200),
            response_headers: vec![(
                "set-cookie".into(),
                "session=abcdef123; HttpOnly; Path=/".into(),
            )],
            response_body: Some(format!(r#"{{"access_token":"{token}"}}"#)),
            transport_error: None,
            operation: None,
        };
        let mut t = Transcript::of(&[exchange]);
        t.redact(&["s3cret-value".to_owned()]);
        let r = &t.exchanges[0];
        assert_eq!(r.tokens[0].claims["sub"], "user-alice");
        assert_eq!(r.tokens[0].claims["secret_note"], "[redacted]");
        assert_eq!(r.exchange.request_headers[0].1, "Basic [redacted]");
        assert_eq!(
            r.exchange.request_body.as_deref(),
            Some("grant_type=password&password=[redacted]")
        );
        assert_eq!(
            r.exchange.response_headers[0].1,
            "session=[redacted]; HttpOnly; Path=/"
        );
        assert_eq!(
            r.exchange.response_body.as_deref(),
            Some(r#"{"access_token":"[jwt]"}"#)
        );
    }
}
