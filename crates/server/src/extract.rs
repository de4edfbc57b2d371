//! Extractors whose refusals are [`ApiError`]s with precise JSON bodies,
//! where axum's own would answer in plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body: malformed JSON is a 400 naming the line and column, JSON of
/// the wrong shape a 422 naming the field, a body over the limit a 413.
pub(crate) struct JsonBody<T>(pub(crate) T);

/// A JSON body that may be empty (then `None`).
pub(crate) struct OptionalJsonBody<T>(pub(crate) Option<T>);

/// The query string, read into `T`; a bad one is a 400.
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match OptionalJsonBody::<T>::from_request(request, state).await? {
            OptionalJsonBody(Some(value)) => Ok(JsonBody(value)),
            OptionalJsonBody(None) => {
                Err(ApiError::bad_request("missing_body", "the request needs a JSON body"))
            }
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        parse(&bytes).map(|value| OptionalJsonBody(Some(value)))
    }
}

/// Reads JSON text into `T`: a syntax error is a 400, a shape error a 422.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("the body does not fit: {error}"),
        ),
        _ => ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {error}")),
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri).map(|Query(value)| QueryParams(value)).map_err(|rejection| {
            ApiError::bad_request(
                "bad_query",
                format!("the query string is not valid: {}", rejection.body_text()),
            )
        })
    }
}

/// The whole body, within the router's body limit.
pub(crate) async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "body_too_large", "the body is larger than this server accepts")
        } else {
            ApiError::new(status, "unreadable_body", rejection.body_text())
        }
    })
}
