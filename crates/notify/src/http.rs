//! The HTTP client webhooks and Slack share, and how its failures read.

use std::sync::OnceLock;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Client, Url};
use roomkit_graph::ErrorChain;

use crate::error::DeliveryError;

/// The most of an answer's body an error quotes.
const BODY_EXCERPT: usize = 200;

/// One client for the process, so connections are pooled across channels.
/// Redirects are not followed: a webhook that moved is a failure to fix, and
/// following a 302 would turn the POST into a GET.
pub(crate) fn client() -> Result<&'static Client, DeliveryError> {
    static CLIENT: OnceLock<Result<Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("roomkit-graph-notify/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(describe)
        })
        .as_ref()
        .map_err(|error| DeliveryError::Other(format!("the HTTP client cannot start: {error}")))
}

/// What a POST got back.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// POSTs `body` as JSON to `url` with `headers`.
pub(crate) async fn post_json(
    url: &Url,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<Answer, DeliveryError> {
    let response = client()?
        .post(url.clone())
        .headers(headers.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(body)
        .send()
        .await
        .map_err(|error| DeliveryError::Connect(describe(error)))?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|error| DeliveryError::Connect(describe(error)))?;
    Ok(Answer { status, body: excerpt(&body) })
}

/// The error and its causes, `a: b: c` (reqwest's own message alone says
/// little: "error sending request"), without the URL, which may hold a token.
fn describe(error: reqwest::Error) -> String {
    ErrorChain(&error.without_url()).to_string()
}

/// The start of `body`, trimmed, on one line.
pub(crate) fn excerpt(body: &str) -> String {
    let body = body.trim();
    let mut cut: String = body.chars().take(BODY_EXCERPT).collect();
    if cut.len() < body.len() {
        cut.push('…');
    }
    cut.replace(['\r', '\n'], " ")
}

/// `scheme://host[:port]/…`: a URL as Debug output shows it, without the path
/// and query that often carry a token.
pub(crate) fn redacted(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}/…", url.scheme()),
        (Some(host), None) => format!("{}://{host}/…", url.scheme()),
        _ => format!("{}:…", url.scheme()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_only_scheme_and_host() -> Result<(), Box<dyn std::error::Error>> {
        let url: Url = "https://hooks.slack.com/services/T000/B000/XXXX?token=1".parse()?;
        assert_eq!(redacted(&url), "https://hooks.slack.com/…");
        let url: Url = "http://127.0.0.1:8080/hook".parse()?;
        assert_eq!(redacted(&url), "http://127.0.0.1:8080/…");
        Ok(())
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt("  no_service\n"), "no_service");
        assert_eq!(excerpt("a\r\nb"), "a  b");
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), BODY_EXCERPT + 1);
    }
}
