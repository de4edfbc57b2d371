//! Access tokens and graph secrets: their SQL and [`AccessStore`] for
//! [`PostgresStore`].

use async_trait::async_trait;
use roomkit_graph_store::{AccessStore, Millis, Result, StoreError, TokenRecord, now_millis};

use crate::PostgresStore;
use crate::error::pg;

#[async_trait]
impl AccessStore for PostgresStore {
    async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        self.retrying(|| self.create_token_once(token)).await
    }

    async fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        self.retrying(|| self.token_once(token_hash)).await
    }

    async fn tokens(&self, org: &str) -> Result<Vec<TokenRecord>> {
        self.retrying(|| self.tokens_once(org)).await
    }

    async fn revoke_token(&self, org: &str, id: &str) -> Result<bool> {
        self.retrying(|| self.revoke_token_once(org, id)).await
    }

    async fn record_token_use(&self, token_hash: &str, at: Millis) -> Result<()> {
        self.retrying(|| self.record_token_use_once(token_hash, at)).await
    }

    async fn set_secret(&self, org: &str, graph_id: &str, name: &str, value: Option<&str>) -> Result<()> {
        self.retrying(|| self.set_secret_once(org, graph_id, name, value)).await
    }

    async fn secret(&self, org: &str, graph_id: &str, name: &str) -> Result<Option<String>> {
        self.retrying(|| self.secret_once(org, graph_id, name)).await
    }
}

/// The operations, each tried once; [`PostgresStore::retrying`] tries them
/// again while the database is unavailable.
impl PostgresStore {
    async fn create_token_once(&self, token: &TokenRecord) -> Result<()> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                &format!(
                    "INSERT INTO roomkit_graph.tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT DO NOTHING"
                ),
                &[
                    &token.token_hash,
                    &token.id,
                    &token.org,
                    &token.label,
                    &token.created_at,
                    &token.expires_at,
                    &token.read_only,
                    &token.last_used_at,
                ],
            )
            .await
            .map_err(pg)?;
        if inserted == 0 {
            return Err(StoreError::Invalid("a token with this hash or id exists already".into()));
        }
        Ok(())
    }

    async fn token_once(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM roomkit_graph.tokens WHERE token_hash = $1"
            ))
            .await
            .map_err(pg)?;
        let row = client.query_opt(&statement, &[&token_hash]).await.map_err(pg)?;
        Ok(row.as_ref().map(token_row))
    }

    async fn tokens_once(&self, org: &str) -> Result<Vec<TokenRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM roomkit_graph.tokens WHERE org = $1 ORDER BY created_at, id"
                ),
                &[&org],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(token_row).collect())
    }

    async fn revoke_token_once(&self, org: &str, id: &str) -> Result<bool> {
        let client = self.client().await?;
        let removed = client
            .execute("DELETE FROM roomkit_graph.tokens WHERE org = $1 AND id = $2", &[&org, &id])
            .await
            .map_err(pg)?;
        Ok(removed > 0)
    }

    async fn record_token_use_once(&self, token_hash: &str, at: Millis) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE roomkit_graph.tokens SET last_used_at = $2 WHERE token_hash = $1 \
                 AND (last_used_at IS NULL OR last_used_at < $2)",
                &[&token_hash, &at],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn set_secret_once(
        &self,
        org: &str,
        graph_id: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<()> {
        let client = self.client().await?;
        match value {
            Some(value) => {
                client
                    .execute(
                        "INSERT INTO roomkit_graph.secrets (org, graph_id, name, value, updated_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org, graph_id, name) \
                         DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                        &[&org, &graph_id, &name, &value, &now_millis()],
                    )
                    .await
            }
            None => {
                client
                    .execute(
                        "DELETE FROM roomkit_graph.secrets WHERE org = $1 AND graph_id = $2 AND name = $3",
                        &[&org, &graph_id, &name],
                    )
                    .await
            }
        }
        .map_err(pg)?;
        Ok(())
    }

    async fn secret_once(&self, org: &str, graph_id: &str, name: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT value FROM roomkit_graph.secrets WHERE org = $1 AND graph_id = $2 AND name = $3",
                &[&org, &graph_id, &name],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|row| row.get(0)))
    }
}

/// The columns of a token, in the order [`token_row`] reads them.
const TOKEN_COLUMNS: &str = "token_hash, id, org, label, created_at, expires_at, read_only, last_used_at";

/// A token read with [`TOKEN_COLUMNS`].
fn token_row(row: &tokio_postgres::Row) -> TokenRecord {
    TokenRecord {
        token_hash: row.get(0),
        id: row.get(1),
        org: row.get(2),
        label: row.get(3),
        created_at: row.get(4),
        expires_at: row.get(5),
        read_only: row.get(6),
        last_used_at: row.get(7),
    }
}
