//! MCP Server Policies as stored.

use sqlx::Row;

use super::{to_json, Store};
use crate::error::HubError;
use crate::policy::rules::Policy;

impl Store {
    pub async fn insert_policy(&self, policy: &Policy) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO policies (id, name, description, conditions, grants, created_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, description = excluded.description,
               conditions = excluded.conditions, grants = excluded.grants",
        )
        .bind(&policy.id)
        .bind(&policy.name)
        .bind(&policy.description)
        .bind(to_json(&policy.conditions))
        .bind(to_json(&policy.grants))
        .bind(policy.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn policies(&self) -> Result<Vec<Policy>, HubError> {
        let rows = sqlx::query("SELECT * FROM policies ORDER BY created_at, rowid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Policy {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    conditions: serde_json::from_str(&row.try_get::<String, _>("conditions")?)?,
                    grants: serde_json::from_str(&row.try_get::<String, _>("grants")?)?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Deletes a policy; false when there was none with that id.
    pub async fn delete_policy(&self, id: &str) -> Result<bool, HubError> {
        let done = sqlx::query("DELETE FROM policies WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
