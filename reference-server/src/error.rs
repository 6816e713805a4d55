//! The hub's error policy.
//!
//! Two kinds of error exist and they never mix:
//!
//! * [`OAuthError`] is a *protocol* error: the client did something the
//!   specifications forbid. Each variant cites the section that defines its
//!   `error` code. It renders as the JSON body of RFC 6749 §5.2 with a
//!   description written for the client; that description never carries a
//!   secret or internal detail.
//! * [`HubError`] is an *internal* failure (storage, crypto, configuration).
//!   Its detail is logged with `tracing` at the point it is turned into a
//!   response, and the client only ever sees `server_error`.
//!
//! Handlers return `Result<_, OAuthError>`; `?` on a `HubError` logs it and
//! becomes `server_error`. No handler panics on input: malformed bodies are
//! `invalid_request`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A protocol error, as defined by the OAuth family of RFCs.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    /// RFC 6749 §5.2 `invalid_request`: a parameter is missing, repeated, malformed or unsupported.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// RFC 6749 §5.2 `invalid_client`: client authentication failed (answered with 401).
    #[error("invalid_client: {0}")]
    InvalidClient(String),
    /// RFC 6749 §5.2 `invalid_grant`: the code or credentials are invalid, expired, used, or bound elsewhere.
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    /// RFC 6749 §5.2 `unauthorized_client`: this client may not use this grant type.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    /// RFC 6749 §5.2 `unsupported_grant_type`.
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(String),
    /// RFC 6749 §4.1.2.1 `unsupported_response_type`.
    #[error("unsupported_response_type: {0}")]
    UnsupportedResponseType(String),
    /// RFC 6749 §5.2 `invalid_scope`: unknown scope, or beyond what the client may have.
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// RFC 8707 §2 `invalid_target`: the `resource` is missing, unknown or not allowed.
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    /// RFC 6749 §4.1.2.1 `access_denied`: the resource owner or policy denied the request.
    #[error("access_denied: {0}")]
    AccessDenied(String),
    /// OpenID Connect Core §3.1.2.6 `login_required`, used in plain OAuth
    /// here: `prompt=none` and the user is not signed in (or must sign in again).
    #[error("login_required: {0}")]
    LoginRequired(String),
    /// OpenID Connect Core §3.1.2.6 `consent_required`: `prompt=none` and the
    /// request asks for scopes the user has not consented to.
    #[error("consent_required: {0}")]
    ConsentRequired(String),
    /// RFC 7591 §3.2.2 `invalid_redirect_uri`.
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(String),
    /// RFC 7591 §3.2.2 `invalid_client_metadata`.
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(String),
    /// RFC 6750 §3.1 `invalid_token` (resource server side).
    #[error("invalid_token: {0}")]
    InvalidToken(String),
    /// RFC 6750 §3.1 `insufficient_scope` (resource server side).
    #[error("insufficient_scope: {0}")]
    InsufficientScope(String),
    /// RFC 6749 §4.1.2.1 `temporarily_unavailable`, answered with HTTP 429 and
    /// `Retry-After` (RFC 6585 §4): this source is over its request budget.
    #[error("temporarily_unavailable: {description}")]
    TooManyRequests {
        description: String,
        retry_after: i64,
    },
    /// `reauthorization_required`, an extension error code (RFC 6749 §8.5):
    /// the vault holds no usable token for this owner of a Connection (none
    /// was stored, or the provider refused its refresh token), so a person
    /// must connect again at `connect_uri`.
    #[error("reauthorization_required: {description}")]
    ReauthorizationRequired {
        description: String,
        connect_uri: String,
    },
    /// RFC 6749 §4.1.2.1 `temporarily_unavailable`, answered with 502 (the
    /// third-party provider answered badly) or 504 (it did not answer in
    /// time): a Connection's token could not be refreshed right now.
    #[error("temporarily_unavailable: {description}")]
    ProviderUnavailable {
        description: String,
        timed_out: bool,
    },
    /// RFC 6749 §4.1.2.1 `server_error`: an internal failure; the detail is in the log only.
    #[error("server_error")]
    ServerError,
}

impl OAuthError {
    /// The registered `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::UnsupportedResponseType(_) => "unsupported_response_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::AccessDenied(_) => "access_denied",
            OAuthError::LoginRequired(_) => "login_required",
            OAuthError::ConsentRequired(_) => "consent_required",
            OAuthError::InvalidRedirectUri(_) => "invalid_redirect_uri",
            OAuthError::InvalidClientMetadata(_) => "invalid_client_metadata",
            OAuthError::InvalidToken(_) => "invalid_token",
            OAuthError::InsufficientScope(_) => "insufficient_scope",
            OAuthError::TooManyRequests { .. } => "temporarily_unavailable",
            OAuthError::ReauthorizationRequired { .. } => "reauthorization_required",
            OAuthError::ProviderUnavailable { .. } => "temporarily_unavailable",
            OAuthError::ServerError => "server_error",
        }
    }

    /// The human-readable `error_description`, safe to show to the client.
    pub fn description(&self) -> &str {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::InvalidClient(d)
            | OAuthError::InvalidGrant(d)
            | OAuthError::UnauthorizedClient(d)
            | OAuthError::UnsupportedGrantType(d)
            | OAuthError::UnsupportedResponseType(d)
            | OAuthError::InvalidScope(d)
            | OAuthError::InvalidTarget(d)
            | OAuthError::AccessDenied(d)
            | OAuthError::LoginRequired(d)
            | OAuthError::ConsentRequired(d)
            | OAuthError::InvalidRedirectUri(d)
            | OAuthError::InvalidClientMetadata(d)
            | OAuthError::InvalidToken(d)
            | OAuthError::InsufficientScope(d) => d,
            OAuthError::TooManyRequests { description, .. }
            | OAuthError::ReauthorizationRequired { description, .. }
            | OAuthError::ProviderUnavailable { description, .. } => description,
            OAuthError::ServerError => "the server could not complete the request",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            OAuthError::InvalidClient(_) | OAuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            OAuthError::InsufficientScope(_) | OAuthError::AccessDenied(_) => StatusCode::FORBIDDEN,
            OAuthError::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            OAuthError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            OAuthError::ProviderUnavailable {
                timed_out: true, ..
            } => StatusCode::GATEWAY_TIMEOUT,
            OAuthError::ProviderUnavailable { .. } => StatusCode::BAD_GATEWAY,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code(), "error_description": self.description() });
        if let OAuthError::ReauthorizationRequired { connect_uri, .. } = &self {
            body["connect_uri"] = json!(connect_uri);
        }
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if matches!(self, OAuthError::InvalidClient(_)) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"token\""),
            );
        }
        if let OAuthError::TooManyRequests { retry_after, .. } = self {
            if let Ok(value) = HeaderValue::from_str(&retry_after.max(1).to_string()) {
                headers.insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// An internal failure. Its detail goes to the log, never to the client.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("signing: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
    #[error("key material: {0}")]
    Key(String),
    #[error("password hashing: {0}")]
    PasswordHash(String),
    #[error("seed {path}: {message}")]
    Seed { path: String, message: String },
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
    #[error("serialization: {0}")]
    Json(#[from] serde_json::Error),
    #[error("configuration: {0}")]
    Config(String),
    /// A sealed value (a user's TOTP secret) did not open.
    #[error("vault: {0}")]
    Vault(#[from] crate::vault::sealing::VaultError),
}

impl From<HubError> for OAuthError {
    fn from(err: HubError) -> Self {
        tracing::error!(error = %err, "internal error answered with server_error");
        OAuthError::ServerError
    }
}

impl From<sqlx::Error> for OAuthError {
    fn from(err: sqlx::Error) -> Self {
        HubError::from(err).into()
    }
}
