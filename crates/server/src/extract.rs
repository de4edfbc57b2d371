//! Extractors whose refusals are [`ApiError`]s with precise JSON bodies,
//! where axum's own would answer in plain text.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use roomkit_graph::Limits;

use crate::App;
use crate::error::{ApiError, Fault, plain_words};

/// A JSON body sent as `Content-Type: application/json` (else 415):
/// malformed JSON is a 400 naming the line and column, JSON of the wrong
/// shape a 422 naming the field, a body over the limit a 413.
pub(crate) struct JsonBody<T>(pub(crate) T);

/// A JSON body that may be empty (then `None`, whatever the Content-Type).
pub(crate) struct OptionalJsonBody<T>(pub(crate) Option<T>);

/// The query string, read into `T`; a bad one is a 400.
pub(crate) struct QueryParams<T>(pub(crate) T);

/// The path's parameters, read into `T`; one that is not UTF-8 text once
/// percent-decoded is a 400.
pub(crate) struct PathParams<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<App> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &App) -> Result<Self, ApiError> {
        match OptionalJsonBody::<T>::from_request(request, state).await? {
            OptionalJsonBody(Some(value)) => Ok(JsonBody(value)),
            OptionalJsonBody(None) => {
                Err(ApiError::bad_request("missing_body", "the request needs a JSON body"))
            }
        }
    }
}

impl<T: DeserializeOwned> FromRequest<App> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &App) -> Result<Self, ApiError> {
        let is_json = is_json(request.headers());
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        if !is_json {
            return Err(ApiError::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        parse(&bytes, &state.runner.limits()).map(|value| OptionalJsonBody(Some(value)))
    }
}

/// Whether the request says its body is JSON: `application/json`, in any
/// case, with or without parameters (`; charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Reads JSON text into `T`: JSON nested deeper than `limits` allow is a 400
/// (`too_deep`), a syntax error a 400, a shape error a 422.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8], limits: &Limits) -> Result<T, ApiError> {
    limits
        .check_text(bytes)
        .map_err(|error| ApiError::bad_request("too_deep", format!("the body {error}")))?;
    serde_json::from_slice(bytes).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("the body does not fit: {}", plain_words(&error.to_string())),
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
                format!("the query string is not valid: {}", plain_words(&rejection.body_text())),
            )
        })
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PathParams(value)),
            Err(PathRejection::FailedToDeserializePathParams(error)) => Err(match error.kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => ApiError::bad_request(
                    "bad_path",
                    format!("the path's {key} is not UTF-8 text once percent-decoded"),
                ),
                _ => ApiError::bad_request("bad_path", "the path's parameters are not valid"),
            }),
            Err(rejection) => Err(ApiError::fault(
                Fault::Internal,
                format!("path parameters missing: {}", rejection.body_text()),
            )),
        }
    }
}

/// The whole body, within the router's body limit.
pub(crate) async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::for_status(status)
        } else {
            ApiError::new(status, "unreadable_body", "the body could not be read to its end")
        }
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn json_is_application_json_with_any_parameters_in_any_case() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("application/json; charset=utf-8"));
        assert!(with("Application/JSON"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!with("application/jsonp"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
