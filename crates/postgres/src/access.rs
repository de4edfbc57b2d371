//! Access tokens and graph secrets: their SQL and [`AccessStore`] for
//! [`PostgresStore`].

use async_trait::async_trait;
use roomkit_graph_store::{AccessStore, Result, StoreError, TokenRecord, now_millis};

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
                "INSERT INTO roomkit_graph.tokens (token_hash, org, label, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (token_hash) DO NOTHING",
                &[&token.token_hash, &token.org, &token.label, &token.created_at],
            )
            .await
            .map_err(pg)?;
        if inserted == 0 {
            return Err(StoreError::Invalid("a token with this hash exists already".into()));
        }
        Ok(())
    }

    async fn token_once(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT token_hash, org, label, created_at FROM roomkit_graph.tokens WHERE token_hash = $1",
            )
            .await
            .map_err(pg)?;
        let row = client.query_opt(&statement, &[&token_hash]).await.map_err(pg)?;
        Ok(row.map(|row| TokenRecord {
            token_hash: row.get(0),
            org: row.get(1),
            label: row.get(2),
            created_at: row.get(3),
        }))
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
