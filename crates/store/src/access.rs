//! Who may do what: organizations and their access tokens.

use serde::{Deserialize, Serialize};

use crate::Millis;

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
