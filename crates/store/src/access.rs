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
    /// Names the token in lists and revocations (`tok_` and 16 hex digits);
    /// it says nothing of the secret.
    pub id: String,
    /// The organization the token acts for.
    pub org: String,
    /// A name for people, e.g. who it was made for.
    pub label: Option<String>,
    /// When it was made.
    pub created_at: Millis,
    /// When it stops being taken, if ever.
    pub expires_at: Option<Millis>,
    /// Whether it may only read and follow (not start, answer or cancel).
    pub read_only: bool,
    /// When it was last used, to within [`TOKEN_USE_RESOLUTION`].
    pub last_used_at: Option<Millis>,
}

/// How finely a token's last use is kept: a use is recorded when the last
/// one recorded is at least this old, so a busy token costs one write a
/// minute, not one a request.
pub const TOKEN_USE_RESOLUTION: Millis = 60_000;

impl TokenRecord {
    /// Whether the token has expired at `now` (it is taken up to, not at,
    /// its expiry).
    ///
    /// ```
    /// # use roomkit_graph_store::TokenRecord;
    /// let token = TokenRecord { expires_at: Some(1_000), ..TokenRecord::new("ab12", "tok_1", "acme", 0) };
    /// assert!(!token.expired_at(999));
    /// assert!(token.expired_at(1_000));
    /// assert!(!TokenRecord::new("ab12", "tok_1", "acme", 0).expired_at(i64::MAX), "no expiry");
    /// ```
    pub fn expired_at(&self, now: Millis) -> bool {
        self.expires_at.is_some_and(|expires_at| now >= expires_at)
    }

    /// Whether a use at `now` is to be recorded: the token's first, or one
    /// [`TOKEN_USE_RESOLUTION`] or more after the last recorded.
    ///
    /// ```
    /// # use roomkit_graph_store::{TokenRecord, TOKEN_USE_RESOLUTION};
    /// let mut token = TokenRecord::new("ab12", "tok_1", "acme", 0);
    /// assert!(token.use_to_record(5));
    /// token.last_used_at = Some(5);
    /// assert!(!token.use_to_record(5 + TOKEN_USE_RESOLUTION - 1));
    /// assert!(token.use_to_record(5 + TOKEN_USE_RESOLUTION));
    /// ```
    pub fn use_to_record(&self, now: Millis) -> bool {
        self.last_used_at.is_none_or(|last| now.saturating_sub(last) >= TOKEN_USE_RESOLUTION)
    }

    /// A token of `org` made at `created_at`: no label, no expiry, may
    /// change things, never used.
    pub fn new(token_hash: &str, id: &str, org: &str, created_at: Millis) -> Self {
        TokenRecord {
            token_hash: token_hash.to_owned(),
            id: id.to_owned(),
            org: org.to_owned(),
            label: None,
            created_at,
            expires_at: None,
            read_only: false,
            last_used_at: None,
        }
    }
}

/// Who may do what, and what graphs may use: access tokens (kept by hash)
/// and graph secrets (kept apart from the graph and its versions), each of
/// one organization. Every method is one transaction.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Stores an access token (by its hash). Refused if the hash exists.
    async fn create_token(&self, token: &TokenRecord) -> Result<()>;

    /// The token with this hash, if any: always as stored now, so a token
    /// revoked by any process is never found again.
    async fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>>;

    /// The tokens of `org`, oldest first (expired ones too).
    async fn tokens(&self, org: &str) -> Result<Vec<TokenRecord>>;

    /// Revokes (removes) the token of `org` with this id. False when `org`
    /// has no such token.
    async fn revoke_token(&self, org: &str, id: &str) -> Result<bool>;

    /// Records that the token with this hash was used at `at` (a later
    /// use recorded already stays).
    async fn record_token_use(&self, token_hash: &str, at: Millis) -> Result<()>;

    /// Sets (or with `None` removes) the secret `name` of a graph of `org`,
    /// kept apart from the graph and its versions.
    async fn set_secret(&self, org: &str, graph_id: &str, name: &str, value: Option<&str>) -> Result<()>;

    /// The secret `name` of a graph of `org`, if set.
    async fn secret(&self, org: &str, graph_id: &str, name: &str) -> Result<Option<String>>;
}
