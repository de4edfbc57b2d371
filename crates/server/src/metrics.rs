//! What the API counts, through the `metrics` facade (kept only when the
//! process installs a recorder): requests by method, route (its pattern,
//! never the ids in it) and status, and how long they took to answer.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Requests answered, by method, route and status.
pub const HTTP_REQUESTS: &str = "roomkit_http_requests_total";

/// How long a request took until its answer's head, by method and route.
pub const HTTP_SECONDS: &str = "roomkit_http_request_duration_seconds";

/// Counts and times a request routed to one of the API's routes.
pub(crate) async fn observe(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        _ => "other",
    };
    let began = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_SECONDS, "method" => method, "route" => route)
        .record(began.elapsed().as_secs_f64());
    response
}
