//! Sealing secrets at rest: AES-256-GCM under operator-supplied keys.
//!
//! Every sealed value carries the id of the key that sealed it, so keys can
//! rotate: the first configured key seals, every configured key opens. The
//! associated data binds a ciphertext to the row it belongs to (connection
//! and owner), so a sealed token copied onto another owner's row fails to
//! open instead of leaking across users or tenants.
//!
//! The hub refuses to start without a key, with a malformed key, or with a
//! key that cannot open the check value the database holds for its id: a
//! vault never silently falls back to plaintext.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;

/// The key id written on rows the `plaintext-vault` fault stores unsealed.
pub const PLAINTEXT_KEY_ID: &str = "plaintext";

/// What every key's check value seals; opening it proves the key is right.
const CHECK_VALUE: &[u8] = b"agentic-identity-hub vault key check v1";

/// Why the vault could not be configured or a value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The hub was started without any vault key.
    #[error(
        "no vault key configured: pass --vault-key <id>:<base64 of 32 bytes> (or HUB_VAULT_KEYS)"
    )]
    NoKey,
    /// A configured key is not `<id>:<base64 of 32 bytes>`.
    #[error("vault key {0}")]
    Malformed(String),
    /// A sealed value names a key id the hub was not given.
    #[error(
        "no vault key with id {0:?} is configured, but the database holds values sealed under it"
    )]
    UnknownKey(String),
    /// A value did not open: wrong key, tampering, or a row moved to another owner.
    #[error("a value sealed under vault key {0:?} does not open with the configured key (wrong key, or tampered data)")]
    Open(String),
}

/// One configured key.
struct VaultKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The configured vault keys; the first seals.
pub struct VaultKeys {
    keys: Vec<VaultKey>,
}

impl std::fmt::Debug for VaultKeys {
    /// Key ids only: key material never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.id))
            .finish()
    }
}

/// A sealed value, ready for storage.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    /// One string for a column that holds a sealed value beside others:
    /// `<key id>.<nonce>.<ciphertext>`, the last two base64url.
    pub fn to_text(&self) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        format!(
            "{}.{}.{}",
            self.key_id,
            URL_SAFE_NO_PAD.encode(&self.nonce),
            URL_SAFE_NO_PAD.encode(&self.ciphertext)
        )
    }

    /// The inverse of [`Sealed::to_text`]; `None` for anything else.
    pub fn from_text(text: &str) -> Option<Sealed> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let mut parts = text.rsplitn(3, '.');
        let ciphertext = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
        let nonce = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
        let key_id = parts.next()?.to_owned();
        Some(Sealed {
            key_id,
            nonce,
            ciphertext,
        })
    }
}

impl VaultKeys {
    /// Parses `<id>:<base64 of 32 bytes>` specs, in order of preference.
    pub fn parse(specs: &[String]) -> Result<VaultKeys, VaultError> {
        if specs.is_empty() {
            return Err(VaultError::NoKey);
        }
        let mut keys: Vec<VaultKey> = Vec::with_capacity(specs.len());
        for (position, spec) in specs.iter().enumerate() {
            let spec = spec.trim();
            let (id, material) = spec.split_once(':').ok_or_else(|| {
                VaultError::Malformed(format!(
                    "#{}: expected <id>:<base64 of 32 bytes>",
                    position + 1
                ))
            })?;
            if id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                || id == PLAINTEXT_KEY_ID
            {
                return Err(VaultError::Malformed(format!(
                    "#{}: the id must be 1-64 of A-Z a-z 0-9 - _ . (and not {PLAINTEXT_KEY_ID:?})",
                    position + 1
                )));
            }
            let bytes = STANDARD.decode(material.trim()).map_err(|_| {
                VaultError::Malformed(format!("{id:?}: the key material is not base64"))
            })?;
            if bytes.len() != 32 {
                return Err(VaultError::Malformed(format!(
                    "{id:?}: the key must be 32 bytes (AES-256), not {}",
                    bytes.len()
                )));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(VaultError::Malformed(format!("{id:?} is given twice")));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| VaultError::Malformed(format!("{id:?}: unusable key")))?;
            keys.push(VaultKey {
                id: id.to_owned(),
                cipher,
            });
        }
        Ok(VaultKeys { keys })
    }

    /// Reads key specs from a file: one per line, `#` comments allowed.
    pub fn from_file(path: &std::path::Path) -> Result<VaultKeys, VaultError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            VaultError::Malformed(format!("file {} cannot be read: {e}", path.display()))
        })?;
        let specs: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        VaultKeys::parse(&specs)
    }

    /// The id of the key that seals new values.
    pub fn active_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// Seals `plaintext` under the active key, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> Sealed {
        seal_with(&self.keys[0], plaintext, aad.as_bytes())
    }

    /// Opens a value sealed under any configured key, checking `aad`.
    pub fn open(&self, sealed: &Sealed, aad: &str) -> Result<Vec<u8>, VaultError> {
        if sealed.key_id == PLAINTEXT_KEY_ID {
            // Written only by the `plaintext-vault` fault.
            return Ok(sealed.ciphertext.clone());
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| VaultError::UnknownKey(sealed.key_id.clone()))?;
        let nonce: [u8; 12] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Open(sealed.key_id.clone()))?;
        key.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Open(sealed.key_id.clone()))
    }

    /// The check value for the key `key_id`, sealed under it.
    pub fn check_value(&self, key_id: &str) -> Option<Sealed> {
        let key = self.keys.iter().find(|k| k.id == key_id)?;
        Some(seal_with(key, CHECK_VALUE, b"vault-key-check"))
    }

    /// Whether `sealed` is a check value this configuration opens.
    pub fn verify_check_value(&self, sealed: &Sealed) -> Result<(), VaultError> {
        let opened = self.open(sealed, "vault-key-check")?;
        if opened == CHECK_VALUE {
            Ok(())
        } else {
            Err(VaultError::Open(sealed.key_id.clone()))
        }
    }
}

fn seal_with(key: &VaultKey, plaintext: &[u8], aad: &[u8]) -> Sealed {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext = key
        .cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // AES-GCM encryption fails only for inputs of ~64 GiB.
        .expect("AES-256-GCM seals any value of reasonable size");
    Sealed {
        key_id: key.id.clone(),
        nonce: nonce.to_vec(),
        ciphertext,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> String {
        format!("{id}:{}", STANDARD.encode([byte; 32]))
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_row_binding() {
        let keys = VaultKeys::parse(&[key("k1", 7)]).unwrap();
        let sealed = keys.seal(b"provider-access-token", "row:alice");
        assert!(!sealed.ciphertext.windows(8).any(|w| w == b"provider"));
        assert_eq!(
            keys.open(&sealed, "row:alice").unwrap(),
            b"provider-access-token"
        );
        assert!(matches!(
            keys.open(&sealed, "row:bob"),
            Err(VaultError::Open(_))
        ));
    }

    #[test]
    fn rotation_seals_with_the_first_key_and_opens_with_any() {
        let old = VaultKeys::parse(&[key("k1", 1)]).unwrap();
        let sealed_old = old.seal(b"x", "a");
        let rotated = VaultKeys::parse(&[key("k2", 2), key("k1", 1)]).unwrap();
        assert_eq!(rotated.open(&sealed_old, "a").unwrap(), b"x");
        assert_eq!(rotated.seal(b"y", "a").key_id, "k2");
    }

    #[test]
    fn missing_malformed_and_wrong_keys_are_refused() {
        assert!(matches!(VaultKeys::parse(&[]), Err(VaultError::NoKey)));
        for bad in ["nokey", "k1:not base64!", "k1:AAAA", ":AAAA"] {
            assert!(
                matches!(
                    VaultKeys::parse(&[bad.to_owned()]),
                    Err(VaultError::Malformed(_))
                ),
                "{bad}"
            );
        }
        let right = VaultKeys::parse(&[key("k1", 1)]).unwrap();
        let check = right.check_value("k1").unwrap();
        right.verify_check_value(&check).unwrap();
        let wrong = VaultKeys::parse(&[key("k1", 9)]).unwrap();
        assert!(matches!(
            wrong.verify_check_value(&check),
            Err(VaultError::Open(_))
        ));
        let other = VaultKeys::parse(&[key("k2", 1)]).unwrap();
        assert!(matches!(
            other.verify_check_value(&check),
            Err(VaultError::UnknownKey(_))
        ));
    }
}
