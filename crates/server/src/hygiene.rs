//! What every request and answer goes through, around the routes:
//!
//! - a request id: the client's `X-Request-Id` when it is sane, a new one
//!   otherwise, sent back on every answer and logged with the request;
//! - URIs longer than [`MAX_URI_BYTES`] refused with 414;
//! - every refusal in JSON, also those of the layers below the routes
//!   (a body over the limit, a timeout), which come with a bare status;
//! - every server fault answered with its code, a fixed message and the
//!   request id, its detail logged under that id;
//! - `X-Content-Type-Options: nosniff` and `Cache-Control: no-store` on
//!   every answer that does not say otherwise (the web page does);
//! - a time limit for each request but the live event streams ([`time_limit`]).

use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The header that carries a request's id both ways.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request target (path and query) taken, in bytes.
pub(crate) const MAX_URI_BYTES: usize = 8 * 1024;

/// The longest request id taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// The layer around every route: see the module's documentation.
pub(crate) async fn answer(mut request: Request, next: Next) -> Response {
    let id = request_id(&request);
    // The header is set on the request too, for the request's log span.
    let header = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request.headers_mut().insert(REQUEST_ID, header.clone());

    let target = request.uri().path_and_query().map_or(0, |target| target.as_str().len());
    let mut response = if target > MAX_URI_BYTES {
        ApiError::for_status(StatusCode::URI_TOO_LONG).into_response()
    } else {
        next.run(request).await
    };

    let status = response.status();
    if status.is_server_error() {
        let error =
            response.extensions_mut().remove::<ApiError>().unwrap_or_else(|| ApiError::for_status(status));
        tracing::error!(request_id = %id, status = status.as_u16(), code = error.code(),
            detail = error.detail().unwrap_or_default(), "request failed");
        response = rebody(response, &error, Some(id.clone()));
    } else if status.is_client_error() && !is_json(&response) {
        response = rebody(response, &ApiError::for_status(status), None);
    }

    let headers = response.headers_mut();
    headers.insert(REQUEST_ID, header);
    headers.entry(X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    headers.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The request's id: the client's when it is 1 to 128 visible characters
/// among letters, digits and `-_.:/+=`, a new UUID otherwise.
fn request_id(request: &Request) -> String {
    let sane = |text: &&str| {
        (1..=MAX_REQUEST_ID).contains(&text.len())
            && text.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.:/+=".contains(&byte))
    };
    match request.headers().get(REQUEST_ID).and_then(|value| value.to_str().ok()).filter(sane) {
        Some(id) => id.to_owned(),
        None => uuid::Uuid::now_v7().to_string(),
    }
}

/// Whether the answer is JSON already.
fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// `response` with the body of `error` instead of its own, its status and
/// other headers kept.
fn rebody(response: Response, error: &ApiError, request_id: Option<String>) -> Response {
    let (mut parts, _) = response.into_parts();
    let fresh = Json(error.body(request_id)).into_response();
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.remove(CONTENT_LENGTH);
    if let Some(content_type) = fresh_parts.headers.get(CONTENT_TYPE) {
        parts.headers.insert(CONTENT_TYPE, content_type.clone());
    }
    Response::from_parts(parts, body)
}

/// Cuts a request short after `limit` (its body read included) with 408.
/// Not for the live event streams, which last as long as their runs.
pub(crate) async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("the request took longer than {}", humantime::format_duration(limit)),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::{Body, to_bytes};
    use axum::routing::get;
    use serde_json::{Value, json};
    use tower::ServiceExt as _;

    use super::*;

    /// A router behind the answer layer: `/fault` fails with a detail,
    /// `/bare` refuses with a bare status, `/slow` takes a minute (within a
    /// 10 ms time limit), `/ok` answers.
    fn app() -> Router {
        let slow = Router::new()
            .route("/slow", get(|| tokio::time::sleep(Duration::from_secs(60))))
            .route_layer(axum::middleware::from_fn_with_state(Duration::from_millis(10), time_limit));
        Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route(
                "/fault",
                get(|| async {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "storage_error",
                        "disk I/O error on /srv/db",
                    )
                }),
            )
            .route(
                "/bare",
                get(|| async { (StatusCode::PAYLOAD_TOO_LARGE, "Failed to buffer the request body") }),
            )
            .merge(slow)
            .layer(axum::middleware::from_fn(answer))
    }

    async fn call(uri: &str, request_id: Option<&str>) -> (Response, Value) {
        let mut request = Request::get(uri);
        if let Some(id) = request_id {
            request = request.header(REQUEST_ID, id);
        }
        let response =
            app().oneshot(request.body(Body::empty()).expect("a request")).await.expect("an answer");
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, usize::MAX).await.expect("a body");
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (Response::from_parts(parts, Body::empty()), json)
    }

    fn header(response: &Response, name: impl axum::http::header::AsHeaderName) -> &str {
        response.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
    }

    #[tokio::test]
    async fn every_answer_has_a_request_id_and_the_hygiene_headers() {
        let (response, _) = call("/ok", None).await;
        let id = header(&response, REQUEST_ID);
        assert!(uuid::Uuid::parse_str(id).is_ok(), "a new id: {id}");
        assert_eq!(header(&response, X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(header(&response, CACHE_CONTROL), "no-store");

        let (response, _) = call("/ok", Some("req-42.a:b")).await;
        assert_eq!(header(&response, REQUEST_ID), "req-42.a:b", "a sane id is kept");
        let (response, _) = call("/ok", Some("<script>")).await;
        assert_ne!(header(&response, REQUEST_ID), "<script>", "another is replaced");
        let (response, _) = call("/ok", Some(&"x".repeat(129))).await;
        assert_eq!(header(&response, REQUEST_ID).len(), 36, "so is a long one");
    }

    #[tokio::test]
    async fn a_fault_answers_its_code_a_fixed_message_and_the_request_id() {
        let (response, body) = call("/fault", Some("abc-1")).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            json!({"error": {"code": "storage_error", "message": "internal error", "request_id": "abc-1"}})
        );
        assert_eq!(header(&response, REQUEST_ID), "abc-1");
        assert!(response.extensions().get::<ApiError>().is_none(), "the detail stays in the log");
    }

    #[tokio::test]
    async fn bare_refusals_and_long_uris_are_answered_in_json() {
        let (response, body) = call("/bare", None).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(header(&response, CONTENT_TYPE), "application/json");
        assert_eq!(body["error"]["code"], "body_too_large");

        let long = format!("/ok?pad={}", "x".repeat(MAX_URI_BYTES));
        let (response, body) = call(&long, None).await;
        assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
        assert_eq!(body["error"]["code"], "uri_too_long");
        let (response, _) = call(&format!("/ok?pad={}", "x".repeat(MAX_URI_BYTES - 8)), None).await;
        assert_eq!(response.status(), StatusCode::OK, "up to the limit is fine");
    }

    #[tokio::test]
    async fn a_request_over_its_time_limit_gets_408() {
        let (response, body) = call("/slow", None).await;
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body["error"]["code"], "timeout");
        assert_eq!(body["error"]["message"], "the request took longer than 10ms");
    }
}
