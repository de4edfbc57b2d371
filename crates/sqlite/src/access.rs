//! Access tokens and graph secrets: their SQL and [`AccessStore`] for
//! [`SqliteStore`].

use async_trait::async_trait;
use roomkit_graph_store::{AccessStore, Result, StoreError, TokenRecord, now_millis};
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::error::DbError;

#[async_trait]
impl AccessStore for SqliteStore {
    async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        let token = token.clone();
        self.write(move |conn| create_token(conn, &token)).await
    }

    async fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        let token_hash = token_hash.to_owned();
        self.read(move |conn| token(conn, &token_hash)).await
    }

    async fn set_secret(&self, org: &str, graph_id: &str, name: &str, value: Option<&str>) -> Result<()> {
        let (org, graph_id, name) = (org.to_owned(), graph_id.to_owned(), name.to_owned());
        let value = value.map(str::to_owned);
        self.write(move |conn| set_secret(conn, &org, &graph_id, &name, value.as_deref())).await
    }

    async fn secret(&self, org: &str, graph_id: &str, name: &str) -> Result<Option<String>> {
        let (org, graph_id, name) = (org.to_owned(), graph_id.to_owned(), name.to_owned());
        self.read(move |conn| secret(conn, &org, &graph_id, &name)).await
    }
}

/// Stores an access token, refused if its hash exists.
pub(crate) fn create_token(conn: &Connection, token: &TokenRecord) -> Result<(), DbError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO tokens (token_hash, org, label, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (token_hash) DO NOTHING",
        )?
        .execute(params![token.token_hash, token.org, token.label, token.created_at])?;
    if inserted == 0 {
        return Err(StoreError::Invalid("a token with this hash exists already".into()).into());
    }
    Ok(())
}

/// The token with this hash, if any.
pub(crate) fn token(conn: &Connection, token_hash: &str) -> Result<Option<TokenRecord>, DbError> {
    Ok(conn
        .prepare_cached("SELECT token_hash, org, label, created_at FROM tokens WHERE token_hash = ?1")?
        .query_row(params![token_hash], |row| {
            Ok(TokenRecord {
                token_hash: row.get(0)?,
                org: row.get(1)?,
                label: row.get(2)?,
                created_at: row.get(3)?,
            })
        })
        .optional()?)
}

/// Sets or removes a graph's secret.
pub(crate) fn set_secret(
    conn: &Connection,
    org: &str,
    graph_id: &str,
    name: &str,
    value: Option<&str>,
) -> Result<(), DbError> {
    match value {
        Some(value) => conn
            .prepare_cached(
                "INSERT INTO secrets (org, graph_id, name, value, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (org, graph_id, name) DO UPDATE SET value = excluded.value, \
                 updated_at = excluded.updated_at",
            )?
            .execute(params![org, graph_id, name, value, now_millis()])?,
        None => conn
            .prepare_cached("DELETE FROM secrets WHERE org = ?1 AND graph_id = ?2 AND name = ?3")?
            .execute(params![org, graph_id, name])?,
    };
    Ok(())
}

/// A graph's secret, if set.
pub(crate) fn secret(
    conn: &Connection,
    org: &str,
    graph_id: &str,
    name: &str,
) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached("SELECT value FROM secrets WHERE org = ?1 AND graph_id = ?2 AND name = ?3")?
        .query_row(params![org, graph_id, name], |row| row.get(0))
        .optional()?)
}
