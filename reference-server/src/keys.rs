//! The hub's token signing keys: ES256, persisted so tokens survive a restart,
//! published as a JWKS with a `kid` on every key.

use std::collections::HashMap;

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use p256::pkcs8::{EncodePrivateKey, LineEnding};

use crate::error::HubError;
use crate::store::Store;

/// The key that signs new tokens, and every key still published for verification.
pub struct SigningKeys {
    signing_kid: String,
    signing_key: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    jwks: JwkSet,
}

impl SigningKeys {
    /// Loads the persisted keys, generating and storing the first one on a fresh database.
    pub async fn load_or_create(store: &Store, now: i64) -> Result<SigningKeys, HubError> {
        let mut rows = store.active_signing_keys().await?;
        if rows.is_empty() {
            SigningKeys::generate(store, now).await?;
            rows = store.active_signing_keys().await?;
        }
        let mut verifying = HashMap::new();
        let mut keys = Vec::new();
        let mut signing = None;
        for row in &rows {
            let encoding = EncodingKey::from_ec_pem(row.private_pem.as_bytes())?;
            let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256)?;
            jwk.common.key_id = Some(row.kid.clone());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            verifying.insert(row.kid.clone(), DecodingKey::from_jwk(&jwk)?);
            keys.push(jwk);
            // Rows come newest first: the newest active key signs.
            if signing.is_none() {
                signing = Some((row.kid.clone(), encoding));
            }
        }
        let (signing_kid, signing_key) =
            signing.ok_or_else(|| HubError::Key("no signing key".into()))?;
        Ok(SigningKeys {
            signing_kid,
            signing_key,
            verifying,
            jwks: JwkSet { keys },
        })
    }

    /// Creates and stores a new ES256 key; the next load makes it the signer.
    pub async fn generate(store: &Store, now: i64) -> Result<String, HubError> {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| HubError::Key(e.to_string()))?;
        let kid = crate::random::id("es256");
        store.insert_signing_key(&kid, pem.as_str(), now).await?;
        Ok(kid)
    }

    pub fn signing(&self) -> (&str, &EncodingKey) {
        (&self.signing_kid, &self.signing_key)
    }

    pub fn verifying(&self, kid: &str) -> Option<&DecodingKey> {
        self.verifying.get(kid)
    }

    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }
}
