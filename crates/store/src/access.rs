//! Who may do what: organizations, their access tokens and their graphs'
//! secrets, and [`AccessStore`], where they are kept.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Millis, Result};

/// The organization of everything created without naming one (the command
/// line on a local database, say).
pub const DEFAULT_ORG: &str = "default";

/// An access token as stored: only a hash of the secret token is kept, so a
/// stolen database gives no usable token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The hash of the token (hex SHA-256).
    pub token_hash: String,
    /// The organization the token acts for.
    pub org: String,
    /// A name for people, e.g. who it was made for.
    pub label: Option<String>,
    /// When it was made.
    pub created_at: Millis,
}

/// Who may do what, and what graphs may use: access tokens (kept by hash)
/// and graph secrets (kept apart from the graph and its versions), each of
/// one organization. Every method is one transaction.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Stores an access token (by its hash). Refused if the hash exists.
    async fn create_token(&self, token: &TokenRecord) -> Result<()>;

    /// The token with this hash, if any.
    async fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>>;

    /// Sets (or with `None` removes) the secret `name` of a graph of `org`,
    /// kept apart from the graph and its versions.
    async fn set_secret(&self, org: &str, graph_id: &str, name: &str, value: Option<&str>) -> Result<()>;

    /// The secret `name` of a graph of `org`, if set.
    async fn secret(&self, org: &str, graph_id: &str, name: &str) -> Result<Option<String>>;
}
