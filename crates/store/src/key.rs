//! Run keys: what makes starting a run safe to repeat. A key is held by one
//! run at a time, for good or until it expires; a new run asking for a key
//! that is held is refused, naming the holder and whether it was asked for
//! with the same request. The rule is the same for every backend.

use crate::{Millis, StoreError};

/// A key no other run may have while it holds it: a schedule's due time, a
/// request's idempotency key, the signature of a webhook delivery.
///
/// ```
/// use roomkit_graph_store::{HeldKey, RunKey, StoreError};
///
/// let key = RunKey::new("request:acme:review:abc").with_request_hash("9f86d0");
/// let holder = HeldKey { run_id: "r1".into(), request_hash: Some("9f86d0".into()), expires_at: None };
/// assert!(!holder.is_free_at(i64::MAX));
/// assert_eq!(
///     key.taken_by(holder.clone()),
///     StoreError::Duplicate { key: key.key.clone(), run_id: "r1".into(), same_request: true }
/// );
/// let other = RunKey::new("request:acme:review:abc").with_request_hash("e3b0c4");
/// assert!(matches!(other.taken_by(holder), StoreError::Duplicate { same_request: false, .. }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunKey {
    /// The key.
    pub key: String,
    /// A hash of the request that asks for the run (its target and body), to
    /// tell a repeated request from another one reusing the key.
    pub request_hash: Option<String>,
    /// When the run lets the key go (none: never); after that, a new run may
    /// take it.
    pub expires_at: Option<Millis>,
}

impl RunKey {
    /// A key held for good, with no request hash.
    pub fn new(key: impl Into<String>) -> RunKey {
        RunKey { key: key.into(), request_hash: None, expires_at: None }
    }

    /// With the hash of the request that asks for the run.
    pub fn with_request_hash(self, hash: impl Into<String>) -> RunKey {
        RunKey { request_hash: Some(hash.into()), ..self }
    }

    /// Held until `expires_at` only.
    pub fn until(self, expires_at: Millis) -> RunKey {
        RunKey { expires_at: Some(expires_at), ..self }
    }

    /// The refusal of a new run asking for this key while `holder` holds it:
    /// [`StoreError::Duplicate`], the same request when both have the same
    /// request hash or either has none.
    pub fn taken_by(&self, holder: HeldKey) -> StoreError {
        let same_request = match (&self.request_hash, &holder.request_hash) {
            (Some(asked), Some(held)) => asked == held,
            _ => true,
        };
        StoreError::Duplicate { key: self.key.clone(), run_id: holder.run_id, same_request }
    }
}

impl From<&str> for RunKey {
    fn from(key: &str) -> RunKey {
        RunKey::new(key)
    }
}

impl From<String> for RunKey {
    fn from(key: String) -> RunKey {
        RunKey::new(key)
    }
}

/// A key as a run holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldKey {
    /// The run that holds it.
    pub run_id: String,
    /// The request hash it was taken with.
    pub request_hash: Option<String>,
    /// When the run lets it go.
    pub expires_at: Option<Millis>,
}

impl HeldKey {
    /// Whether the run has let the key go at `now`: a new run may take it
    /// (and the old one keeps none).
    pub fn is_free_at(&self, now: Millis) -> bool {
        self.expires_at.is_some_and(|expires_at| expires_at <= now)
    }
}
