//! Password and client-secret hashing with argon2id (PHC strings).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::HubError;

/// Hashes a secret for storage.
pub fn hash_secret(secret: &str) -> Result<String, HubError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HubError::PasswordHash(e.to_string()))
}

/// Verifies a secret against a stored PHC hash, off the async runtime
/// because argon2 is deliberately slow.
pub async fn verify_secret(secret: &str, phc: &str) -> Result<bool, HubError> {
    let secret = secret.to_owned();
    let phc = phc.to_owned();
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&phc).map_err(|e| HubError::PasswordHash(e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| HubError::PasswordHash(e.to_string()))?
}

/// Whether the request carries `Authorization: Bearer <expected>`; never when
/// nothing is expected. Digests are compared so the comparison time does not
/// depend on the secret's bytes. Guards the control and admin APIs.
pub fn bearer_matches(headers: &axum::http::HeaderMap, expected: Option<&str>) -> bool {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (presented, expected) {
        (Some(p), Some(e)) => crate::random::sha256_b64url(p) == crate::random::sha256_b64url(e),
        _ => false,
    }
}

/// The user a login form's `username` and `password` name, if the password
/// is right; `None` for an unknown user or a wrong password alike.
pub async fn sign_in(
    hub: &crate::hub::Hub,
    params: &crate::params::Params,
) -> Result<Option<crate::model::User>, crate::error::OAuthError> {
    let username = params.get("username")?.unwrap_or_default();
    let password = params.get("password")?.unwrap_or_default();
    let Some(user) = hub.store.user_by_username(username).await? else {
        return Ok(None);
    };
    let verified = verify_secret(password, &user.password_hash).await?;
    Ok(verified.then_some(user))
}
