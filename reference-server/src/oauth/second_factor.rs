//! The second factor at the authorization pages (docs/mfa.md): a TOTP code
//! (RFC 6238) or a recovery code, after the right password, for users whose
//! tenant requires one.
//!
//! The password alone starts no session. The request is put on hold for the
//! browser that gave it (a cookie of its own, whose digest the request
//! keeps), and `/login/second-factor` asks that browser, and no other, for a
//! code. A user with no factor yet enrols there: the hub offers a fresh
//! secret, a first code confirms it, and the recovery codes are shown once.
//!
//! * A code is checked against the time steps just before, at and after the
//!   hub's clock (RFC 6238 §5.2 recommends at most one step of delay), and
//!   the step it matched is recorded atomically, so no code is accepted twice
//!   (RFC 6238 §5.2: "MUST NOT accept the second attempt").
//! * Wrong codes count against the user and the source address, behind the
//!   same back-off as passwords (a six-digit code falls to guessing without).
//! * Recovery codes carry 120 random bits each and are stored as salted
//!   SHA-256 digests (see [`crate::credentials`]); each works once.
//! * The shared secret is sealed with the vault key, bound to the user.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::audit::event::{AuditEvent, Outcome};
use crate::error::{HubError, OAuthError};
use crate::fault::Fault;
use crate::hub::Hub;
use crate::model::{Authentication, User};
use crate::pages::{error_page, render};
use crate::params::Params;
use crate::store::authorizations::{AuthorizationRequest, SigninSession};
use crate::store::second_factor::PendingSecondFactor;
use crate::vault::sealing::Sealed;
use crate::web_guard::read_cookie;

/// The cookie that ties a request waiting for a second factor to the
/// browser that gave the password.
pub const COOKIE: &str = "hub_second_factor";
/// RFC 6238 §5.2's recommended time step.
const STEP: i64 = 30;
const DIGITS: usize = 6;
/// How many recovery codes an enrolment hands out.
const RECOVERY_CODES: usize = 10;
/// How the authenticator app names the account's issuer.
const ISSUER_LABEL: &str = "Agentic Identity Hub";

/// Whether `user` must prove a second factor: a tenant of theirs requires
/// one of everyone, or of a role they hold.
pub async fn required_for(hub: &Hub, user: &User) -> Result<bool, HubError> {
    if hub.faults.on(Fault::SecondFactorNotRequired) {
        return Ok(false);
    }
    Ok(hub
        .store
        .second_factor_rules(&user.tenants)
        .await?
        .iter()
        .any(|rule| rule.applies_to(&user.roles)))
}

/// The TOTP of a shared secret, as every authenticator app computes it
/// (SHA-1, six digits, 30 s steps).
fn totp(secret: Vec<u8>) -> TOTP {
    TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 1, STEP as u64, secret)
}

/// The secret's base32 form, as typed into an authenticator app.
fn base32(secret: &[u8]) -> String {
    Secret::Raw(secret.to_vec()).to_encoded().to_string()
}

/// The `otpauth://` URI authenticator apps read (from a QR code or a link).
fn otpauth_uri(secret: &[u8], account: &str) -> String {
    let mut url = url::Url::parse("otpauth://totp/").expect("a valid base");
    url.set_path(&format!("{ISSUER_LABEL}:{account}"));
    url.query_pairs_mut()
        .append_pair("secret", &base32(secret))
        .append_pair("issuer", ISSUER_LABEL)
        .append_pair("algorithm", "SHA1")
        .append_pair("digits", &DIGITS.to_string())
        .append_pair("period", &STEP.to_string());
    url.to_string()
}

/// The associated data a user's sealed secret is bound to: a sealed secret
/// copied onto another user's row does not open.
fn aad(user_id: &str) -> String {
    format!("totp:{user_id}")
}

/// A fresh 160-bit shared secret (RFC 4226 §4 asks for 128 bits at least
/// and recommends 160).
fn new_secret() -> Vec<u8> {
    use rand::RngCore;
    let mut secret = vec![0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// Recovery codes: 24 base32 characters (120 bits) in groups of four.
fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            use rand::RngCore;
            let mut bytes = [0u8; 15];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let text = base32(&bytes);
            text.as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// What a person typed, in the form recovery codes are digested in.
fn normalize_recovery_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// A new factor for `user_id`: the secret stored sealed, with fresh
/// recovery codes replacing any earlier ones, and `accepted_step` recorded
/// as the last step a code was accepted for (the confirming code's, or -1).
/// The codes, to show once.
async fn enrol(
    hub: &Hub,
    user_id: &str,
    secret: &[u8],
    accepted_step: i64,
) -> Result<Vec<String>, HubError> {
    let codes = new_recovery_codes();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| crate::credentials::digest_generated_secret(&normalize_recovery_code(c)))
        .collect();
    let sealed = hub.vault.seal(secret, &aad(user_id));
    hub.store
        .enrol_totp(user_id, &sealed, &hashes, hub.clock.now(), accepted_step)
        .await?;
    Ok(codes)
}

/// What an administrator hands a user who enrols through them: the secret
/// (base32 and as an `otpauth://` URI) and the recovery codes.
pub struct Provisioned {
    pub secret: String,
    pub otpauth_uri: String,
    pub recovery_codes: Vec<String>,
}

/// Enrols a fresh factor for `user` on an administrator's behalf.
pub async fn provision(hub: &Hub, user: &User) -> Result<Provisioned, HubError> {
    let secret = new_secret();
    let recovery_codes = enrol(hub, &user.id, &secret, -1).await?;
    Ok(Provisioned {
        secret: base32(&secret),
        otpauth_uri: otpauth_uri(&secret, &user.username),
        recovery_codes,
    })
}

/// How a submitted code fared.
enum Verdict {
    /// Accepted, proving these RFC 8176 methods besides the password.
    Accepted {
        method: &'static str,
        note: String,
    },
    Wrong,
    /// Right once, and already used.
    Used(&'static str),
    Throttled {
        retry_after: i64,
    },
}

/// The time step, among those just before, at and after `now`, whose code
/// `code` is (compared in constant time); RFC 6238 §5.2 recommends at most
/// one step of delay.
fn matching_step(secret: Vec<u8>, code: &str, now: i64) -> Option<i64> {
    use subtle::ConstantTimeEq;
    let totp = totp(secret);
    let current = now.max(0) / STEP;
    (current - 1..=current + 1).find(|step| {
        let expected = totp.generate((step * STEP) as u64);
        bool::from(expected.as_bytes().ct_eq(code.as_bytes()))
    })
}

/// Checks a TOTP code: one of the steps around the hub's clock, and later
/// than the last accepted.
async fn check_totp(hub: &Hub, user_id: &str, code: &str) -> Result<Verdict, HubError> {
    let Some(factor) = hub.store.totp_factor(user_id).await? else {
        return Ok(Verdict::Wrong);
    };
    let secret = hub.vault.open(&factor.secret, &aad(user_id))?;
    let now = hub.clock.now().max(0);
    let well_formed = code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit());
    let matched = match matching_step(secret, code, now) {
        Some(step) => Some(step),
        None if well_formed && hub.faults.on(Fault::TotpAnyCodeAccepted) => Some(now / STEP),
        None => None,
    };
    let Some(step) = matched else {
        return Ok(Verdict::Wrong);
    };
    if !hub.store.accept_totp_step(user_id, step).await?
        && !hub.faults.on(Fault::TotpReplayAccepted)
    {
        return Ok(Verdict::Used(
            "this code was already used: a TOTP code works once (RFC 6238 §5.2)",
        ));
    }
    Ok(Verdict::Accepted {
        method: "otp",
        note: "a TOTP code".to_owned(),
    })
}

/// Checks a recovery code against the user's unused ones, and uses it.
async fn check_recovery_code(hub: &Hub, user_id: &str, typed: &str) -> Result<Verdict, HubError> {
    let typed = normalize_recovery_code(typed);
    if typed.is_empty() || typed.len() > 64 {
        return Ok(Verdict::Wrong);
    }
    let reusable = hub.faults.on(Fault::RecoveryCodeReusable);
    for (hash, used) in hub.store.recovery_codes(user_id).await? {
        if !crate::credentials::verify_client_secret(&typed, &hash).await? {
            continue;
        }
        let now = hub.clock.now();
        let won = !used && hub.store.use_recovery_code(user_id, &hash, now).await?;
        if !won && !reusable {
            return Ok(Verdict::Used("this recovery code was already used"));
        }
        let left = hub.store.recovery_codes_left(user_id).await?;
        return Ok(Verdict::Accepted {
            // A look-up secret: RFC 8176 has no method of its own for it;
            // it is the second factor the user holds.
            method: "mfa",
            note: format!("a recovery code; {left} left"),
        });
    }
    Ok(Verdict::Wrong)
}

/// Whether a live sign-in session still does for its user: one proven by
/// the password alone does not, once the user owes a second factor (their
/// tenant's rule or their roles changed since).
pub async fn session_suffices(hub: &Hub, session: &SigninSession) -> Result<bool, HubError> {
    if session.authentication.is_multi_factor() {
        return Ok(true);
    }
    Ok(match hub.store.user_by_id(&session.user_id).await? {
        Some(user) => !required_for(hub, &user).await?,
        None => true,
    })
}

/// After the right password of a user who owes a second factor: the request
/// waits for it, from this browser only, and the browser goes to ask.
pub async fn challenge(
    hub: &Hub,
    request: &AuthorizationRequest,
    user: &User,
) -> Result<Response, HubError> {
    let binding = crate::random::secret();
    let offered_secret = if hub.store.totp_factor(&user.id).await?.is_none() {
        // Enrolment: the secret is offered now and kept sealed on the
        // request until a first code confirms the user holds it.
        Some(hub.vault.seal(&new_secret(), &aad(&user.id)).to_text())
    } else {
        None
    };
    hub.store
        .set_pending_second_factor(
            &request.id,
            &PendingSecondFactor {
                user_id: user.id.clone(),
                binding: crate::random::sha256_b64url(&binding),
                offered_secret,
            },
        )
        .await?;
    let mut response = Redirect::to(&format!(
        "{}?request={}",
        hub.endpoint("/login/second-factor"),
        request.id
    ))
    .into_response();
    let set_cookie = crate::oauth::signin::flow_cookie(
        hub,
        COOKIE,
        Some(&binding),
        i64::from(hub.config.request_ttl),
    );
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie);
    Ok(response)
}

/// The request and its pending second factor, for the browser that gave
/// the password and no other.
async fn pending_for_browser(
    hub: &Hub,
    headers: &HeaderMap,
    params: &Params,
) -> Result<(AuthorizationRequest, PendingSecondFactor, User), OAuthError> {
    let id = params.require("request")?;
    let refused = || {
        OAuthError::AccessDenied(
            "this sign-in is not waiting for a second factor from this browser; start again from the application".into(),
        )
    };
    let request = hub
        .store
        .authorization_request(id)
        .await?
        .filter(|r| !r.completed && r.expires_at > hub.clock.now())
        .ok_or_else(refused)?;
    let pending = hub
        .store
        .pending_second_factor(&request.id)
        .await?
        .ok_or_else(refused)?;
    let presented = read_cookie(headers, COOKIE).map(crate::random::sha256_b64url);
    if presented.as_deref() != Some(pending.binding.as_str()) {
        return Err(refused());
    }
    let user = hub
        .store
        .user_by_id(&pending.user_id)
        .await?
        .ok_or_else(refused)?;
    Ok((request, pending, user))
}

/// During enrolment, the secret offered to `user` (opened from the request).
fn offered_secret(
    hub: &Hub,
    pending: &PendingSecondFactor,
    user: &User,
) -> Result<Option<Vec<u8>>, HubError> {
    let Some(sealed) = &pending.offered_secret else {
        return Ok(None);
    };
    let sealed = Sealed::from_text(sealed)
        .ok_or_else(|| HubError::Key("a pending TOTP secret is unreadable".into()))?;
    Ok(Some(hub.vault.open(&sealed, &aad(&user.id))?))
}

/// The page: a code field, or during enrolment the secret to add to an
/// authenticator app first.
fn page(
    hub: &Hub,
    request: &AuthorizationRequest,
    pending: &PendingSecondFactor,
    user: &User,
    error: Option<(StatusCode, &str)>,
) -> Result<Response, OAuthError> {
    let enrolment = offered_secret(hub, pending, user)?
        .map(|secret| (base32(&secret), otpauth_uri(&secret, &user.username)));
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    Ok(render(
        &hub.pages,
        status,
        "second_factor.html",
        context! {
            action => hub.endpoint("/login/second-factor"),
            request_id => request.id,
            user_name => user.name,
            enrol_secret => enrolment.as_ref().map(|(s, _)| s),
            enrol_uri => enrolment.as_ref().map(|(_, u)| u),
            error => error,
        },
    )?)
}

/// `GET /login/second-factor?request=…`.
pub async fn form(State(hub): State<Arc<Hub>>, headers: HeaderMap, uri: Uri) -> Response {
    let result = async {
        let params = Params::from_query(uri.query())?;
        let (request, pending, user) = pending_for_browser(&hub, &headers, &params).await?;
        page(&hub, &request, &pending, &user, None)
    }
    .await;
    result.unwrap_or_else(|err| error_page(&hub.pages, &err))
}

/// `POST /login/second-factor`: a TOTP code (`code`) or a recovery code
/// (`recovery_code`). Accepted: the session starts, proven by two factors,
/// and the request moves on to consent (after the recovery codes, when the
/// code just confirmed an enrolment).
pub async fn submit(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        crate::web_guard::same_origin(&hub, &headers)
            .map_err(|why| OAuthError::AccessDenied(why.into()))?;
        let params = Params::parse(&body)?;
        let (request, pending, user) = pending_for_browser(&hub, &headers, &params).await?;
        let source = hub.source_address(peer.ip(), &headers);
        let event = |kind: &str, outcome: Outcome| {
            AuditEvent::new(kind, outcome)
                .actor("user", user.id.clone())
                .user(user.id.clone())
                .tenant(user.primary_tenant().map(str::to_owned))
                .client(request.client_id.clone())
                .resource(request.resource.clone())
                .correlation(request.correlation_id.clone())
                .source_ip(source.to_string())
        };
        let now = hub.clock.now();
        let verdict = if let crate::lockout::Gate::Closed { retry_after } =
            hub.second_factor_guard.gate(&user.id, source, now)
        {
            Verdict::Throttled { retry_after }
        } else if let Some(secret) = offered_secret(&hub, &pending, &user)? {
            // Enrolment: the code must come from the secret just offered.
            let code = params.get("code")?.unwrap_or_default().trim();
            match matching_step(secret.clone(), code, now) {
                Some(step) => {
                    let codes = enrol(&hub, &user.id, &secret, step).await?;
                    hub.audit(
                        event("user.second_factor.enrolled", Outcome::Success)
                            .reason("a TOTP authenticator, confirmed by its first code; recovery codes issued"),
                    )
                    .await?;
                    return finish(&hub, &request, &user, "otp", Some(codes)).await;
                }
                None => Verdict::Wrong,
            }
        } else if let Some(code) = params.get("recovery_code")?.filter(|c| !c.trim().is_empty()) {
            check_recovery_code(&hub, &user.id, code).await?
        } else {
            let code = params.get("code")?.unwrap_or_default().trim();
            check_totp(&hub, &user.id, code).await?
        };
        let (reason, status, message) = match verdict {
            Verdict::Accepted { method, note } => {
                hub.second_factor_guard.succeeded(&user.id);
                hub.audit(event("user.second_factor.verified", Outcome::Success).reason(note))
                    .await?;
                return finish(&hub, &request, &user, method, None).await;
            }
            Verdict::Wrong => {
                hub.second_factor_guard.failed(&user.id, source, now);
                (
                    "wrong code".to_owned(),
                    StatusCode::UNAUTHORIZED,
                    "That code is not right. Try the current one.".to_owned(),
                )
            }
            Verdict::Used(why) => {
                hub.second_factor_guard.failed(&user.id, source, now);
                (
                    why.to_owned(),
                    StatusCode::UNAUTHORIZED,
                    "That code was already used. Wait for the next one.".to_owned(),
                )
            }
            Verdict::Throttled { retry_after } => (
                format!("too many wrong codes: not checked, retry in {retry_after} s"),
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many wrong codes. Try again in {retry_after} seconds."),
            ),
        };
        hub.audit(event("user.second_factor.refused", Outcome::Failure).reason(reason))
            .await?;
        page(&hub, &request, &pending, &user, Some((status, &message)))
    }
    .await;
    result.unwrap_or_else(|err| error_page(&hub.pages, &err))
}

/// Both factors proven: the session starts (`pwd` plus the second factor's
/// method, `mfa`), the request is the user's, and the browser goes on to
/// consent, by way of the recovery codes when an enrolment just finished.
async fn finish(
    hub: &Hub,
    request: &AuthorizationRequest,
    user: &User,
    method: &str,
    recovery_codes: Option<Vec<String>>,
) -> Result<Response, OAuthError> {
    let mut amr = vec!["pwd".to_owned(), method.to_owned()];
    if method != "mfa" {
        amr.push("mfa".to_owned());
    }
    let how = Authentication::new(hub.clock.now(), amr);
    hub.store.clear_pending_second_factor(&request.id).await?;
    let codes_page = match recovery_codes {
        Some(codes) => Some(render(
            &hub.pages,
            StatusCode::OK,
            "recovery_codes.html",
            context! { codes => codes, next => crate::oauth::signin::consent_url(hub, request) },
        )?),
        None => None,
    };
    let mut response =
        crate::oauth::signin::signed_in(hub, request, &user.id, &how, codes_page).await?;
    response.headers_mut().append(
        header::SET_COOKIE,
        crate::oauth::signin::flow_cookie(hub, COOKIE, None, 0),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 vectors (its 20-byte ASCII secret),
    /// truncated to six digits, as authenticator apps show them.
    #[test]
    fn codes_match_rfc_6238_test_vectors() {
        let totp = totp(b"12345678901234567890".to_vec());
        for (time, eight_digits) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(totp.generate(time), eight_digits[2..], "T = {time}");
        }
    }

    #[test]
    fn recovery_codes_are_long_distinct_and_typed_loosely() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
        for code in &codes {
            assert_eq!(normalize_recovery_code(code).len(), 24, "{code}");
        }
        assert_eq!(normalize_recovery_code(" abcd-efgh ijkl "), "ABCDEFGHIJKL");
    }

    #[test]
    fn otpauth_uri_names_issuer_account_and_parameters() {
        let uri = otpauth_uri(b"12345678901234567890", "alice");
        let url = url::Url::parse(&uri).unwrap();
        assert_eq!(url.scheme(), "otpauth");
        assert_eq!(url.host_str(), Some("totp"));
        let query: std::collections::HashMap<_, _> = url.query_pairs().collect();
        assert_eq!(query["secret"], "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(query["issuer"], ISSUER_LABEL);
        assert_eq!(query["period"], "30");
        assert!(url.path().ends_with(":alice"), "{uri}");
    }
}
