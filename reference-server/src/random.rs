//! Unguessable identifiers and secrets from the OS CSPRNG.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// 256 random bits, base64url: for codes, request handles and secrets.
pub fn secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A prefixed identifier with 128 random bits, e.g. `evt_…`.
pub fn id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A prefixed identifier that sorts by creation time, e.g. `evt_0192f3a4b5c6_…`:
/// the wall clock's milliseconds in 12 hex digits, then 80 random bits. For
/// the audit trail's event and correlation ids, which are indexed but not
/// secret: consecutive events land side by side in each index, so a commit
/// dirties a few index pages instead of one page per event (the write that
/// bounded the token endpoint's tail latency under load).
pub fn ordered_id(prefix: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        & 0xffff_ffff_ffff;
    let mut bytes = [0u8; 10];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}_{millis:012x}_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// base64url(SHA-256(input)): the PKCE S256 transform (RFC 7636 §4.2) and how codes are stored.
pub fn sha256_b64url(input: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes()))
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    fn now_millis() -> u128 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    }

    /// `evt_<milliseconds, 12 hex digits>_<80 random bits>`: the time part
    /// is the clock when it was made, so ids made later sort after.
    #[test]
    fn ordered_id_is_time_then_random() {
        let before = now_millis();
        let (first, second) = (super::ordered_id("evt"), super::ordered_id("evt"));
        let after = now_millis();
        assert_ne!(first, second);
        for id in [&first, &second] {
            // The random part may itself hold a `_` (base64url).
            let parts: Vec<&str> = id.splitn(3, '_').collect();
            assert_eq!(parts.len(), 3, "{id}");
            assert_eq!(parts[0], "evt");
            assert_eq!(parts[1].len(), 12, "{id}");
            let millis = u128::from_str_radix(parts[1], 16).expect("hex time");
            assert!(
                (before..=after).contains(&millis),
                "{id}: {before}..={after}"
            );
            // 10 random bytes in base64url without padding.
            assert_eq!(parts[2].len(), 14, "{id}");
        }
        assert!(first[..16] <= second[..16]);
    }
}
