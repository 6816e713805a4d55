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
    pool::run(move || {
        let parsed = PasswordHash::new(&phc).map_err(|e| HubError::PasswordHash(e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| HubError::PasswordHash(e.into()))?
}

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
    let stored = user.as_ref().map(|u| u.password_hash.as_str());
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
