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
