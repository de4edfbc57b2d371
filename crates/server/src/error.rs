//! Every refusal as a status code and a precise JSON body:
//! `{"error": {"code": "not_found", "message": "run 0193... not found"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roomkit_graph::GraphError;
use roomkit_graph_runner::RunnerError;
use roomkit_graph_store::StoreError;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// A refused or failed request.
#[derive(Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code (`not_found`, `malformed_json`...).
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
    /// More about it (the list of a graph's mistakes, say).
    pub details: Option<Value>,
}

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code.
    pub code: String,
    /// What is wrong, for a person.
    pub message: String,
    /// More about it, when there is more.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: None }
    }

    /// 404: what was asked for does not exist, or belongs to another
    /// organization (which is not told apart).
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// With details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail { code: self.code.to_owned(), message: self.message, details: self.details },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        match error {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            StoreError::Duplicate { .. } => ApiError::new(StatusCode::CONFLICT, "duplicate", message),
            StoreError::Invalid(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
            }
            StoreError::Locked(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database_locked", message)
            }
            StoreError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", message)
            }
            StoreError::Full(_) => ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "database_full", message),
            StoreError::NotADatabase { .. } | StoreError::Foreign { .. } | StoreError::Backend(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_error", message)
            }
        }
    }
}

impl From<GraphError> for ApiError {
    fn from(error: GraphError) -> Self {
        match error {
            GraphError::Invalid(errors) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_graph",
                format!("the graph has {} mistake(s)", errors.len()),
            )
            .with_details(json!({ "errors": errors })),
            other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_graph", other.to_string()),
        }
    }
}

impl From<RunnerError> for ApiError {
    fn from(error: RunnerError) -> Self {
        let message = error.to_string();
        match error {
            RunnerError::Store(error) => error.into(),
            RunnerError::Graph(error) => error.into(),
            RunnerError::Engine(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "engine_refused", message)
            }
            RunnerError::NotWaiting { .. } => ApiError::new(StatusCode::CONFLICT, "not_waiting", message),
            RunnerError::InvalidAnswer { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_answer", message)
            }
            RunnerError::Finished { .. } => ApiError::new(StatusCode::CONFLICT, "run_finished", message),
        }
    }
}
