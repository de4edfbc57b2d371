//! Webhook signatures: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the
//! body, keyed with the secret>`, as GitHub sends them.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Why a webhook request's signature is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The request has no signature header.
    #[error("the request has no X-Hub-Signature-256 header")]
    Missing,
    /// The header is not `sha256=` and 64 hex digits.
    #[error("the X-Hub-Signature-256 header is not \"sha256=\" and 64 hex digits")]
    Malformed,
    /// The signature is not the body's, with this graph's secret.
    #[error("the X-Hub-Signature-256 signature does not match the body")]
    Mismatch,
}

/// The signature header value for `body` with `secret`.
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

/// Checks the signature header of a request with `body` against `secret`,
/// in constant time.
///
/// ```
/// use roomkit_graph_triggers::{SignatureError, verify_signature};
///
/// let secret = b"s3cret";
/// assert_eq!(verify_signature(secret, b"{}", None), Err(SignatureError::Missing));
/// assert_eq!(verify_signature(secret, b"{}", Some("sha1=abc")), Err(SignatureError::Malformed));
/// let forged = format!("sha256={}", "0".repeat(64));
/// assert_eq!(verify_signature(secret, b"{}", Some(&forged)), Err(SignatureError::Mismatch));
/// ```
pub fn verify_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let digits = header.trim().strip_prefix("sha256=").ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(digits).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    mac(secret, body).verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac
}
