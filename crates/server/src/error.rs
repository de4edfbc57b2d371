//! Every refusal as a status code and a precise JSON body:
//! `{"error": {"code": "not_found", "message": "run 0193... not found"}}`.
//!
//! A server fault (5xx) tells the client only its code and a fixed message,
//! with the request's id; what went wrong is logged under that id
//! ([`Fault`], written out by the answer layer in `hygiene`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roomkit_graph::{EngineError, GraphError};
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
    /// What is wrong, for a person. For a server fault (5xx) it is logged,
    /// and the client gets a fixed message instead.
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
    /// The request's id (also in the `X-Request-Id` header), given with
    /// server faults: the server's log tells what happened under it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// What a server fault keeps from its client, attached to the response for
/// the answer layer to log with the request's id.
#[derive(Clone, Debug)]
pub(crate) struct Fault {
    /// The error's code, kept in the answer.
    pub(crate) code: &'static str,
    /// What went wrong, for the log only.
    pub(crate) detail: String,
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

    /// The error for a refusal that came with nothing but its status (from
    /// the HTTP layers below the routes): a code and message for the status.
    ///
    /// ```
    /// use axum::http::StatusCode;
    /// use roomkit_graph_server::ApiError;
    ///
    /// let error = ApiError::for_status(StatusCode::URI_TOO_LONG);
    /// assert_eq!((error.code, error.message.as_str()), ("uri_too_long", "the URI is longer than this server accepts"));
    /// ```
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::BAD_REQUEST => ("bad_request", "the request is malformed"),
            StatusCode::UNAUTHORIZED => ("unauthorized", "the request needs a valid token"),
            StatusCode::NOT_FOUND => ("no_route", "no such route"),
            StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this route does not take this method"),
            StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
            StatusCode::PAYLOAD_TOO_LARGE => {
                ("body_too_large", "the body is larger than this server accepts")
            }
            StatusCode::URI_TOO_LONG => ("uri_too_long", "the URI is longer than this server accepts"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("unsupported_media_type", "the body must be JSON, sent as Content-Type: application/json")
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                ("invalid_body", "the body does not fit what the route takes")
            }
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                ("headers_too_large", "the request's headers are larger than this server accepts")
            }
            StatusCode::SERVICE_UNAVAILABLE => ("unavailable", fault_message(status)),
            status if status.is_server_error() => ("internal_error", fault_message(status)),
            _ => ("refused", "the request was refused"),
        };
        ApiError::new(status, code, message)
    }

    /// The JSON body of this error, with `request_id` when given. A server
    /// fault's body has its fixed message, never its detail.
    pub(crate) fn body(&self, request_id: Option<String>) -> ErrorBody {
        let (message, details) = if self.status.is_server_error() {
            (fault_message(self.status).to_owned(), None)
        } else {
            (self.message.clone(), self.details.clone())
        };
        ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message, details, request_id } }
    }
}

/// What the client of a server fault is told, by status: never the detail,
/// which may name files, servers or queries.
pub(crate) fn fault_message(status: StatusCode) -> &'static str {
    match status {
        StatusCode::SERVICE_UNAVAILABLE => "the service is unavailable for a moment: try again",
        StatusCode::INSUFFICIENT_STORAGE => "the server is out of storage",
        _ => "internal error",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body(None))).into_response();
        if self.status.is_server_error() {
            response.extensions_mut().insert(Fault { code: self.code, detail: self.message });
        }
        response
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
            other => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_graph",
                plain_words(&other.to_string()),
            ),
        }
    }
}

impl From<RunnerError> for ApiError {
    fn from(error: RunnerError) -> Self {
        let message = error.to_string();
        match error {
            RunnerError::Store(error) => error.into(),
            RunnerError::Graph(error) => error.into(),
            RunnerError::Engine(EngineError::Limit { .. }) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded", message)
            }
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

/// A message of serde's in plain words: the Rust type it names (`struct`
/// and a name in UpperCamelCase, with the count of its fields if given)
/// becomes "a JSON object": `expected struct AnswerBody` reads `expected a
/// JSON object`, and so does `expected struct GraphJson with 8 elements`.
pub(crate) fn plain_words(message: &str) -> String {
    let mut plain = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("struct ") {
        plain.push_str(&rest[..at]);
        let after = &rest[at + "struct ".len()..];
        let name = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        // Rust type names are written in UpperCamelCase.
        if !after.starts_with(|c: char| c.is_ascii_uppercase()) {
            plain.push_str("struct ");
            rest = after;
            continue;
        }
        plain.push_str("a JSON object");
        rest = &after[name..];
        // "... with 8 elements": the count of the struct's fields.
        if let Some(count) = rest.strip_prefix(" with ") {
            let digits = count.find(|c: char| !c.is_ascii_digit()).unwrap_or(count.len());
            if digits > 0 {
                let tail = &count[digits..];
                rest =
                    tail.strip_prefix(" elements").or_else(|| tail.strip_prefix(" element")).unwrap_or(rest);
            }
        }
    }
    plain.push_str(rest);
    // Rust's number types, as serde names them.
    for (rust, words) in [
        ("expected u64", "expected a whole number of 0 or more"),
        ("expected u32", "expected a whole number of 0 or more"),
        ("expected u16", "expected a whole number of 0 or more"),
        ("expected usize", "expected a whole number of 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
    ] {
        plain = plain.replace(rust, words);
    }
    plain
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use roomkit_graph_store::RunStatus;

    use super::*;

    /// The status, body and fault of a response.
    async fn answer(error: impl Into<ApiError>) -> (StatusCode, Value, Option<Fault>) {
        let response = error.into().into_response();
        let fault = response.extensions().get::<Fault>().cloned();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        (status, serde_json::from_slice(&bytes).expect("a JSON body"), fault)
    }

    #[tokio::test]
    async fn store_errors_map_to_their_status_and_code() {
        let cases = [
            (StoreError::NotFound("run 7".into()), StatusCode::NOT_FOUND, "not_found"),
            (StoreError::Invalid("no".into()), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            (StoreError::Locked("busy".into()), StatusCode::SERVICE_UNAVAILABLE, "database_locked"),
            (StoreError::Unavailable("gone".into()), StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            (StoreError::Full("disk".into()), StatusCode::INSUFFICIENT_STORAGE, "database_full"),
            (
                StoreError::Backend("disk I/O error".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage_error",
            ),
        ];
        for (error, status, code) in cases {
            let (got, body, _) = answer(error).await;
            assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)));
        }
        let (_, body, _) = answer(StoreError::NotFound("run 7".into())).await;
        assert_eq!(body["error"]["message"], "run 7 not found");
    }

    #[tokio::test]
    async fn a_server_fault_keeps_its_code_and_hides_its_detail_for_the_log() {
        let (status, body, fault) =
            answer(StoreError::Backend("cannot open /var/lib/secret/runs.db: disk I/O error".into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, json!({"error": {"code": "storage_error", "message": "internal error"}}));
        let fault = fault.expect("the detail is kept for the log");
        assert_eq!(fault.code, "storage_error");
        assert!(fault.detail.contains("/var/lib/secret/runs.db"), "{}", fault.detail);

        let (status, body, fault) = answer(StoreError::Locked("database is locked".into())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["message"], "the service is unavailable for a moment: try again");
        assert!(fault.is_some());
    }

    #[tokio::test]
    async fn a_refusal_tells_its_message_and_details_and_is_not_logged_as_a_fault() {
        let error = ApiError::bad_request("bad_query", "limit must be at least 1")
            .with_details(json!({"field": "limit"}));
        let (status, body, fault) = answer(error).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": {"code": "bad_query", "message": "limit must be at least 1",
                             "details": {"field": "limit"}}})
        );
        assert!(fault.is_none());
    }

    #[tokio::test]
    async fn runner_refusals_are_conflicts_or_unfit_answers_in_plain_words() {
        let not_waiting = RunnerError::NotWaiting {
            run_id: "r1".into(),
            node_id: "review".into(),
            status: RunStatus::Waiting,
            current: Some("approve".into()),
        };
        let (status, body, _) = answer(not_waiting).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("not_waiting")));
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(message, "run r1 is not waiting on \"review\": it is waiting on \"approve\"");

        let over = RunnerError::NotWaiting {
            run_id: "r1".into(),
            node_id: "review".into(),
            status: RunStatus::Completed,
            current: None,
        };
        let (_, body, _) = answer(over).await;
        assert_eq!(body["error"]["message"], "run r1 is not waiting on \"review\": it is completed");

        let finished = RunnerError::Finished { run_id: "r1".into(), status: RunStatus::Cancelled };
        let (status, body, _) = answer(finished).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("run_finished")));
        let unfit =
            RunnerError::InvalidAnswer { run_id: "r1".into(), node_id: "review".into(), reason: "no".into() };
        assert_eq!(answer(unfit).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[tokio::test]
    async fn a_graph_that_is_not_an_object_is_refused_without_rust_names() {
        let error = roomkit_graph::Graph::from_value(json!([1, 2])).expect_err("not a graph");
        let (status, body, _) = answer(error).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_graph"))
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.contains("struct") && !message.contains("Json"), "{message}");
    }

    #[test]
    fn serde_messages_name_no_rust_type() {
        assert_eq!(
            plain_words("invalid type: integer `1`, expected struct AnswerBody at line 1 column 1"),
            "invalid type: integer `1`, expected a JSON object at line 1 column 1"
        );
        assert_eq!(
            plain_words("invalid length 2, expected struct GraphJson with 8 elements"),
            "invalid length 2, expected a JSON object"
        );
        assert_eq!(plain_words("expected struct Edge with 1 element"), "expected a JSON object");
        assert_eq!(plain_words("missing field `node_id`"), "missing field `node_id`");
        assert_eq!(plain_words("the struct is fine"), "the struct is fine");
    }

    #[test]
    fn bare_statuses_get_a_code_and_a_message() {
        for status in [
            StatusCode::BAD_REQUEST,
            StatusCode::NOT_FOUND,
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::URI_TOO_LONG,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            StatusCode::GATEWAY_TIMEOUT,
        ] {
            let error = ApiError::for_status(status);
            assert_eq!(error.status, status);
            assert!(!error.code.is_empty() && !error.message.is_empty());
        }
        assert_eq!(ApiError::for_status(StatusCode::BAD_GATEWAY).code, "internal_error");
        assert_eq!(ApiError::for_status(StatusCode::IM_A_TEAPOT).code, "refused");
    }
}
