//! Every error a route can answer with, mapped to its status and JSON body
//! here and nowhere else: `{"error": {"code": "not_found", "message": "run
//! 0193... not found"}}`.
//!
//! - A refusal (4xx) tells what is wrong precisely: its message, and details
//!   where there are more (a graph's mistakes).
//! - A server fault (5xx) tells its client only its code and the fixed
//!   message of its [`Fault`], with the request's id; what went wrong (which
//!   may name files, servers or queries) is logged under that id by the
//!   answer layer (`hygiene`), with its causes.
//!
//! The store's, the engine's and the runner's errors become an [`ApiError`]
//! through the `From` conversions below; the routes' own refusals are made
//! with [`ApiError::new`] and the helpers beside it.

use std::fmt::Display;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roomkit_graph::{EngineError, ErrorChain, GraphError};
use roomkit_graph_runner::RunnerError;
use roomkit_graph_store::StoreError;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// A refused or failed request.
///
/// ```
/// use axum::http::StatusCode;
/// use roomkit_graph_server::{ApiError, Fault};
///
/// let refused = ApiError::new(StatusCode::CONFLICT, "not_waiting", "run r1 is completed");
/// assert_eq!(refused.message(), "run r1 is completed");
///
/// // A server fault never carries its detail in its message.
/// let fault = ApiError::fault(Fault::Storage, "disk I/O error on /srv/runs.db");
/// assert_eq!((fault.status(), fault.code(), fault.message()), (StatusCode::INTERNAL_SERVER_ERROR, "storage_error", "internal error"));
/// assert_eq!(fault.detail(), Some("disk I/O error on /srv/runs.db"));
/// ```
#[derive(Clone, Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    /// What the client is told: for a fault, its fixed message.
    message: String,
    /// More about a refusal (the list of a graph's mistakes, say), boxed to
    /// keep the error small.
    details: Option<Box<Value>>,
    /// What went wrong behind a fault, for the log only.
    detail: Option<String>,
}

/// The kinds of server fault, each with its status, its code and the fixed
/// message its client is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 500 `internal_error`: a fault of the server itself.
    Internal,
    /// 500 `storage_error`: the database failed (a corrupt file, a query it
    /// refused, a file of another application).
    Storage,
    /// 503 `database_locked`: another process held the database too long.
    DatabaseLocked,
    /// 503 `database_unavailable`: the database cannot be reached for now.
    DatabaseUnavailable,
    /// 507 `database_full`: the disk or the file-size limit is full.
    DatabaseFull,
    /// 503 `too_many_streams`: every live event stream the server allows is
    /// open.
    TooManyStreams,
    /// 503 `unavailable`: a layer below the routes answered 503.
    Unavailable,
}

impl Fault {
    /// The status it is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Fault::Internal | Fault::Storage => StatusCode::INTERNAL_SERVER_ERROR,
            Fault::DatabaseLocked
            | Fault::DatabaseUnavailable
            | Fault::TooManyStreams
            | Fault::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Fault::DatabaseFull => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    /// Its stable, machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Fault::Internal => "internal_error",
            Fault::Storage => "storage_error",
            Fault::DatabaseLocked => "database_locked",
            Fault::DatabaseUnavailable => "database_unavailable",
            Fault::DatabaseFull => "database_full",
            Fault::TooManyStreams => "too_many_streams",
            Fault::Unavailable => "unavailable",
        }
    }

    /// What the client is told, whatever happened.
    pub fn message(self) -> &'static str {
        match self {
            Fault::Internal | Fault::Storage => "internal error",
            Fault::DatabaseLocked | Fault::DatabaseUnavailable | Fault::Unavailable => {
                "the service is unavailable for a moment: try again"
            }
            Fault::DatabaseFull => "the server is out of storage",
            Fault::TooManyStreams => "too many event streams are open: try again when one has ended",
        }
    }
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

impl ApiError {
    /// A refusal with this status (4xx), code and message. Given a 5xx
    /// status it makes a fault instead: the message is kept for the log
    /// and the client is told the fixed message of its status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        if status.is_server_error() {
            let fault =
                if status == StatusCode::SERVICE_UNAVAILABLE { Fault::Unavailable } else { Fault::Internal };
            return ApiError {
                status,
                code,
                message: fault.message().to_owned(),
                details: None,
                detail: Some(message),
            };
        }
        ApiError { status, code, message, details: None, detail: None }
    }

    /// A server fault of kind `fault`; `detail` (what went wrong) is only
    /// logged.
    pub fn fault(fault: Fault, detail: impl Display) -> Self {
        ApiError {
            status: fault.status(),
            code: fault.code(),
            message: fault.message().to_owned(),
            details: None,
            detail: Some(detail.to_string()),
        }
    }

    /// 404: what was asked for does not exist, or belongs to another
    /// organization (which is not told apart).
    pub fn not_found(what: impl Display) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// With details (a refusal's only: a fault tells nothing more).
    pub fn with_details(mut self, details: Value) -> Self {
        if !self.status.is_server_error() {
            self.details = Some(Box::new(details));
        }
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A stable, machine-readable code (`not_found`, `malformed_json`...).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// What the client is told: what is wrong for a refusal, the fixed
    /// message of a fault.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What went wrong behind a fault, for the log; none for a refusal.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The error for a refusal that came with nothing but its status (from
    /// the HTTP layers below the routes): a code and message for the status.
    ///
    /// ```
    /// use axum::http::StatusCode;
    /// use roomkit_graph_server::ApiError;
    ///
    /// let error = ApiError::for_status(StatusCode::URI_TOO_LONG);
    /// assert_eq!((error.code(), error.message()), ("uri_too_long", "the URI is longer than this server accepts"));
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
            status if status.is_server_error() => {
                let fault = if status == StatusCode::SERVICE_UNAVAILABLE {
                    Fault::Unavailable
                } else {
                    Fault::Internal
                };
                let detail = format!("answered {status} below the routes");
                return ApiError { status, ..ApiError::fault(fault, detail) };
            }
            _ => ("refused", "the request was refused"),
        };
        ApiError::new(status, code, message)
    }

    /// The JSON body of this error, with `request_id` when given.
    pub(crate) fn body(&self, request_id: Option<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
                details: self.details.as_deref().cloned(),
                request_id,
            },
        }
    }
}

impl IntoResponse for ApiError {
    /// The status and body; a fault also carries itself in the response's
    /// extensions, for the answer layer to log its detail with the request's
    /// id and to add that id to the body.
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body(None))).into_response();
        if self.status.is_server_error() {
            response.extensions_mut().insert(self);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    /// Each variant matched here and only here: a refusal keeps the store's
    /// message, a fault logs the error with its causes.
    fn from(error: StoreError) -> Self {
        let refused = |status, code| ApiError::new(status, code, error.to_string());
        let fault = |fault| ApiError::fault(fault, ErrorChain(&error));
        match &error {
            StoreError::NotFound { .. } => refused(StatusCode::NOT_FOUND, "not_found"),
            StoreError::Conflict { .. } => refused(StatusCode::CONFLICT, "conflict"),
            StoreError::Duplicate { .. } => refused(StatusCode::CONFLICT, "duplicate"),
            StoreError::Invalid { .. } => refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            StoreError::Locked { .. } => fault(Fault::DatabaseLocked),
            StoreError::Unavailable { .. } => fault(Fault::DatabaseUnavailable),
            StoreError::Full { .. } => fault(Fault::DatabaseFull),
            StoreError::NotADatabase { .. } | StoreError::Foreign { .. } | StoreError::Backend { .. } => {
                fault(Fault::Storage)
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

impl From<EngineError> for ApiError {
    /// What the engine refuses reaches a route only for a request it cannot
    /// take (trigger data or an answer past a limit, a state that does not
    /// fit its graph): 422, with the engine's message.
    fn from(error: EngineError) -> Self {
        let code = match &error {
            EngineError::Limit { .. } => "limit_exceeded",
            _ => "engine_refused",
        };
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, error.to_string())
    }
}

impl From<RunnerError> for ApiError {
    fn from(error: RunnerError) -> Self {
        let message = error.to_string();
        match error {
            RunnerError::Store(error) => error.into(),
            RunnerError::Graph(error) => error.into(),
            RunnerError::Engine(error) => error.into(),
            RunnerError::NotWaiting { .. } => ApiError::new(StatusCode::CONFLICT, "not_waiting", message),
            RunnerError::InvalidAnswer { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_answer", message)
            }
            RunnerError::Finished { .. } => ApiError::new(StatusCode::CONFLICT, "run_finished", message),
            RunnerError::CannotFork { .. } => ApiError::new(StatusCode::CONFLICT, "cannot_fork", message),
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

    /// The status, body and logged detail of a response.
    async fn answer(error: impl Into<ApiError>) -> (StatusCode, Value, Option<String>) {
        let response = error.into().into_response();
        let detail = response.extensions().get::<ApiError>().and_then(|e| e.detail().map(str::to_owned));
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        (status, serde_json::from_slice(&bytes).expect("a JSON body"), detail)
    }

    /// Every store error a real store cannot be made to return on demand:
    /// each fault's status, code and fixed message, its detail kept for the
    /// log only.
    #[tokio::test]
    async fn store_faults_answer_a_fixed_message_and_keep_the_detail_for_the_log() {
        let path = || "/var/lib/secret/runs.db".to_owned();
        let cases = [
            (
                StoreError::Locked("database is locked".into()),
                503,
                "database_locked",
                "the service is unavailable for a moment: try again",
            ),
            (
                StoreError::Unavailable("connection reset".into()),
                503,
                "database_unavailable",
                "the service is unavailable for a moment: try again",
            ),
            (StoreError::Full("disk full".into()), 507, "database_full", "the server is out of storage"),
            (StoreError::Backend("disk I/O error".into()), 500, "storage_error", "internal error"),
            (
                StoreError::NotADatabase { path: path(), detail: "file is not a database".into() },
                500,
                "storage_error",
                "internal error",
            ),
            (
                StoreError::Foreign { path: path(), detail: "user_version 9".into() },
                500,
                "storage_error",
                "internal error",
            ),
        ];
        for (error, status, code, message) in cases {
            let said = error.to_string();
            let (got, body, detail) = answer(error).await;
            assert_eq!(got.as_u16(), status, "{said}");
            assert_eq!(body, json!({"error": {"code": code, "message": message}}), "{said}");
            assert_eq!(detail.as_deref(), Some(said.as_str()), "the log has it all");
        }
    }

    /// Store refusals no route can be made to meet on a real store: a run
    /// moved by another process, a key taken, a request the store refuses.
    #[tokio::test]
    async fn store_refusals_keep_the_store_message() {
        let cases = [
            (
                StoreError::Conflict { run_id: "r1".into(), detail: "it is at version 4, not 3".into() },
                StatusCode::CONFLICT,
                "conflict",
                "conflict on run r1: it is at version 4, not 3",
            ),
            (
                StoreError::Duplicate { key: "k".into(), run_id: "r1".into(), same_request: true },
                StatusCode::CONFLICT,
                "duplicate",
                "a run with key \"k\" exists already: r1",
            ),
            (
                StoreError::Invalid("unknown status \"odd\"".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "invalid request: unknown status \"odd\"",
            ),
            (StoreError::NotFound("run r1".into()), StatusCode::NOT_FOUND, "not_found", "run r1 not found"),
        ];
        for (error, status, code, message) in cases {
            let (got, body, detail) = answer(error).await;
            assert_eq!((got, body), (status, json!({"error": {"code": code, "message": message}})));
            assert!(detail.is_none(), "a refusal is no fault");
        }
    }

    #[tokio::test]
    async fn a_refusal_tells_its_message_and_details_and_is_not_logged_as_a_fault() {
        let error = ApiError::bad_request("bad_query", "limit must be at least 1")
            .with_details(json!({"field": "limit"}));
        let (status, body, detail) = answer(error).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": {"code": "bad_query", "message": "limit must be at least 1",
                             "details": {"field": "limit"}}})
        );
        assert!(detail.is_none());
    }

    #[tokio::test]
    async fn a_fault_made_as_a_refusal_still_hides_its_text() {
        let error =
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "panicked at src/x.rs:4")
                .with_details(json!({"query": "SELECT secret"}));
        let (status, body, detail) = answer(error).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, json!({"error": {"code": "internal_error", "message": "internal error"}}));
        assert_eq!(detail.as_deref(), Some("panicked at src/x.rs:4"));
    }

    /// Runner refusals the HTTP tests cannot reach: a run finished between
    /// the check and the answer, and the engine's refusals.
    #[tokio::test]
    async fn runner_and_engine_refusals_keep_their_precise_messages() {
        let over = RunnerError::NotWaiting {
            run_id: "r1".into(),
            node_id: "review".into(),
            status: RunStatus::Completed,
            current: None,
        };
        let (status, body, _) = answer(over).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            body,
            json!({"error": {"code": "not_waiting", "message": "run r1 is not waiting on \"review\": it is completed"}})
        );

        let finished = RunnerError::Finished { run_id: "r1".into(), status: RunStatus::Cancelled };
        let (status, body, _) = answer(finished).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            body,
            json!({"error": {"code": "run_finished", "message": "run r1 is already cancelled"}})
        );

        let refused =
            RunnerError::Engine(EngineError::InvalidArgument("the state does not fit its graph".into()));
        let (status, body, _) = answer(refused).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            json!({"error": {"code": "engine_refused", "message": "the state does not fit its graph"}})
        );
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
            assert_eq!(error.status(), status);
            assert!(!error.code().is_empty() && !error.message().is_empty());
        }
        let gateway = ApiError::for_status(StatusCode::BAD_GATEWAY);
        assert_eq!(
            (gateway.status(), gateway.code(), gateway.message()),
            (StatusCode::BAD_GATEWAY, "internal_error", "internal error")
        );
        assert_eq!(ApiError::for_status(StatusCode::IM_A_TEAPOT).code(), "refused");
    }
}
