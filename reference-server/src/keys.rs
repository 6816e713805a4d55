//! The hub's token signing keys: ES256, persisted so tokens survive a restart,
//! published as a JWKS with a `kid` on every key.

use std::collections::HashMap;

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::Algorithm;
use p256::pkcs8::{EncodePrivateKey, LineEnding};

use crate::error::HubError;
use crate::store::Store;

/// The key that signs new tokens, and every key still published for verification.
pub struct SigningKeys {
    signing_kid: String,
    /// Parsed once (`jsonwebtoken::encode` parses its key, and derives the
    /// public key, on every call), and signing with ring's P-256.
    signing_key: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
    /// Each published key's public point (SEC1, uncompressed), for ring.
    verifying: HashMap<String, Vec<u8>>,
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
            // Each stored PEM is parsed once: the JWK, ring's public point
            // and (for the newest key) ring's signing key all come from it.
            use p256::pkcs8::DecodePrivateKey;
            let secret = p256::SecretKey::from_pkcs8_pem(&row.private_pem)
                .map_err(|e| HubError::Key(format!("signing key {}: {e}", row.kid)))?;
            let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &secret.public_key(),
                false,
            );
            keys.push(public_jwk(&row.kid, &point)?);
            verifying.insert(row.kid.clone(), point.as_bytes().to_vec());
            // Rows come newest first: the newest active key signs.
            if signing.is_none() {
                let der = secret
                    .to_pkcs8_der()
                    .map_err(|e| HubError::Key(e.to_string()))?;
                let key = ring::signature::EcdsaKeyPair::from_pkcs8(
                    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der.as_bytes(),
                    &ring::rand::SystemRandom::new(),
                )
                .map_err(|e| HubError::Key(format!("signing key {}: {e}", row.kid)))?;
                signing = Some((row.kid.clone(), key));
            }
        }
        let (signing_kid, signing_key) =
            signing.ok_or_else(|| HubError::Key("no signing key".into()))?;
        Ok(SigningKeys {
            signing_kid,
            signing_key,
            rng: ring::rand::SystemRandom::new(),
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

    /// The `kid` of the key that signs new tokens.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// A compact JWS (RFC 7515 §7.1) of `claims` under `header` (whose `alg`
    /// must be ES256), signed with the current key: the signature is the
    /// fixed-size `r ‖ s` RFC 7518 §3.4 asks for.
    pub fn sign<T: serde::Serialize>(
        &self,
        header: &jsonwebtoken::Header,
        claims: &T,
    ) -> Result<String, HubError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        if header.alg != Algorithm::ES256 {
            return Err(HubError::Key(format!(
                "the hub signs ES256, not {:?}",
                header.alg
            )));
        }
        let mut jws = URL_SAFE_NO_PAD.encode(json(header)?);
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(json(claims)?));
        let signature = self
            .signing_key
            .sign(&self.rng, jws.as_bytes())
            .map_err(|e| HubError::Key(format!("signing: {e}")))?;
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        Ok(jws)
    }

    /// Whether `jws` (compact) carries a valid ES256 signature by the
    /// published key `kid`, checked with ring's P-256 (the pure-Rust
    /// verification took most of an introspection's CPU). The claims are
    /// for the caller to read and check, after this says yes.
    pub fn signature_holds(&self, kid: &str, jws: &str) -> bool {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let Some(point) = self.verifying.get(kid) else {
            return false;
        };
        let Some((signed, signature)) = jws.rsplit_once('.') else {
            return false;
        };
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(signed.as_bytes(), &signature)
            .is_ok()
    }

    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, HubError> {
    serde_json::to_vec(value).map_err(|e| HubError::Key(e.to_string()))
}

/// The published form of a P-256 public key (RFC 7518 §6.2.1), with its
/// `kid` and `use`.
fn public_jwk(kid: &str, point: &p256::EncodedPoint) -> Result<Jwk, HubError> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::jwk::{
        AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
        EllipticCurveKeyType, KeyAlgorithm,
    };
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(HubError::Key(format!("signing key {kid}: no public point")));
    };
    Ok(Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::ES256),
            key_id: Some(kid.to_owned()),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
            key_type: EllipticCurveKeyType::EC,
            curve: EllipticCurve::P256,
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Database, Store};

    #[tokio::test]
    async fn what_the_key_signs_holds_and_nothing_else_does() {
        let store = Store::open(&Database::Memory).await.unwrap();
        let keys = SigningKeys::load_or_create(&store, 0).await.unwrap();
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = Some(keys.signing_kid().to_owned());
        let jws = keys
            .sign(&header, &serde_json::json!({"sub": "a"}))
            .unwrap();
        assert!(keys.signature_holds(keys.signing_kid(), &jws));
        // Another payload under the same signature, another kid, no signature.
        let (_, rest) = jws.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let other = keys
            .sign(&header, &serde_json::json!({"sub": "b"}))
            .unwrap();
        let (other_signed, _) = other.rsplit_once('.').unwrap();
        assert!(!keys.signature_holds(keys.signing_kid(), &format!("{other_signed}.{signature}")));
        assert!(!keys.signature_holds("es256_unknown", &jws));
        assert!(!keys.signature_holds(keys.signing_kid(), "no-dots"));
        // What jsonwebtoken would accept for the published JWK, too.
        let jwk = &keys.jwks().keys[0];
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        assert!(jsonwebtoken::decode::<serde_json::Value>(&jws, &key, &validation).is_ok());
    }
}
