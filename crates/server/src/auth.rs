//! Bearer tokens: each acts for one organization, may expire, and may be
//! read-only. Only a hash of a token is stored; the token itself is shown
//! once, when it is made.

use std::time::{Duration, UNIX_EPOCH};

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

/// Makes a new random token for `org` (256 random bits) with an id of its
/// own (64 random bits): no expiry, and it may change things; set the
/// record's `expires_at` and `read_only` before storing it for another kind.
///
/// ```
/// let made = roomkit_graph_server::new_token("acme", Some("ci"));
/// assert!(made.token.starts_with("rkg_") && made.token.len() == 68);
/// assert_eq!(made.record.token_hash, roomkit_graph_server::hash_token(&made.token));
/// assert_ne!(made.record.token_hash, made.token);
/// assert!(made.record.id.starts_with("tok_") && made.record.id.len() == 20);
/// assert!(!made.token.contains(&made.record.id[4..]), "the id says nothing of the secret");
/// assert_eq!((made.record.org.as_str(), made.record.read_only, made.record.expires_at), ("acme", false, None));
/// ```
pub fn new_token(org: &str, label: Option<&str>) -> NewToken {
    let secret: [u8; 32] = rand::random();
    let id: [u8; 8] = rand::random();
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
    let record = TokenRecord {
        label: label.map(str::to_owned),
        ..TokenRecord::new(&hash_token(&token), &format!("tok_{}", hex::encode(id)), org, now_millis())
    };
    NewToken { token, record }
}

/// The stored form of a token: hex SHA-256. (Tokens are long and random, so
/// a fast hash is enough: there is nothing to guess.)
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The organization the request's bearer token acts for: any valid token,
/// read-only ones too. For the routes that only read.
pub(crate) struct Org(pub(crate) String);

/// The organization the request's bearer token acts for, when the token may
/// change things (start, answer, cancel, store): a read-only token is
/// refused (403).
pub(crate) struct Writer(pub(crate) String);

/// The request's bearer token as stored (any valid token): for what holds
/// on past the request and checks the token again (a live event stream).
pub(crate) struct Token(pub(crate) TokenRecord);

impl FromRequestParts<App> for Token {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        Ok(Token(authenticate(parts, app).await?))
    }
}

impl FromRequestParts<App> for Org {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        Ok(Org(authenticate(parts, app).await?.org))
    }
}

impl FromRequestParts<App> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let token = authenticate(parts, app).await?;
        if token.read_only {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "read_only_token",
                format!("token {} may only read and follow runs", token.id),
            ));
        }
        Ok(Writer(token.org))
    }
}

/// The stored token of the request's bearer token, read from the store on
/// every request (so that a token revoked by any process is refused at
/// once), refused when missing, unknown or expired. Its use is recorded at
/// most once a [`TOKEN_USE_RESOLUTION`](roomkit_graph_store::TOKEN_USE_RESOLUTION),
/// without holding the request up.
async fn authenticate(parts: &Parts, app: &App) -> Result<TokenRecord, ApiError> {
    let unauthorized = |message: String| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthorized("the request needs an Authorization: Bearer <token> header".into()))?;
    let token = header
        .to_str()
        .ok()
        .and_then(bearer_token)
        .ok_or_else(|| unauthorized("the Authorization header is not \"Bearer <token>\"".into()))?;
    let record = app
        .runner
        .store()
        .token(&hash_token(token))
        .await?
        .ok_or_else(|| unauthorized("the token is not valid".into()))?;
    let now = now_millis();
    if record.expired_at(now) {
        let at = record.expires_at.and_then(|at| u64::try_from(at).ok()).unwrap_or_default();
        let at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(at));
        return Err(unauthorized(format!("token {} expired at {at}", record.id)));
    }
    if record.use_to_record(now) {
        let (runner, hash) = (app.runner.clone(), record.token_hash.clone());
        tokio::spawn(async move {
            if let Err(err) = runner.store().record_token_use(&hash, now).await {
                tracing::warn!("cannot record a token's use: {err}");
            }
        });
    }
    Ok(record)
}

/// Whether the token with this hash is still taken at `now` (neither
/// revoked nor expired); a store that cannot say keeps it (the next check
/// asks again).
pub(crate) async fn still_valid(app: &App, token_hash: &str) -> bool {
    match app.runner.store().token(token_hash).await {
        Ok(Some(token)) => !token.expired_at(now_millis()),
        Ok(None) => false,
        Err(_) => true,
    }
}

/// The token of an `Authorization` header's value: the scheme `Bearer` in
/// any case, then the token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
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
}
