//! Small helpers both demo parts share.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// A fresh unguessable value (256 bits, base64url) with a readable prefix,
/// so a leaked value says where it came from.
pub(crate) fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 as base64url: secrets are kept as digests only, so a dump of the
/// in-memory state holds nothing usable (and PKCE S256 is the same function).
pub(crate) fn digest(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

/// Form or query parameters (RFC 6749 §3.1): a repeated parameter is an
/// error, an empty one counts as absent.
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded`; `Err` names the repeated parameter.
    pub(crate) fn parse(input: &[u8]) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (key, value) in url::form_urlencoded::parse(input) {
            if value.is_empty() {
                continue;
            }
            if map.insert(key.to_string(), value.into_owned()).is_some() {
                return Err(key.into_owned());
            }
        }
        Ok(Self(map))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// `Authorization: Bearer <token>` (RFC 6750 §2.1; the scheme is case-insensitive).
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Makes a text safe inside a quoted `WWW-Authenticate` parameter (RFC 6750
/// §3: no `"` or `\`, printable ASCII only).
pub(crate) fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_refuse_repeats_and_drop_empty_values() {
        assert_eq!(Params::parse(b"a=1&a=2").err().as_deref(), Some("a"));
        let params = Params::parse(b"a=&b=x%20y").unwrap();
        assert_eq!(params.get("a"), None);
        assert_eq!(params.get("b"), Some("x y"));
    }

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            digest("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn quotable_strips_quotes_and_controls() {
        assert_eq!(quotable("a\"b\\c\nd"), "a'b'c?d");
    }
}
