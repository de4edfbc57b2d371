//! Bearer tokens: each acts for one organization. Only a hash of a token is
//! stored; the token itself is shown once, when it is made.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use roomkit_graph_store::{TokenRecord, now_millis};
use sha2::{Digest, Sha256};

use crate::App;
use crate::error::ApiError;

/// What every token starts with, so a leaked one is easy to recognize.
const TOKEN_PREFIX: &str = "rkg_";

/// A token just made: the secret to give its holder once, and what is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The token, for the `Authorization: Bearer` header. Not stored anywhere.
    pub token: String,
    /// What is stored: its hash and organization.
    pub record: TokenRecord,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken").field("token", &"<secret>").field("record", &self.record).finish()
    }
}

/// Makes a new random token for `org` (256 random bits).
///
/// ```
/// let made = roomkit_graph_server::new_token("acme", Some("ci"));
/// assert!(made.token.starts_with("rkg_") && made.token.len() == 68);
/// assert_eq!(made.record.token_hash, roomkit_graph_server::hash_token(&made.token));
/// assert_ne!(made.record.token_hash, made.token);
/// assert_eq!(made.record.org, "acme");
/// ```
pub fn new_token(org: &str, label: Option<&str>) -> NewToken {
    let secret: [u8; 32] = rand::random();
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
    let record = TokenRecord {
        token_hash: hash_token(&token),
        org: org.to_owned(),
        label: label.map(str::to_owned),
        created_at: now_millis(),
    };
    NewToken { token, record }
}

/// The stored form of a token: hex SHA-256. (Tokens are long and random, so
/// a fast hash is enough: there is nothing to guess.)
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The organization the request's bearer token acts for.
pub(crate) struct Org(pub(crate) String);

impl FromRequestParts<App> for Org {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let unauthorized = |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| unauthorized("the request needs an Authorization: Bearer <token> header"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(bearer_token)
            .ok_or_else(|| unauthorized("the Authorization header is not \"Bearer <token>\""))?;
        let hash = hash_token(token);
        if let Some(org) = app.tokens.get(&hash) {
            return Ok(Org(org));
        }
        match app.runner.store().token(&hash).await? {
            Some(record) => {
                app.tokens.put(hash, record.org.clone());
                Ok(Org(record.org))
            }
            None => Err(unauthorized("the token is not valid")),
        }
    }
}

/// The token of an `Authorization` header's value: the scheme `Bearer` in
/// any case, then the token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The tokens seen lately, by hash, with their organization: a request with
/// one of them needs no database read. Entries last [`TokenCache::ttl`]; a
/// token unknown to the database is never kept.
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<String, (String, Instant)>>,
    ttl: Duration,
    capacity: usize,
}

impl TokenCache {
    /// A cache keeping each token `ttl`, and at most `capacity` of them (when
    /// full, it starts over).
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        TokenCache { entries: Mutex::default(), ttl, capacity }
    }

    /// The organization of the token with this hash, if seen less than `ttl` ago.
    fn get(&self, hash: &str) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(hash).filter(|(_, seen)| seen.elapsed() < self.ttl).map(|(org, _)| org.clone())
    }

    /// Keeps the token with this hash, of `org`.
    fn put(&self, hash: String, org: String) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(hash, (org, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        for value in ["Bearer rkg_1", "bearer rkg_1", "BEARER  rkg_1 ", "bEaReR rkg_1"] {
            assert_eq!(bearer_token(value), Some("rkg_1"), "{value}");
        }
        for value in ["Basic eDp5", "Bearer", "Bearer ", "Bearerrkg_1", "rkg_1"] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }

    #[test]
    fn the_cache_keeps_tokens_for_their_time_and_within_its_size() {
        let cache = TokenCache::new(Duration::from_millis(50), 2);
        assert_eq!(cache.get("a"), None);
        cache.put("a".into(), "acme".into());
        assert_eq!(cache.get("a").as_deref(), Some("acme"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("a"), None, "expired");
        cache.put("a".into(), "acme".into());
        cache.put("b".into(), "beta".into());
        cache.put("c".into(), "gamma".into());
        assert_eq!((cache.get("a"), cache.get("c").as_deref()), (None, Some("gamma")), "full: started over");
    }
}
