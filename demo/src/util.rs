//! Small helpers both demo parts share.

use std::collections::HashMap;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::RngCore as _;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use url::Url;

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
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
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

/// HTML-escapes text for element content and quoted attribute values: the
/// provider's approve page and the IdP's sign-in page both echo what the
/// client or the user sent (client id, account name, login hint).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The error paragraph of a form page (escaped, announced to screen
/// readers), or nothing without an error: the approve and sign-in pages
/// both show their form again with one.
pub(crate) fn alert(error: Option<&str>) -> String {
    error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default()
}

/// RFC 7636 §4.1: 43–128 unreserved characters (a verifier, or an S256
/// challenge). Both servers require PKCE, at `/authorize` and at `/token`.
fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `302` to the client's redirect URI with `params`, then `state` and `iss`
/// (when given) added to its query: the authorization response of both
/// servers, success or error (RFC 6749 §4.1.2, §4.1.2.1). The IdP names
/// itself in `iss` (RFC 9207 §2); the provider passes `None`.
pub(crate) fn redirect_with(
    redirect_uri: &Url,
    params: &[(&str, &str)],
    state: Option<&str>,
    iss: Option<&str>,
) -> Response {
    let mut url = redirect_uri.clone();
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in params {
            query.append_pair(key, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        if let Some(iss) = iss {
            query.append_pair("iss", iss);
        }
    }
    let mut response = Redirect::to(url.as_str()).into_response();
    *response.status_mut() = StatusCode::FOUND;
    response
}

/// An error authorization response (RFC 6749 §4.1.2.1) through [`redirect_with`]:
/// both servers send one for a bad request and for a user who declines.
pub(crate) fn redirect_error(
    redirect_uri: &Url,
    error: &str,
    description: &str,
    state: Option<&str>,
    iss: Option<&str>,
) -> Response {
    redirect_with(
        redirect_uri,
        &[("error", error), ("error_description", description)],
        state,
        iss,
    )
}

/// The redirect URI of an authorization request (RFC 6749 §4.1.1), parsed
/// and as sent, once the request names the server's one `client_id` and an
/// absolute `http(s)` `redirect_uri` without a fragment (§3.1.2). Until both
/// check out nothing may be redirected (§4.1.2.1), so `Err` is the message
/// for the server's own error page; `unregistered` is its text for another
/// client.
pub(crate) fn redirect_target(
    params: &Params,
    client_id: &str,
    unregistered: &'static str,
) -> Result<(Url, String), &'static str> {
    match params.get("client_id") {
        None => return Err("The request names no client_id."),
        Some(id) if id != client_id => return Err(unregistered),
        Some(_) => {}
    }
    let raw = params.get("redirect_uri").unwrap_or_default().to_owned();
    let Ok(url) = Url::parse(&raw) else {
        return Err("The redirect_uri is missing or is not an absolute URL.");
    };
    if !matches!(url.scheme(), "http" | "https") || url.fragment().is_some() {
        return Err("The redirect_uri must be an http(s) URL without a fragment.");
    }
    Ok((url, raw))
}

/// The PKCE challenge of an authorization request (RFC 7636 §4.3): both
/// servers require one, `S256` only. `Err` is the `invalid_request`
/// description to redirect back.
pub(crate) fn s256_challenge(params: &Params) -> Result<&str, &'static str> {
    let Some(challenge) = params.get("code_challenge") else {
        return Err("PKCE is required: send code_challenge");
    };
    if params.get("code_challenge_method") != Some("S256") {
        return Err("code_challenge_method must be S256");
    }
    if !is_pkce_value(challenge) {
        return Err("the code_challenge is malformed");
    }
    Ok(challenge)
}

/// RFC 6749 §5.1: token responses (and the IdP's userinfo) are not cached.
pub(crate) fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

/// An RFC 6749 §5.2 error, as both token endpoints answer it.
pub(crate) struct OAuthError {
    pub(crate) status: StatusCode,
    pub(crate) error: &'static str,
    pub(crate) description: String,
    /// The realm of the `Basic` challenge (`WWW-Authenticate`) to send, if any.
    pub(crate) basic_challenge: Option<&'static str>,
}

impl OAuthError {
    /// A `400` error.
    pub(crate) fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: None,
        }
    }

    /// `401 invalid_client`, with a `Basic` challenge in `realm` if given.
    pub(crate) fn invalid_client(description: &str, realm: Option<&'static str>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            basic_challenge: realm,
            ..Self::new("invalid_client", description)
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, no_store(), Json(body)).into_response();
        if let Some(realm) = self.basic_challenge {
            if let Ok(value) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

/// The one client a demo server's token endpoint knows (the hub), and how it
/// challenges a failed client authentication.
pub(crate) struct TokenClient<'a> {
    pub(crate) id: &'a str,
    pub(crate) secret: &'a str,
    /// The realm of the `Basic` challenge.
    pub(crate) realm: &'static str,
    /// Challenge every failed authentication (a 401 always carries a
    /// challenge, RFC 9110 §15.5.2), not only one that came through the
    /// Authorization header (RFC 6749 §5.2).
    pub(crate) always_challenge: bool,
}

/// A token request (RFC 6749 §3.2), once `client` has authenticated
/// (§2.3.1): by HTTP Basic (form-encoded id and secret) or by `client_id`
/// and `client_secret` in the body, not both. Returns its `grant_type`
/// (required in every grant) and its form parameters.
pub(crate) fn token_request(
    client: &TokenClient<'_>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Params), OAuthError> {
    let params = Params::parse(body).map_err(|name| {
        OAuthError::new(
            "invalid_request",
            format!("the parameter {name} is repeated"),
        )
    })?;
    let refuse = |description: &str, via_basic: bool| {
        let challenge = client.always_challenge || via_basic;
        OAuthError::invalid_client(description, challenge.then_some(client.realm))
    };
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(
            basic_credentials(value).ok_or_else(|| refuse("malformed Basic credentials", true))?,
        ),
    };
    let (id, secret, via_basic) = match (basic, params.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::new(
                "invalid_request",
                "use exactly one client authentication method",
            ))
        }
        (Some((id, secret)), None) => {
            if params.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::new(
                    "invalid_request",
                    "client_id does not match the credentials",
                ));
            }
            (id, secret, true)
        }
        (None, Some(secret)) => {
            let id = params
                .get("client_id")
                .ok_or_else(|| OAuthError::new("invalid_request", "client_id is missing"))?;
            (id.to_owned(), secret.to_owned(), false)
        }
        (None, None) => return Err(refuse("client authentication is required", false)),
    };
    // Digests have a fixed length, so the comparison leaks nothing useful.
    if id != client.id || digest(&secret) != digest(client.secret) {
        return Err(refuse("unknown client or wrong secret", via_basic));
    }
    let grant_type = params
        .get("grant_type")
        .ok_or_else(|| OAuthError::new("invalid_request", "grant_type is missing"))?
        .to_owned();
    Ok((grant_type, params))
}

/// The parameters of an `authorization_code` grant (RFC 6749 §4.1.3,
/// RFC 7636 §4.5), which both token endpoints check the same way.
pub(crate) struct CodeGrant<'a> {
    pub(crate) code: &'a str,
    redirect_uri: &'a str,
    verifier: &'a str,
}

impl<'a> CodeGrant<'a> {
    pub(crate) fn from_params(params: &'a Params) -> Result<Self, OAuthError> {
        let required = |name: &'static str| {
            params
                .get(name)
                .ok_or_else(|| OAuthError::new("invalid_request", format!("{name} is missing")))
        };
        Ok(Self {
            code: required("code")?,
            redirect_uri: required("redirect_uri")?,
            verifier: required("code_verifier")?,
        })
    }

    /// Whether the request matches the code it redeems: the `redirect_uri`
    /// the authorization request sent, and a verifier whose S256 digest is
    /// its `code_challenge`.
    pub(crate) fn check(&self, redirect_uri: &str, code_challenge: &str) -> Result<(), OAuthError> {
        if self.redirect_uri != redirect_uri {
            return Err(OAuthError::new(
                "invalid_grant",
                "redirect_uri does not match the authorization request",
            ));
        }
        if !is_pkce_value(self.verifier) || digest(self.verifier) != code_challenge {
            return Err(OAuthError::new(
                "invalid_grant",
                "the code_verifier does not match the code_challenge",
            ));
        }
        Ok(())
    }
}

/// `Authorization: Basic` client credentials (RFC 6749 §2.3.1: id and
/// secret are form-encoded before the base64), as both token endpoints
/// accept them; `None` if the header is not well-formed Basic.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let form_decode = |s: &str| -> String {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((form_decode(id), form_decode(secret)))
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

    #[test]
    fn redirect_with_appends_state_then_iss() {
        let to = Url::parse("https://rp.example/cb?keep=1").unwrap();
        let location = |response: Response| {
            assert_eq!(response.status(), StatusCode::FOUND);
            response.headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            location(redirect_with(&to, &[("code", "c d")], Some("s"), None)),
            "https://rp.example/cb?keep=1&code=c+d&state=s"
        );
        assert_eq!(
            location(redirect_error(&to, "e", "d", None, Some("http://idp"))),
            "https://rp.example/cb?keep=1&error=e&error_description=d&iss=http%3A%2F%2Fidp"
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let value =
            HeaderValue::from_str(&format!("basic {}", STANDARD.encode("a%3Ab:s+t"))).unwrap();
        assert_eq!(
            basic_credentials(&value),
            Some(("a:b".to_owned(), "s t".to_owned()))
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Bearer x")),
            None
        );
    }

    /// The challenge a refused token request carries, for each policy.
    fn challenge(always: bool, basic: Option<&str>, body: &str) -> Option<String> {
        let client = TokenClient {
            id: "hub",
            secret: "secret",
            realm: "Demo",
            always_challenge: always,
        };
        let mut headers = HeaderMap::new();
        if let Some(credentials) = basic {
            let value = format!("Basic {}", STANDARD.encode(credentials));
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&value).unwrap(),
            );
        }
        let Err(error) = token_request(&client, &headers, body.as_bytes()) else {
            panic!("expected a refusal");
        };
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn token_request_challenges_as_configured() {
        let basic = Some("Basic realm=\"Demo\"".to_owned());
        let wrong_body = "grant_type=x&client_id=hub&client_secret=wrong";
        // Only when Basic was tried...
        assert_eq!(challenge(false, Some("hub:wrong"), "grant_type=x"), basic);
        assert_eq!(challenge(false, None, wrong_body), None);
        assert_eq!(challenge(false, None, "grant_type=x"), None);
        // ...or always.
        assert_eq!(challenge(true, None, wrong_body), basic);
        assert_eq!(challenge(true, None, "grant_type=x"), basic);
    }

    #[test]
    fn token_request_needs_a_grant_type_after_authentication() {
        let client = TokenClient {
            id: "hub",
            secret: "secret",
            realm: "Demo",
            always_challenge: false,
        };
        let body = b"client_id=hub&client_secret=secret";
        let Err(error) = token_request(&client, &HeaderMap::new(), body) else {
            panic!("expected a refusal");
        };
        assert_eq!(
            (error.status, error.error),
            (StatusCode::BAD_REQUEST, "invalid_request")
        );
        let body = b"grant_type=authorization_code&client_id=hub&client_secret=secret";
        let (grant_type, params) = token_request(&client, &HeaderMap::new(), body)
            .ok()
            .unwrap();
        assert_eq!(grant_type, "authorization_code");
        assert_eq!(params.get("client_id"), Some("hub"));
    }
}
