//! Enterprise single sign-on: tenants' upstream OpenID Providers (the client
//! secret sealed) and the identities they vouched for, linked to users.

use sqlx::Row;

use super::Store;
use crate::error::HubError;
use crate::model::SsoConfig;

/// An upstream identity linked to a hub user.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkedIdentity {
    pub issuer: String,
    pub subject: String,
    pub tenant: String,
    pub linked_at: i64,
    pub last_login_at: i64,
}

impl Store {
    /// Sets (or with `None` removes) a tenant's provider, with the hub's
    /// client secret at it already sealed. False: no such tenant.
    pub async fn set_tenant_sso(
        &self,
        tenant: &str,
        sso: Option<(&SsoConfig, &str)>,
    ) -> Result<bool, HubError> {
        let done = sqlx::query("UPDATE tenants SET sso = ?, sso_secret = ? WHERE id = ?")
            .bind(sso.map(|(config, _)| super::to_json(config)))
            .bind(sso.map(|(_, sealed)| sealed))
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every tenant with a provider: its id, settings (without the secret)
    /// and the sealed secret.
    pub async fn sso_tenants(&self) -> Result<Vec<(String, SsoConfig, String)>, HubError> {
        let rows = sqlx::query(
            "SELECT id, sso, sso_secret FROM tenants WHERE sso IS NOT NULL AND sso_secret IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut tenants = Vec::with_capacity(rows.len());
        for row in rows {
            let config: String = row.try_get("sso")?;
            tenants.push((
                row.try_get("id")?,
                serde_json::from_str(&config)?,
                row.try_get("sso_secret")?,
            ));
        }
        Ok(tenants)
    }

    /// The hub user an upstream identity (`iss`, `sub`) was linked to.
    pub async fn identity_user(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<String>, HubError> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM user_identities WHERE issuer = ? AND subject = ?",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Links an upstream identity to a user, or records another sign-in by it.
    pub async fn record_identity_sign_in(
        &self,
        issuer: &str,
        subject: &str,
        user_id: &str,
        tenant: &str,
        now: i64,
    ) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO user_identities (issuer, subject, user_id, tenant, linked_at, last_login_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT(issuer, subject) DO UPDATE SET last_login_at = excluded.last_login_at",
        )
        .bind(issuer)
        .bind(subject)
        .bind(user_id)
        .bind(tenant)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The upstream identities linked to a user.
    pub async fn identities_of(&self, user_id: &str) -> Result<Vec<LinkedIdentity>, HubError> {
        let rows = sqlx::query(
            "SELECT issuer, subject, tenant, linked_at, last_login_at FROM user_identities
             WHERE user_id = ? ORDER BY linked_at",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LinkedIdentity {
                    issuer: row.try_get("issuer")?,
                    subject: row.try_get("subject")?,
                    tenant: row.try_get("tenant")?,
                    linked_at: row.try_get("linked_at")?,
                    last_login_at: row.try_get("last_login_at")?,
                })
            })
            .collect()
    }
}
