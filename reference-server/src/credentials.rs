//! Password and client-secret hashing, by what the secret is.
//!
//! * **Chosen secrets** (user passwords, a client secret an operator typed
//!   into a seed or the control API) may be guessable, so they are stored
//!   with argon2id (PHC strings), whose cost is the defence against an
//!   offline guess.
//! * **Generated secrets** (the 256 random bits the hub hands out as an
//!   agent's client secret) cannot be guessed, so a slow hash protects
//!   nothing and costs 35 ms and 19 MiB per token request. They are stored as
//!   a salted SHA-256 digest, `$sha256$<salt>$<digest>` (base64url), and
//!   compared in constant time. RFC 6819 §5.1.4.1.3 asks that client
//!   secrets be stored as hashes; NIST SP 800-63B §5.1.1.2 reserves
//!   memory-hard, salted key derivation for memorized secrets, and
//!   §5.1.2 / §5.1.3 (look-up and out-of-band secrets of at least 112
//!   bits) allow an approved one-way hash. See docs/secrets.md.
//!
//! The stored string says which it is, so both kinds verify side by side,
//! and a generated secret an earlier hub stored under argon2id is
//! re-stored as a digest the first time it verifies ([`needs_rehash`]).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
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

/// Argon2id costs 19 MiB and tens of milliseconds per check, by design. Run
/// on the async runtime's blocking pool, a flood of sign-ins would start one
/// thread per request, each allocator arena would keep its 19 MiB, and the
/// host would run out of memory (300 failed sign-ins took a hub from 18 MB
/// to 4.5 GB). So every check runs on a few dedicated threads, one per core
/// (at most 4), fed by a bounded queue: memory stays at about 19 MiB per
/// thread, and callers beyond the queue wait, asynchronously, for room.
mod pool {
    use std::sync::{Arc, Mutex, OnceLock};

    use tokio::sync::{mpsc, oneshot};

    type Job = Box<dyn FnOnce() + Send>;

    /// Jobs that may wait for a hashing thread before senders wait too.
    const QUEUE: usize = 64;

    fn jobs() -> &'static mpsc::Sender<Job> {
        static JOBS: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
        JOBS.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>(QUEUE);
            let rx = Arc::new(Mutex::new(rx));
            let threads = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 4);
            for i in 0..threads {
                let rx = rx.clone();
                let _ = std::thread::Builder::new()
                    .name(format!("argon2-{i}"))
                    .spawn(move || loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).blocking_recv();
                        match job {
                            Some(job) => job(),
                            None => break,
                        }
                    });
            }
            tx
        })
    }

    /// Runs `work` on a hashing thread and returns its result.
    pub async fn run<T: Send + 'static>(
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, &'static str> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        jobs()
            .send(job)
            .await
            .map_err(|_| "the hashing threads are gone")?;
        result.await.map_err(|_| "a hashing thread failed")
    }
}

/// Hashes a secret for storage on a hashing thread (see [`pool`]).
pub async fn hash_secret_bounded(secret: &str) -> Result<String, HubError> {
    let secret = secret.to_owned();
    pool::run(move || hash_secret(&secret))
        .await
        .map_err(|e| HubError::PasswordHash(e.into()))?
}

/// Verifies a secret against a stored PHC hash, on a hashing thread (see [`pool`]).
pub async fn verify_secret(secret: &str, phc: &str) -> Result<bool, HubError> {
    let secret = secret.to_owned();
    let phc = phc.to_owned();
    pool::run(move || verify_argon2(secret.as_bytes(), &phc))
        .await
        .map_err(|e| HubError::PasswordHash(e.into()))?
}

/// The most argon2 memory a hashing thread keeps between checks (64 MiB):
/// a stored hash that asks for more gets it for its own check only.
const KEPT_BLOCKS: usize = 64 * 1024;

thread_local! {
    /// This hashing thread's argon2 memory, kept between checks. Allocating
    /// 19 MiB afresh for every check cost more in page faults and the
    /// kernel's zeroing than a tenth of the check itself; the memory is
    /// bounded by the hashing threads anyway (see [`pool`]).
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `PasswordVerifier::verify_password`, with this thread's memory: the
/// stored hash's own algorithm, version and costs, and a constant-time
/// comparison of the output. As there, only an unreadable PHC string is an
/// error; a hash whose parameters argon2 refuses matches no secret.
fn verify_argon2(secret: &[u8], phc: &str) -> Result<bool, HubError> {
    let parsed = PasswordHash::new(phc).map_err(|e| HubError::PasswordHash(e.to_string()))?;
    Ok(argon2_matches(secret, &parsed).unwrap_or(false))
}

fn argon2_matches(secret: &[u8], parsed: &PasswordHash<'_>) -> Option<bool> {
    let expected = parsed.hash?;
    let algorithm = argon2::Algorithm::try_from(parsed.algorithm).ok()?;
    let version = match parsed.version {
        Some(v) => argon2::Version::try_from(v).ok()?,
        None => argon2::Version::default(),
    };
    let params = argon2::Params::try_from(parsed).ok()?;
    let blocks = params.block_count();
    let hasher = Argon2::new(algorithm, version, params);
    let mut salt_bytes = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt_bytes).ok()?;
    let mut output = vec![0u8; expected.len()];
    let hashed = if blocks <= KEPT_BLOCKS {
        BLOCKS.with(|kept| {
            let mut kept = kept.borrow_mut();
            if kept.len() < blocks {
                kept.resize(blocks, argon2::Block::default());
            }
            hasher.hash_password_into_with_memory(secret, salt, &mut output, &mut kept[..blocks])
        })
    } else {
        hasher.hash_password_into(secret, salt, &mut output)
    };
    hashed.ok()?;
    Some(subtle::ConstantTimeEq::ct_eq(output.as_slice(), expected.as_bytes()).into())
}

/// The prefix of a generated secret's stored digest.
const GENERATED_PREFIX: &str = "$sha256$";

/// Which kind of secret a stored string holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// Chosen by a person: argon2id.
    Chosen,
    /// Generated by the hub (256 random bits): a salted SHA-256 digest.
    Generated,
}

impl SecretKind {
    /// The kind a stored string is, by its format; `None` for neither.
    pub fn of_stored(stored: &str) -> Option<SecretKind> {
        if parse_digest(stored).is_some() {
            Some(SecretKind::Generated)
        } else if PasswordHash::new(stored).is_ok() {
            Some(SecretKind::Chosen)
        } else {
            None
        }
    }
}

/// Stores a secret the hub generated: `$sha256$<salt>$<SHA-256(salt ‖ secret)>`.
pub fn digest_generated_secret(secret: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use rand::RngCore;
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    format!(
        "{GENERATED_PREFIX}{}${}",
        URL_SAFE_NO_PAD.encode(salt),
        URL_SAFE_NO_PAD.encode(salted_digest(&salt, secret))
    )
}

fn salted_digest(salt: &[u8], secret: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

/// The salt and digest of a generated secret's stored string.
fn parse_digest(stored: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let (salt, digest) = stored.strip_prefix(GENERATED_PREFIX)?.split_once('$')?;
    let salt = URL_SAFE_NO_PAD.decode(salt).ok()?;
    let digest = URL_SAFE_NO_PAD.decode(digest).ok()?;
    (salt.len() >= 16 && digest.len() == 32).then_some((salt, digest))
}

/// Verifies a client secret against its stored form, whichever kind it is:
/// a digest in constant time on the caller's thread (a hash, microseconds),
/// an argon2id hash on a hashing thread (see [`pool`]).
pub async fn verify_client_secret(secret: &str, stored: &str) -> Result<bool, HubError> {
    match parse_digest(stored) {
        Some((salt, digest)) => {
            use subtle::ConstantTimeEq;
            Ok(salted_digest(&salt, secret).ct_eq(&digest[..]).into())
        }
        None => verify_secret(secret, stored).await,
    }
}

/// Whether a stored client secret that just verified against `presented`
/// should be re-stored as a digest: an argon2id hash of a secret shaped as
/// the hub generates them (43 base64url characters, 256 bits), which an
/// earlier hub stored before generated secrets got their own kind.
pub fn needs_rehash(presented: &str, stored: &str) -> bool {
    SecretKind::of_stored(stored) == Some(SecretKind::Chosen) && looks_generated(presented)
}

/// 43 base64url characters: the shape of [`crate::random::secret`].
fn looks_generated(secret: &str) -> bool {
    secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A digest nobody's secret matches: an unknown client is checked against
/// it, so an unknown client id costs what a known one with a generated
/// secret does. (Client ids are not secrets, RFC 6749 §2.2; a known client
/// with a chosen secret still costs an argon2id check.)
pub const DUMMY_DIGEST: &str =
    "$sha256$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// A valid argon2id hash of a random string nobody knows: a name that does
/// not exist is checked against it, so an answer takes as long whether or not
/// the user or client exists (no enumeration by timing).
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$zclI6qiSM9kxTfDrR0v2qA$u0QbcIOw7AxszGeoXbdw+Qx0DEWPjnpCZMRXJ2k5OvI";

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

/// What a password check came to.
pub enum PasswordCheck {
    Right,
    /// A wrong password, or an account that does not exist, alike.
    Wrong,
    /// Too many recent failures for this account or from this address: the
    /// password was not checked (see [`crate::lockout`]).
    Throttled {
        retry_after: i64,
    },
}

/// Checks `presented` against `stored` (`None`: no such account, checked
/// against a dummy hash all the same) for `account` from `source`, behind
/// the sign-in back-off, and counts the outcome. The one password check of
/// every sign-in form: the authorization pages, the connect form, the console.
pub async fn check_password(
    hub: &crate::hub::Hub,
    account: &str,
    presented: &str,
    stored: Option<&str>,
    source: std::net::IpAddr,
) -> Result<PasswordCheck, HubError> {
    let now = hub.clock.now();
    if !hub.faults.on(crate::fault::Fault::NoSignInThrottle) {
        if let crate::lockout::Gate::Closed { retry_after } =
            hub.signin_guard.gate(account, source, now)
        {
            return Ok(PasswordCheck::Throttled { retry_after });
        }
    }
    let verified =
        verify_secret(presented, stored.unwrap_or(DUMMY_HASH)).await? && stored.is_some();
    Ok(if verified {
        hub.signin_guard.succeeded(account);
        PasswordCheck::Right
    } else {
        hub.signin_guard.failed(account, source, now);
        PasswordCheck::Wrong
    })
}

/// What a login form's `username` and `password` came to.
pub enum SignIn {
    /// The password is right.
    User(Box<crate::model::User>),
    /// An unknown user or a wrong password, alike.
    Refused,
    /// Too many recent failures for this account or from this address: the
    /// password was not checked (see [`crate::lockout`]).
    Throttled { retry_after: i64 },
}

/// Checks a login form's `username` and `password` from `source`, counting
/// failures against the account and the address.
pub async fn sign_in(
    hub: &crate::hub::Hub,
    params: &crate::params::Params,
    source: std::net::IpAddr,
) -> Result<SignIn, crate::error::OAuthError> {
    let username = params.get("username")?.unwrap_or_default();
    let password = params.get("password")?.unwrap_or_default();
    let user = hub.store.user_by_username(username).await?;
    // An account with no password (made by single sign-on) is checked
    // against the dummy hash like an unknown one: the same time, no match.
    let stored = user
        .as_ref()
        .map(|u| u.password_hash.as_str())
        .filter(|h| SecretKind::of_stored(h) == Some(SecretKind::Chosen));
    Ok(
        match check_password(hub, username, password, stored, source).await? {
            PasswordCheck::Right => match user {
                Some(user) => SignIn::User(Box::new(user)),
                None => SignIn::Refused,
            },
            PasswordCheck::Wrong => SignIn::Refused,
            PasswordCheck::Throttled { retry_after } => SignIn::Throttled { retry_after },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread-memory verification agrees with argon2's own verifier, for
    /// the default costs and others, and keeps its memory between checks.
    #[test]
    fn argon2_with_kept_memory_agrees_with_the_verifier() {
        use argon2::password_hash::PasswordVerifier;
        let small = argon2::Params::new(64, 1, 1, Some(16)).unwrap();
        let custom = Argon2::new(argon2::Algorithm::Argon2i, argon2::Version::V0x10, small)
            .hash_password(b"chosen", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        let default = hash_secret("chosen").unwrap();
        for phc in [&custom, &default] {
            let parsed = PasswordHash::new(phc).unwrap();
            for secret in ["chosen", "chosen ", "", "x"] {
                let theirs = Argon2::default()
                    .verify_password(secret.as_bytes(), &parsed)
                    .is_ok();
                assert_eq!(
                    verify_argon2(secret.as_bytes(), phc).unwrap(),
                    theirs,
                    "{phc} {secret:?}"
                );
            }
        }
        let kept = BLOCKS.with(|b| b.borrow().len());
        assert_eq!(kept, argon2::Params::default().block_count());
        assert!(verify_argon2(b"chosen", "not a phc string").is_err());
    }

    #[tokio::test]
    async fn each_kind_verifies_its_own_secret_only() {
        let generated = crate::random::secret();
        let digest = digest_generated_secret(&generated);
        assert_eq!(SecretKind::of_stored(&digest), Some(SecretKind::Generated));
        assert!(verify_client_secret(&generated, &digest).await.unwrap());
        assert!(!verify_client_secret("wrong", &digest).await.unwrap());
        // Salted: the same secret stores differently each time.
        assert_ne!(digest, digest_generated_secret(&generated));
        assert_eq!(SecretKind::of_stored(DUMMY_HASH), Some(SecretKind::Chosen));
        assert_eq!(
            SecretKind::of_stored(DUMMY_DIGEST),
            Some(SecretKind::Generated)
        );
        assert_eq!(SecretKind::of_stored("plain text"), None);
        assert!(!verify_client_secret("anything", DUMMY_DIGEST)
            .await
            .unwrap());
    }

    #[test]
    fn only_a_generated_looking_secret_under_argon2id_is_rehashed() {
        let generated = crate::random::secret();
        assert!(needs_rehash(&generated, DUMMY_HASH));
        assert!(!needs_rehash("a person's secret", DUMMY_HASH));
        assert!(!needs_rehash(
            &generated,
            &digest_generated_secret(&generated)
        ));
    }
}
