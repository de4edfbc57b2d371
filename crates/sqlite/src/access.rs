//! Access tokens and graph secrets: their SQL and [`AccessStore`] for
//! [`SqliteStore`].

use async_trait::async_trait;
use roomkit_graph_store::{AccessStore, Millis, Result, StoreError, TokenRecord, now_millis};
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

    async fn tokens(&self, org: &str) -> Result<Vec<TokenRecord>> {
        let org = org.to_owned();
        self.read(move |conn| tokens(conn, &org)).await
    }

    async fn revoke_token(&self, org: &str, id: &str) -> Result<bool> {
        let (org, id) = (org.to_owned(), id.to_owned());
        self.write(move |conn| revoke_token(conn, &org, &id)).await
    }

    async fn record_token_use(&self, token_hash: &str, at: Millis) -> Result<()> {
        let token_hash = token_hash.to_owned();
        self.write(move |conn| record_token_use(conn, &token_hash, at)).await
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

/// The columns of a token, in the order [`token_row`] reads them.
const TOKEN_COLUMNS: &str = "token_hash, id, org, label, created_at, expires_at, read_only, last_used_at";

/// Stores an access token, refused if its hash (or its id in its
/// organization) exists.
pub(crate) fn create_token(conn: &Connection, token: &TokenRecord) -> Result<(), DbError> {
    let inserted = conn
        .prepare_cached(&format!(
            "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING"
        ))?
        .execute(params![
            token.token_hash,
            token.id,
            token.org,
            token.label,
            token.created_at,
            token.expires_at,
            token.read_only,
            token.last_used_at
        ])?;
    if inserted == 0 {
        return Err(StoreError::Invalid("a token with this hash or id exists already".into()).into());
    }
    Ok(())
}

/// The token with this hash, if any.
pub(crate) fn token(conn: &Connection, token_hash: &str) -> Result<Option<TokenRecord>, DbError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_hash = ?1"))?
        .query_row(params![token_hash], token_row)
        .optional()?)
}

/// The tokens of `org`, oldest first.
pub(crate) fn tokens(conn: &Connection, org: &str) -> Result<Vec<TokenRecord>, DbError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE org = ?1 ORDER BY created_at, id"
    ))?;
    let rows = statement.query_map(params![org], token_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Removes the token of `org` with this id; whether there was one.
pub(crate) fn revoke_token(conn: &Connection, org: &str, id: &str) -> Result<bool, DbError> {
    Ok(conn.prepare_cached("DELETE FROM tokens WHERE org = ?1 AND id = ?2")?.execute(params![org, id])? > 0)
}

/// Records a use of the token with this hash, unless a later one is.
pub(crate) fn record_token_use(conn: &Connection, token_hash: &str, at: Millis) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE tokens SET last_used_at = ?2 WHERE token_hash = ?1 \
         AND (last_used_at IS NULL OR last_used_at < ?2)",
    )?
    .execute(params![token_hash, at])?;
    Ok(())
}

/// A token read with [`TOKEN_COLUMNS`].
fn token_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        token_hash: row.get(0)?,
        id: row.get(1)?,
        org: row.get(2)?,
        label: row.get(3)?,
        created_at: row.get(4)?,
        expires_at: row.get(5)?,
        read_only: row.get(6)?,
        last_used_at: row.get(7)?,
    })
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
