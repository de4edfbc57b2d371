//! Webhook signatures, in two schemes, both HMAC-SHA256 keyed with the
//! graph's webhook secret:
//!
//! - ours, which covers a timestamp and the body: `X-Roomkit-Timestamp: UNIX
//!   SECONDS` and `X-Roomkit-Signature: sha256=<hex HMAC of "{timestamp}.{body}">`,
//!   refused more than [`MAX_SKEW_SECS`] away from the receiver's clock;
//! - GitHub's, over the body alone: `X-Hub-Signature-256: sha256=<hex HMAC of
//!   the body>`. Nothing dates it, so the receiver must refuse a replay of it
//!   ([`Verified::replay_key`]).
//!
//! [`verify_delivery`] checks a request against whichever scheme it is signed with.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};

/// The header of a GitHub-style signature.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The header of our signature.
pub const ROOMKIT_SIGNATURE_HEADER: &str = "x-roomkit-signature";

/// The header of the time our signature covers, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-roomkit-timestamp";

/// How far, in seconds, the timestamp of a delivery may be from the
/// receiver's clock, either way: 5 minutes.
pub const MAX_SKEW_SECS: i64 = 300;

/// Why a webhook request's signature is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The request has no signature header.
    #[error(
        "the request is not signed: send X-Roomkit-Timestamp and X-Roomkit-Signature, or X-Hub-Signature-256"
    )]
    Missing,
    /// A signature header is not `sha256=` and 64 hex digits.
    #[error("the {0} header is not \"sha256=\" and 64 hex digits")]
    Malformed(&'static str),
    /// The signature is not the request's, with this graph's secret.
    #[error("the {0} signature does not match the request")]
    Mismatch(&'static str),
    /// Our signature without the timestamp it covers.
    #[error("X-Roomkit-Signature comes with X-Roomkit-Timestamp, the Unix time in seconds it was made at")]
    NoTimestamp,
    /// The timestamp is not Unix seconds.
    #[error("X-Roomkit-Timestamp is not a Unix time in seconds")]
    MalformedTimestamp,
    /// The timestamp is too far from the receiver's clock.
    #[error(
        "X-Roomkit-Timestamp is {skew} seconds away from the server's clock (at most {MAX_SKEW_SECS} are allowed): sign the delivery again with the current time"
    )]
    Stale {
        /// How far it is, in seconds.
        skew: i64,
    },
}

/// The signature headers of a request, as sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// `X-Roomkit-Timestamp`.
    pub timestamp: Option<&'a str>,
    /// `X-Roomkit-Signature`.
    pub roomkit_signature: Option<&'a str>,
    /// `X-Hub-Signature-256`.
    pub hub_signature: Option<&'a str>,
}

/// A delivery whose signature holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The hex SHA-256 of what the signature covers (the timestamp and the
    /// body, or the body): the same for a replay of the delivery, so a
    /// receiver that keeps it starts nothing twice.
    pub replay_key: String,
}

/// Checks a request with `body` against `secret`, in constant time: our
/// signature when it carries one (its timestamp within [`MAX_SKEW_SECS`] of
/// `now_secs`), GitHub's otherwise.
///
/// ```
/// use roomkit_graph_triggers::{Delivery, SignatureError, sign, sign_timestamped, verify_delivery};
///
/// let (secret, body, now) = (b"s3cret", b"{}", 1_700_000_000);
/// let ours = sign_timestamped(secret, now - 10, body);
/// let stamp = (now - 10).to_string();
/// let delivery = Delivery { timestamp: Some(&stamp), roomkit_signature: Some(&ours), hub_signature: None };
/// assert!(verify_delivery(secret, body, delivery, now).is_ok());
/// assert_eq!(verify_delivery(secret, body, delivery, now + 600), Err(SignatureError::Stale { skew: 610 }));
///
/// let github = sign(secret, body);
/// let delivery = Delivery { hub_signature: Some(&github), ..Delivery::default() };
/// assert!(verify_delivery(secret, body, delivery, now).is_ok());
/// assert_eq!(verify_delivery(secret, body, Delivery::default(), now), Err(SignatureError::Missing));
/// ```
pub fn verify_delivery(
    secret: &[u8],
    body: &[u8],
    delivery: Delivery<'_>,
    now_secs: i64,
) -> Result<Verified, SignatureError> {
    if let Some(signature) = delivery.roomkit_signature {
        let text = delivery.timestamp.ok_or(SignatureError::NoTimestamp)?;
        let timestamp: i64 = text.trim().parse().map_err(|_| SignatureError::MalformedTimestamp)?;
        let skew = now_secs.saturating_sub(timestamp).saturating_abs();
        if skew > MAX_SKEW_SECS {
            return Err(SignatureError::Stale { skew });
        }
        let signed = timestamped(timestamp, body);
        check(secret, &signed, signature, "X-Roomkit-Signature")?;
        return Ok(Verified { replay_key: hex::encode(Sha256::digest(&signed)) });
    }
    verify_signature(secret, body, delivery.hub_signature)?;
    Ok(Verified { replay_key: hex::encode(Sha256::digest(body)) })
}

/// Our signature header value for `body` sent at `timestamp` (Unix seconds)
/// with `secret`; send `timestamp` as `X-Roomkit-Timestamp` beside it.
///
/// ```
/// use roomkit_graph_triggers::{sign, sign_timestamped};
/// let header = sign_timestamped(b"s3cret", 1_700_000_000, b"{}");
/// assert_eq!(header, sign(b"s3cret", b"1700000000.{}"));
/// ```
pub fn sign_timestamped(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    sign(secret, &timestamped(timestamp, body))
}

/// The GitHub-style signature header value for `body` with `secret`.
///
/// ```
/// use roomkit_graph_triggers::{sign, verify_signature};
///
/// let header = sign(b"It's a Secret to Everybody", b"Hello, World!");
/// assert_eq!(header, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
/// assert!(verify_signature(b"It's a Secret to Everybody", b"Hello, World!", Some(&header)).is_ok());
/// ```
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(mac(secret, body).finalize().into_bytes()))
}

/// Checks a GitHub-style signature header of a request with `body` against
/// `secret`, in constant time.
///
/// ```
/// use roomkit_graph_triggers::{SignatureError, verify_signature};
///
/// let secret = b"s3cret";
/// assert_eq!(verify_signature(secret, b"{}", None), Err(SignatureError::Missing));
/// assert_eq!(
///     verify_signature(secret, b"{}", Some("sha1=abc")),
///     Err(SignatureError::Malformed("X-Hub-Signature-256"))
/// );
/// let forged = format!("sha256={}", "0".repeat(64));
/// assert_eq!(verify_signature(secret, b"{}", Some(&forged)), Err(SignatureError::Mismatch("X-Hub-Signature-256")));
/// ```
pub fn verify_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    check(secret, body, header.ok_or(SignatureError::Missing)?, "X-Hub-Signature-256")
}

/// What our signature covers: `"{timestamp}.{body}"`.
fn timestamped(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    signed
}

/// Checks that `header` (of the header `name`) is the signature of `signed`.
fn check(secret: &[u8], signed: &[u8], header: &str, name: &'static str) -> Result<(), SignatureError> {
    let digits = header.trim().strip_prefix("sha256=").ok_or(SignatureError::Malformed(name))?;
    let expected = hex::decode(digits).map_err(|_| SignatureError::Malformed(name))?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed(name));
    }
    mac(secret, signed).verify_slice(&expected).map_err(|_| SignatureError::Mismatch(name))
}

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac
}
