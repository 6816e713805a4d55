//! Authorization requests, codes and consents: the steps of a user-delegated
//! flow, and what the user agreed to.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{from_json, optional_json, to_json, Store};
use crate::error::HubError;
use crate::model::{Authentication, Consent};

/// A pending authorization request, between `/authorize` and the redirect back.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub resource: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub correlation_id: String,
    pub user_id: Option<String>,
    /// The digest of the sign-in session that signed in for this request:
    /// only that browser may see its consent page and decide it.
    pub session_hash: Option<String>,
    /// How that user signed in (none when the control API decided it).
    pub authentication: Option<Authentication>,
    pub expires_at: i64,
    pub completed: bool,
}

/// An issued authorization code, as stored (the code itself only as a digest).
/// A live sign-in session: whose, and when they signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigninSession {
    pub user_id: String,
    /// When and how the user proved who they are.
    pub authentication: Authentication,
}

/// A live sign-in session as the console lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveSession {
    pub id_hash: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub amr: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub resource: String,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub user_id: String,
    pub tenant: Option<String>,
    pub correlation_id: String,
    pub expires_at: i64,
    /// How the user signed in for the authorization this code completes.
    pub authentication: Option<Authentication>,
}

impl Store {
    pub async fn insert_authorization_request(
        &self,
        request: &AuthorizationRequest,
        now: i64,
    ) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO authorization_requests (id, client_id, redirect_uri, resource, scopes, state,
               code_challenge, correlation_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&request.id)
        .bind(&request.client_id)
        .bind(&request.redirect_uri)
        .bind(&request.resource)
        .bind(to_json(&request.scopes))
        .bind(&request.state)
        .bind(&request.code_challenge)
        .bind(&request.correlation_id)
        .bind(now)
        .bind(request.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn authorization_request(
        &self,
        id: &str,
    ) -> Result<Option<AuthorizationRequest>, HubError> {
        let Some(row) = sqlx::query("SELECT * FROM authorization_requests WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(AuthorizationRequest {
            id: row.try_get("id")?,
            client_id: row.try_get("client_id")?,
            redirect_uri: row.try_get("redirect_uri")?,
            resource: row.try_get("resource")?,
            scopes: from_json(&row, "scopes")?,
            state: row.try_get("state")?,
            code_challenge: row.try_get("code_challenge")?,
            correlation_id: row.try_get("correlation_id")?,
            user_id: row.try_get("user_id")?,
            session_hash: row.try_get("session_hash")?,
            authentication: optional_json(&row, "authentication")?,
            expires_at: row.try_get("expires_at")?,
            completed: row.try_get::<i64, _>("completed")? != 0,
        }))
    }

    /// Records who signed in for a pending request, with which sign-in
    /// session and how (neither when the control API decided it).
    pub async fn set_request_user(
        &self,
        id: &str,
        user_id: &str,
        session: Option<(&str, &Authentication)>,
    ) -> Result<(), HubError> {
        sqlx::query(
            "UPDATE authorization_requests SET user_id = ?, session_hash = ?, authentication = ? WHERE id = ? AND completed = 0",
        )
        .bind(user_id)
        .bind(session.map(|(hash, _)| hash))
        .bind(session.map(|(_, how)| to_json(how)))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Starts a sign-in session, known by the digest of its cookie value.
    pub async fn insert_signin_session(
        &self,
        id_hash: &str,
        user_id: &str,
        authentication: &Authentication,
        expires_at: i64,
    ) -> Result<(), HubError> {
        let now = authentication.auth_time;
        sqlx::query("DELETE FROM signin_sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO signin_sessions (id_hash, user_id, created_at, expires_at, last_seen_at, authentication) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(now)
        .bind(expires_at)
        .bind(now)
        .bind(to_json(authentication))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A live sign-in session, by the digest of its cookie value: within its
    /// lifetime and used within `idle` seconds. Using it counts as activity.
    pub async fn live_signin_session(
        &self,
        id_hash: &str,
        now: i64,
        idle: i64,
    ) -> Result<Option<SigninSession>, HubError> {
        let row: Option<(String, i64, Option<String>)> = sqlx::query_as(
            "UPDATE signin_sessions SET last_seen_at = ?1 \
             WHERE id_hash = ?2 AND expires_at > ?1 AND last_seen_at > ?1 - ?3 \
             RETURNING user_id, created_at, authentication",
        )
        .bind(now)
        .bind(id_hash)
        .bind(idle)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(user_id, auth_time, how)| SigninSession {
            user_id,
            // A session from before authentication was recorded: a password.
            authentication: how
                .and_then(|h| serde_json::from_str(&h).ok())
                .unwrap_or_else(|| Authentication::new(auth_time, vec!["pwd".to_owned()])),
        }))
    }

    /// A user's live sign-in sessions (within their lifetime and idle
    /// timeout), newest first, for the console: each by its digest, with
    /// when it started, was last used and ends, and how the user signed in.
    pub async fn live_signin_sessions_of(
        &self,
        user_id: &str,
        now: i64,
        idle: i64,
    ) -> Result<Vec<LiveSession>, HubError> {
        let rows: Vec<(String, i64, i64, i64, Option<String>)> = sqlx::query_as(
            "SELECT id_hash, created_at, last_seen_at, expires_at, authentication FROM signin_sessions
             WHERE user_id = ?1 AND expires_at > ?2 AND last_seen_at > ?2 - ?3 ORDER BY created_at DESC",
        )
        .bind(user_id)
        .bind(now)
        .bind(idle)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id_hash, created_at, last_seen_at, expires_at, how)| LiveSession {
                    id_hash,
                    created_at,
                    last_seen_at,
                    expires_at,
                    amr: how
                        .and_then(|h| serde_json::from_str::<Authentication>(&h).ok())
                        .map(|a| a.amr)
                        .unwrap_or_else(|| vec!["pwd".to_owned()]),
                },
            )
            .collect())
    }

    /// Ends one of `user_id`'s sessions (an administrator's); whether it was theirs and live.
    pub async fn end_user_signin_session(
        &self,
        user_id: &str,
        id_hash: &str,
    ) -> Result<bool, HubError> {
        let done = sqlx::query("DELETE FROM signin_sessions WHERE id_hash = ? AND user_id = ?")
            .bind(id_hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a sign-in session; its user, if it was one.
    pub async fn end_signin_session(&self, id_hash: &str) -> Result<Option<String>, HubError> {
        Ok(
            sqlx::query_scalar("DELETE FROM signin_sessions WHERE id_hash = ? RETURNING user_id")
                .bind(id_hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Marks a request decided; false when it already was (a double submit).
    pub async fn complete_request(&self, id: &str) -> Result<bool, HubError> {
        let done = sqlx::query(
            "UPDATE authorization_requests SET completed = 1 WHERE id = ? AND completed = 0",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO authorization_codes (code_hash, client_id, redirect_uri, resource, scopes,
               code_challenge, user_id, tenant, correlation_id, expires_at, authentication)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&code.code_hash)
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(&code.resource)
        .bind(to_json(&code.scopes))
        .bind(&code.code_challenge)
        .bind(&code.user_id)
        .bind(&code.tenant)
        .bind(&code.correlation_id)
        .bind(code.expires_at)
        .bind(code.authentication.as_ref().map(to_json))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Looks a code up by digest and reports whether it had already been redeemed.
    /// Marking it redeemed is atomic, so two concurrent redemptions cannot both win.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<(AuthorizationCode, bool)>, HubError> {
        let Some(row) = sqlx::query("SELECT * FROM authorization_codes WHERE code_hash = ?")
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let first_use = sqlx::query(
            "UPDATE authorization_codes SET redeemed_at = ? WHERE code_hash = ? AND redeemed_at IS NULL",
        )
        .bind(now)
        .bind(code_hash)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        let code = AuthorizationCode {
            code_hash: row.try_get("code_hash")?,
            client_id: row.try_get("client_id")?,
            redirect_uri: row.try_get("redirect_uri")?,
            resource: row.try_get("resource")?,
            scopes: from_json(&row, "scopes")?,
            code_challenge: row.try_get("code_challenge")?,
            user_id: row.try_get("user_id")?,
            tenant: row.try_get("tenant")?,
            correlation_id: row.try_get("correlation_id")?,
            expires_at: row.try_get("expires_at")?,
            authentication: optional_json(&row, "authentication")?,
        };
        Ok(Some((code, !first_use)))
    }

    /// Stores the scopes a user has consented to for this client and resource,
    /// replacing any earlier record.
    pub async fn record_consent(&self, consent: &Consent) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, resource, scopes, granted_at, expires_at, revoked_at)
             VALUES (?, ?, ?, ?, ?, ?, NULL)
             ON CONFLICT(user_id, client_id, resource) DO UPDATE SET scopes = excluded.scopes,
               granted_at = excluded.granted_at, expires_at = excluded.expires_at, revoked_at = NULL",
        )
        .bind(&consent.user_id)
        .bind(&consent.client_id)
        .bind(&consent.resource)
        .bind(to_json(&consent.scopes))
        .bind(consent.granted_at)
        .bind(consent.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The consent in force at `now`: neither expired nor revoked.
    pub async fn live_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        now: i64,
    ) -> Result<Option<Consent>, HubError> {
        let row = sqlx::query(
            "SELECT * FROM consents WHERE user_id = ? AND client_id = ? AND resource = ?
               AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(resource)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| consent_from_row(&r)).transpose()
    }

    /// Every consent record, newest first, optionally for one user or client.
    pub async fn consents(
        &self,
        user_id: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<Vec<Consent>, HubError> {
        let rows = sqlx::query(
            "SELECT * FROM consents WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR client_id = ?2)
             ORDER BY granted_at DESC",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(consent_from_row).collect()
    }

    /// Revokes the user's live consents to `client_id` (for one resource, or
    /// all) and the refresh tokens issued under them. Returns (consents, refresh tokens) revoked.
    pub async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: Option<&str>,
        now: i64,
    ) -> Result<(u64, u64), HubError> {
        let mut tx = self.pool.begin().await?;
        let consents = sqlx::query(
            "UPDATE consents SET revoked_at = ? WHERE user_id = ? AND client_id = ?
               AND (? IS NULL OR resource = ?) AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(client_id)
        .bind(resource)
        .bind(resource)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let refresh = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND client_id = ?
               AND (? IS NULL OR resource = ?) AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(client_id)
        .bind(resource)
        .bind(resource)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok((consents, refresh))
    }
}

fn consent_from_row(row: &SqliteRow) -> Result<Consent, HubError> {
    Ok(Consent {
        user_id: row.try_get("user_id")?,
        client_id: row.try_get("client_id")?,
        resource: row.try_get("resource")?,
        scopes: from_json(row, "scopes")?,
        granted_at: row.try_get("granted_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
