//! The upstream identity provider role: a tenant's own OpenID Provider, which
//! the target signs the tenant's users in through as an OpenID Connect
//! relying party (enterprise single sign-on), on a loopback wiremock server.
//!
//! * Discovery (OpenID Connect Discovery 1.0 §4) and a JWK Set with one
//!   ES256 key (the test key `harness/keys/upstream-idp.pem`);
//! * `/authorize` records what the target sent (its `nonce`, PKCE challenge,
//!   `state`, redirect URI) and redirects straight back with a code, as a
//!   provider whose user signed in would, echoing the `state` or, on demand,
//!   another one;
//! * `/token` redeems the code (client secret, S256 PKCE) for an ID token
//!   about the configured user and groups, correct or, on demand, with
//!   another `nonce` or another `iss`.
//!
//! Everything it issues is a secret the scenario saw.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The provider's ID token signing key: test-only.
const SIGNING_KEY: &str = include_str!("../keys/upstream-idp.pem");
const KID: &str = "conform-upstream-idp";

/// What the ID token says wrongly, if anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdTokenMode {
    #[default]
    Valid,
    /// A `nonce` other than the one the target sent.
    WrongNonce,
    /// An `iss` other than the provider's issuer identifier.
    WrongIssuer,
}

/// Which `state` the redirect back carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateMode {
    /// The one the target sent.
    #[default]
    Echo,
    /// Another one: a redirect back the target did not ask for.
    Tampered,
}

/// Who signs in at the provider, and how it answers.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    pub id_token: IdTokenMode,
    pub state: StateMode,
    /// The user's e-mail (also their name at the provider).
    pub email: String,
    pub groups: Vec<String>,
    /// RFC 8176 methods the provider says it used.
    pub amr: Vec<String>,
}

#[derive(Debug, Clone)]
struct PendingCode {
    nonce: Option<String>,
    challenge: Option<String>,
    redirect_uri: String,
}

#[derive(Default)]
struct State {
    issuer: String,
    client_id: String,
    client_secret: String,
    behaviour: Behaviour,
    codes: BTreeMap<String, PendingCode>,
    /// The queries of the authorization requests, oldest first.
    authorize_requests: Vec<BTreeMap<String, String>>,
    secrets: Vec<String>,
}

fn lock(state: &Arc<Mutex<State>>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn oauth_error(status: u16, error: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("cache-control", "no-store")
        .set_body_json(json!({ "error": error }))
}

struct Authorize(Arc<Mutex<State>>);

impl Respond for Authorize {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let query: BTreeMap<String, String> = request
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut state = lock(&self.0);
        state.authorize_requests.push(query.clone());
        let Some(redirect_uri) = query.get("redirect_uri").cloned() else {
            return ResponseTemplate::new(400).set_body_string("no redirect_uri");
        };
        if query.get("client_id") != Some(&state.client_id) {
            return ResponseTemplate::new(400).set_body_string("unknown client_id");
        }
        let code = format!("idp-code-{}", crate::random_token());
        state.secrets.push(code.clone());
        state.codes.insert(
            code.clone(),
            PendingCode {
                nonce: query.get("nonce").cloned(),
                challenge: query.get("code_challenge").cloned(),
                redirect_uri: redirect_uri.clone(),
            },
        );
        let sent_state = query.get("state").cloned().unwrap_or_default();
        let back_state = match state.behaviour.state {
            StateMode::Echo => sent_state,
            StateMode::Tampered => format!("forged-{}", crate::random_token()),
        };
        let mut back = match url::Url::parse(&redirect_uri) {
            Ok(url) => url,
            Err(_) => return ResponseTemplate::new(400).set_body_string("bad redirect_uri"),
        };
        back.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &back_state)
            .append_pair("iss", &state.issuer);
        ResponseTemplate::new(302).insert_header("location", back.as_str())
    }
}

struct Token(Arc<Mutex<State>>);

impl Token {
    /// The client's id and secret, by HTTP Basic or in the form.
    fn client(request: &Request, form: &BTreeMap<String, String>) -> Option<(String, String)> {
        crate::provider::basic_credentials(request).or_else(|| {
            Some((
                form.get("client_id")?.clone(),
                form.get("client_secret")?.clone(),
            ))
        })
    }
}

impl Respond for Token {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form = crate::provider::form(&request.body);
        let mut state = lock(&self.0);
        match Token::client(request, &form) {
            Some((id, secret)) if id == state.client_id && secret == state.client_secret => {}
            _ => return oauth_error(401, "invalid_client"),
        }
        if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
            return oauth_error(400, "unsupported_grant_type");
        }
        let Some(pending) = form.get("code").and_then(|c| state.codes.remove(c)) else {
            return oauth_error(400, "invalid_grant");
        };
        if form.get("redirect_uri") != Some(&pending.redirect_uri) {
            return oauth_error(400, "invalid_grant");
        }
        if let Some(challenge) = &pending.challenge {
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
                return oauth_error(400, "invalid_grant");
            }
        }
        let behaviour = state.behaviour.clone();
        let issued_at = now();
        let mut claims = json!({
            "iss": match behaviour.id_token {
                IdTokenMode::WrongIssuer => format!("{}/another-issuer", state.issuer),
                _ => state.issuer.clone(),
            },
            "sub": format!("conform-{}", behaviour.email),
            "aud": state.client_id,
            "iat": issued_at,
            "exp": issued_at + 300,
            "auth_time": issued_at,
            "email": behaviour.email,
            "email_verified": true,
            "name": "Conformance SSO user",
            "groups": behaviour.groups,
            "amr": behaviour.amr,
        });
        let nonce = match behaviour.id_token {
            IdTokenMode::WrongNonce => Some(format!("not-the-nonce-{}", crate::random_token())),
            _ => pending.nonce,
        };
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.to_owned());
        let id_token = match EncodingKey::from_ec_pem(SIGNING_KEY.as_bytes())
            .and_then(|key| jsonwebtoken::encode(&header, &claims, &key))
        {
            Ok(token) => token,
            Err(_) => return oauth_error(500, "server_error"),
        };
        let access_token = format!("idp-at-{}", crate::random_token());
        state.secrets.push(id_token.clone());
        state.secrets.push(access_token.clone());
        ResponseTemplate::new(200)
            .insert_header("cache-control", "no-store")
            .set_body_json(json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            }))
    }
}

/// A running upstream identity provider.
pub struct UpstreamIdp {
    server: MockServer,
    state: Arc<Mutex<State>>,
    pub client_id: String,
    pub client_secret: String,
}

impl UpstreamIdp {
    pub async fn start() -> Result<UpstreamIdp, String> {
        let server = MockServer::builder().start().await;
        let issuer = server.uri();
        let client_secret = format!("idp-secret-{}", crate::random_token());
        let key = EncodingKey::from_ec_pem(SIGNING_KEY.as_bytes())
            .map_err(|e| format!("the upstream IdP's test key: {e}"))?;
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256)
            .map_err(|e| format!("the upstream IdP's test key: {e}"))?;
        jwk.common.key_id = Some(KID.to_owned());
        let state = Arc::new(Mutex::new(State {
            issuer: issuer.clone(),
            client_id: "conform-hub".to_owned(),
            client_secret: client_secret.clone(),
            secrets: vec![client_secret.clone()],
            ..State::default()
        }));
        let discovery = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile", "groups"],
        });
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(discovery))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "keys": [jwk] })))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/authorize"))
            .respond_with(Authorize(state.clone()))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(Token(state.clone()))
            .mount(&server)
            .await;
        Ok(UpstreamIdp {
            server,
            state,
            client_id: "conform-hub".to_owned(),
            client_secret,
        })
    }

    /// The issuer identifier (and origin) of the provider.
    pub fn issuer(&self) -> String {
        self.server.uri()
    }

    /// Who signs in from now on, and how the provider answers.
    pub fn behave(&self, behaviour: Behaviour) {
        lock(&self.state).behaviour = behaviour;
    }

    /// The authorization requests the target sent, oldest first.
    pub fn authorize_requests(&self) -> Vec<BTreeMap<String, String>> {
        lock(&self.state).authorize_requests.clone()
    }

    /// Every secret it issued or holds.
    pub fn secrets(&self) -> Vec<String> {
        lock(&self.state).secrets.clone()
    }
}

/// What the target's authorization request to the provider carried, for a
/// step's facts: no value of a secret, only whether each is there.
pub fn request_facts(query: &BTreeMap<String, String>) -> Value {
    json!({
        "nonce_sent": query.contains_key("nonce"),
        "state_sent": query.contains_key("state"),
        "code_challenge_method": query.get("code_challenge_method"),
        "scope": query.get("scope"),
    })
}
