//! The web page at `/`: one HTML file, its CSS and JavaScript inline, that
//! lists runs, follows one live, answers its people's steps, cancels runs and
//! starts them. It loads nothing from elsewhere and calls the API with the
//! token the person gives it; the page itself needs none.

use std::sync::LazyLock;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::response::IntoResponse;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The page.
const PAGE: &str = include_str!("web/index.html");

/// The page's Content-Security-Policy: its own inline script and style only
/// (by hash), requests to this server only, no frames, no forms sent elsewhere.
static POLICY: LazyLock<String> = LazyLock::new(|| policy(PAGE));

/// `GET /`: the page.
pub(crate) async fn page() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CONTENT_SECURITY_POLICY, POLICY.as_str()),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
            (REFERRER_POLICY, "no-referrer"),
            (CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}

/// The policy for `page`, allowing the inline blocks of `page` by their hashes.
fn policy(page: &str) -> String {
    let hashes = |open: &str, close: &str| -> String {
        inline_blocks(page, open, close)
            .map(|block| {
                format!(
                    " 'sha256-{}'",
                    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(block))
                )
            })
            .collect()
    };
    format!(
        "default-src 'none'; script-src{}; style-src{}; connect-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hashes("<script>", "</script>"),
        hashes("<style>", "</style>"),
    )
}

/// The text between each `open` tag and the `close` tag after it.
fn inline_blocks<'a>(page: &'a str, open: &'a str, close: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let mut rest = page;
    std::iter::from_fn(move || {
        let start = rest.find(open)? + open.len();
        let length = rest[start..].find(close)?;
        let block = &rest[start..start + length];
        rest = &rest[start + length + close.len()..];
        Some(block)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_one_script_and_the_one_style_of_the_page() {
        assert_eq!(inline_blocks(PAGE, "<script>", "</script>").count(), 1);
        assert_eq!(inline_blocks(PAGE, "<style>", "</style>").count(), 1);
        assert!(!PAGE.contains("<script src") && !PAGE.contains("http://") && !PAGE.contains("https://"));
        let policy = policy(PAGE);
        assert_eq!(policy.matches("'sha256-").count(), 2, "{policy}");
        assert!(!policy.contains("unsafe-inline"));
    }

    #[test]
    fn blocks_are_read_between_their_tags() {
        let page = "<style>a</style><script>one</script> <script>two</script><script>open";
        assert_eq!(inline_blocks(page, "<script>", "</script>").collect::<Vec<_>>(), ["one", "two"]);
        // The hash of "one", as a browser computes it for the policy.
        assert!(policy(page).contains("'sha256-dpLDrTVAu4A8Ags67mbNiIcSMjTqDG5xQ8Ct1z/0Me0='"));
    }
}
