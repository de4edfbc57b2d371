//! Every error the API answers with, through the real router on a real
//! SQLite store in a temporary directory: the status and the whole JSON body
//! of each, from refusals that name what is wrong to server faults that tell
//! a fixed message and their request's id.
//!
//! Errors a real store cannot be made to return on demand (a conflict
//! between processes, a lost PostgreSQL connection) are pinned by the unit
//! tests of `src/error.rs`.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode};
use roomkit_graph::{Handlers, HumanHandler, Limits as GraphLimits};
use roomkit_graph_runner::Runner;
use roomkit_graph_server::{App, Limits, new_token, router};
use roomkit_graph_sqlite::{Options, SqliteStore};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// The API over a fresh database, with a token of `acme`.
struct Api {
    router: Router,
    runner: Runner,
    token: String,
    dir: tempfile::TempDir,
}

impl Api {
    async fn new() -> Api {
        Api::with(Options::default(), Limits::default(), GraphLimits::default()).await
    }

    async fn with(options: Options, limits: Limits, graph_limits: GraphLimits) -> Api {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open_with(dir.path().join("runs.db"), options).expect("a new database");
        let handlers = Handlers::builtin().with("human", HumanHandler);
        let runner = Runner::new(store, handlers).with_limits(graph_limits);
        let made = new_token("acme", None);
        runner.store().create_token(&made.record).await.expect("the token is stored");
        let router = router(App::new(runner.clone(), limits));
        Api { router, runner, token: made.token, dir }
    }

    /// Sends a request with the token and `body` as JSON.
    async fn send(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.token));
        self.call(request, body).await
    }

    /// Sends `request` with `body` as JSON; the status and the JSON body.
    async fn call(&self, request: axum::http::request::Builder, body: Option<Value>) -> (StatusCode, Value) {
        let request = match body {
            Some(body) => {
                request.header("content-type", "application/json").body(Body::from(body.to_string()))
            }
            None => request.body(Body::empty()),
        };
        self.answer(request.expect("a request")).await
    }

    /// Sends `request`; the status and the JSON body.
    async fn answer(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(request).await.expect("an answer");
        let status = response.status();
        let request_id =
            response.headers().get("x-request-id").and_then(|id| id.to_str().ok()).map(str::to_owned);
        let bytes = to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        // An empty body (204) reads as null.
        let body: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON body") };
        // A fault's id is the one in its header.
        if let (Some(given), Some(header)) = (body.pointer("/error/request_id").cloned(), request_id) {
            assert_eq!(given, header.as_str(), "the body's request id is the header's");
        }
        (status, body)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Method::GET, uri, None).await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, uri, Some(body)).await
    }

    /// Stores the approval graph and starts a run of it, waiting on
    /// `review`: its id.
    async fn waiting_run(&self) -> String {
        let (status, _) = self.post("/v1/graphs", approval_graph()).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, run) = self.post("/v1/graphs/approve/runs", json!({"title": "ship"})).await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        let run_id = run["run_id"].as_str().expect("a run id").to_owned();
        for _ in 0..500 {
            let (_, run) = self.get(&format!("/v1/runs/{run_id}")).await;
            if run["status"] == "waiting" {
                return run_id;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("run {run_id} never waited");
    }
}

/// start -> review (a person approves or rejects) -> end.
fn approval_graph() -> Value {
    json!({
        "id": "approve", "name": "Approve", "trigger": {"type": "manual"},
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "review", "type": "human", "config": {"prompt": "Ship?", "actions": ["approve", "reject"]}},
            {"id": "end", "type": "end"}
        ],
        "edges": [{"source": "start", "target": "review"}, {"source": "review", "target": "end"}]
    })
}

fn refusal(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

#[tokio::test]
async fn what_does_not_exist_or_belongs_to_another_organization_is_not_found() {
    let api = Api::new().await;
    assert_eq!(
        api.get("/v1/runs/r-none").await,
        (StatusCode::NOT_FOUND, refusal("not_found", "run r-none not found"))
    );
    assert_eq!(
        api.get("/v1/graphs/none").await,
        (StatusCode::NOT_FOUND, refusal("not_found", "graph none not found"))
    );

    // Another organization's run reads as no run at all.
    let run_id = api.waiting_run().await;
    let other = new_token("globex", None);
    api.runner.store().create_token(&other.record).await.expect("stored");
    let request =
        Request::get(format!("/v1/runs/{run_id}")).header("authorization", format!("Bearer {}", other.token));
    let expected = refusal("not_found", &format!("run {run_id} not found"));
    assert_eq!(api.call(request, None).await, (StatusCode::NOT_FOUND, expected));

    assert_eq!(api.get("/v1/nothing").await, (StatusCode::NOT_FOUND, refusal("no_route", "no such route")));
    assert_eq!(
        api.send(Method::DELETE, "/v1/runs", None).await,
        (
            StatusCode::METHOD_NOT_ALLOWED,
            refusal("method_not_allowed", "this route does not take this method")
        )
    );
    api.runner.shutdown().await;
}

#[tokio::test]
async fn a_request_without_a_valid_token_is_unauthorized() {
    let api = Api::new().await;
    let unauthorized = |message| (StatusCode::UNAUTHORIZED, refusal("unauthorized", message));
    assert_eq!(
        api.call(Request::get("/v1/runs"), None).await,
        unauthorized("the request needs an Authorization: Bearer <token> header")
    );
    assert_eq!(
        api.call(Request::get("/v1/runs").header("authorization", "Basic YTpi"), None).await,
        unauthorized("the Authorization header is not \"Bearer <token>\"")
    );
    assert_eq!(
        api.call(Request::get("/v1/runs").header("authorization", "Bearer rkg_unknown"), None).await,
        unauthorized("the token is not valid")
    );
    api.runner.shutdown().await;
}

#[tokio::test]
async fn answers_the_run_cannot_take_are_refused_naming_why() {
    let api = Api::new().await;
    let run_id = api.waiting_run().await;
    let answer = format!("/v1/runs/{run_id}/answer");

    // A node the run does not wait on: the engine's refusal.
    let (status, body) = api.post(&answer, json!({"node_id": "start", "data": {}})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body,
        refusal(
            "not_waiting",
            &format!("run {run_id} is not waiting on \"start\": it is waiting on \"review\"")
        )
    );

    // An action the node does not offer.
    let (status, body) = api.post(&answer, json!({"node_id": "review", "data": {"action": "maybe"}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body,
        refusal(
            "invalid_answer",
            &format!(
                "answer refused for \"review\" of run {run_id}: action \"maybe\" is not one of approve, reject"
            )
        )
    );

    // A run that is over takes no answer and no second cancel.
    let (status, _) = api.post(&format!("/v1/runs/{run_id}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let over = format!("run {run_id} is not waiting on \"review\": it is cancelled on \"review\"");
    assert_eq!(
        api.post(&answer, json!({"node_id": "review", "data": {"action": "approve"}})).await,
        (StatusCode::CONFLICT, refusal("not_waiting", &over))
    );
    assert_eq!(
        api.post(&format!("/v1/runs/{run_id}/cancel"), json!({})).await,
        (StatusCode::CONFLICT, refusal("run_finished", &format!("run {run_id} is already cancelled")))
    );
    api.runner.shutdown().await;
}

#[tokio::test]
async fn bad_requests_are_refused_with_their_precise_message() {
    let limits = GraphLimits { output_bytes: 64, ..GraphLimits::default() };
    let api = Api::with(Options::default(), Limits::default(), limits).await;

    // A graph with mistakes: each one in the details.
    let mut graph = approval_graph();
    graph["edges"] = json!([{"source": "start", "target": "nowhere"}]);
    let (status, body) = api.post("/v1/graphs", graph).await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("invalid_graph")));
    assert!(body["error"]["details"]["errors"].as_array().is_some_and(|errors| !errors.is_empty()), "{body}");

    // A schedule that cannot fire, though the runner was built without
    // checks: the API fires triggers, so it checks them.
    let mut nightly = approval_graph();
    nightly["id"] = json!("nightly");
    nightly["trigger"] = json!({"type": "scheduled", "schedule": {"cron": "not a cron", "timezone": "UTC"}});
    let (status, body) = api.post("/v1/graphs", nightly.clone()).await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("invalid_graph")));
    let found = &body["error"]["details"]["errors"];
    assert_eq!(
        (&found[0]["code"], &found[0]["field"]),
        (&json!("invalid_trigger"), &json!("trigger.schedule.cron"))
    );
    assert_eq!(api.post("/v1/graphs/validate", nightly).await.1["errors"], *found, "validate finds the same");
    assert!(api.runner.checks().has::<roomkit_graph_triggers::TriggerCheck>(), "the API added it");

    // A graph that exists already.
    assert_eq!(api.post("/v1/graphs", approval_graph()).await.0, StatusCode::CREATED);
    assert_eq!(
        api.post("/v1/graphs", approval_graph()).await,
        (
            StatusCode::CONFLICT,
            refusal(
                "graph_exists",
                "graph approve exists already: PUT /v1/graphs/approve stores a new version"
            )
        )
    );

    // Trigger data past the output limit: the engine refuses it.
    let (status, body) = api.post("/v1/graphs/approve/runs", json!({"text": "x".repeat(100)})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("limit_exceeded")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("the trigger data") && message.contains("64"), "{message}");

    // The same Idempotency-Key with another body.
    let keyed = |title: &str| {
        let request = Request::post("/v1/graphs/approve/runs")
            .header("authorization", format!("Bearer {}", api.token))
            .header("idempotency-key", "k1");
        api.call(request, Some(json!({"t": title})))
    };
    let (status, first) = keyed("a").await;
    assert_eq!(status, StatusCode::CREATED);
    let run_id = first["run_id"].as_str().unwrap_or_default();
    assert_eq!(
        keyed("b").await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            refusal(
                "idempotency_key_reused",
                &format!(
                    "this Idempotency-Key started run {run_id} with another body: a new request needs a new key"
                )
            )
        )
    );

    // Queries, cursors and bodies.
    assert_eq!(
        api.get("/v1/runs?limit=0").await,
        (StatusCode::BAD_REQUEST, refusal("bad_query", "limit must be at least 1"))
    );
    assert_eq!(api.get("/v1/runs?cursor=nonsense").await.1["error"]["code"], "bad_cursor");
    let request = Request::post("/v1/graphs")
        .header("authorization", format!("Bearer {}", api.token))
        .header("content-type", "application/json");
    let (status, body) = api.answer(request.body(Body::from("{\"id\": ")).expect("a request")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        refusal("malformed_json", "the body is not valid JSON: EOF while parsing a value at line 1 column 7")
    );
    api.runner.shutdown().await;
}

#[tokio::test]
async fn webhooks_without_a_secret_or_with_a_bad_signature_are_unauthorized() {
    let api = Api::new().await;
    let mut graph = approval_graph();
    graph["trigger"] = json!({"type": "webhook", "source_type": "github"});
    assert_eq!(api.post("/v1/graphs", graph).await.0, StatusCode::CREATED);

    let delivery = || Request::post("/v1/hooks/acme/approve").header("x-hub-signature-256", "sha256=00");
    let (status, body) = api.call(delivery(), Some(json!({"issue": 1}))).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::UNAUTHORIZED, &json!("no_webhook_secret")),
        "{body}"
    );

    let (status, _) =
        api.send(Method::PUT, "/v1/graphs/approve/webhook-secret", Some(json!({"secret": "s3cret"}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.call(delivery(), Some(json!({"issue": 1}))).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::UNAUTHORIZED, &json!("bad_signature")),
        "{body}"
    );

    let unknown = Request::post("/v1/hooks/acme/none");
    assert_eq!(
        api.call(unknown, Some(json!({}))).await,
        (StatusCode::NOT_FOUND, refusal("not_found", "webhook for graph none not found"))
    );
    api.runner.shutdown().await;
}

/// A fault's body: its code, fixed message and request id, which the
/// helper checks against the header.
fn fault(body: &Value, code: &str, message: &str) {
    let id = body["error"]["request_id"].as_str().expect("a fault names its request");
    assert_eq!(body, &json!({"error": {"code": code, "message": message, "request_id": id}}));
}

#[tokio::test]
async fn a_database_that_fails_answers_500_with_a_fixed_message() {
    let api = Api::new().await;
    assert_eq!(api.get("/v1/runs").await.0, StatusCode::OK, "the token is known before the database breaks");
    let other = rusqlite::Connection::open(api.dir.path().join("runs.db")).expect("the database opens");
    other.execute_batch("DROP TABLE graphs").expect("the table goes");

    let (status, body) = api.get("/v1/graphs").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    fault(&body, "storage_error", "internal error");
    assert!(!body.to_string().contains("graphs"), "no word of the query: {body}");
    api.runner.shutdown().await;
}

#[tokio::test]
async fn a_database_locked_by_another_process_answers_503() {
    let options = Options { busy_timeout: Duration::from_millis(50), ..Options::default() };
    let api = Api::with(options, Limits::default(), GraphLimits::default()).await;
    assert_eq!(api.get("/v1/runs").await.0, StatusCode::OK, "the token is known before the lock");
    let other = rusqlite::Connection::open(api.dir.path().join("runs.db")).expect("the database opens");
    other.execute_batch("BEGIN EXCLUSIVE").expect("the lock is taken");

    let (status, body) = api.post("/v1/graphs", approval_graph()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    fault(&body, "database_locked", "the service is unavailable for a moment: try again");

    other.execute_batch("COMMIT").expect("the lock is let go");
    assert_eq!(
        api.post("/v1/graphs", approval_graph()).await.0,
        StatusCode::CREATED,
        "nothing was stored before"
    );
    api.runner.shutdown().await;
}

#[tokio::test]
async fn a_full_database_answers_507() {
    let options = Options { max_size_bytes: Some(256 * 1024), ..Options::default() };
    let api = Api::with(options, Limits::default(), GraphLimits::default()).await;
    // Graphs with a long prompt each, until the file is full.
    let mut answered = Vec::new();
    for n in 0..40 {
        let mut graph = approval_graph();
        graph["id"] = json!(format!("g{n}"));
        graph["nodes"][1]["config"]["prompt"] = json!("x".repeat(60_000));
        let (status, body) = api.post("/v1/graphs", graph).await;
        answered.push(status);
        if status != StatusCode::CREATED {
            assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
            fault(&body, "database_full", "the server is out of storage");
            break;
        }
    }
    assert_eq!(answered.last(), Some(&StatusCode::INSUFFICIENT_STORAGE), "{answered:?}");
    api.runner.shutdown().await;
}

#[tokio::test]
async fn an_event_stream_past_the_limit_answers_503() {
    let limits = Limits { max_event_streams: 0, ..Limits::default() };
    let api = Api::with(Options::default(), limits, GraphLimits::default()).await;
    let run_id = api.waiting_run().await;
    let (status, body) = api.get(&format!("/v1/runs/{run_id}/events")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    fault(&body, "too_many_streams", "too many event streams are open: try again when one has ended");
    api.runner.shutdown().await;
}
