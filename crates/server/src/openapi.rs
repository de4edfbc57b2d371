//! The OpenAPI document of the HTTP API, generated from the handlers.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::{drawings, error, events, graphs, hooks, inbox, runs, subscriptions};

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "roomkit-graph", description = "Workflow graphs whose runs read like a conversation: \
        graphs, runs, their transcripts live over Server-Sent Events, and triggers."),
    paths(
        graphs::create, graphs::put_version, graphs::list, graphs::get, graphs::versions, graphs::validate,
        graphs::set_secret, graphs::delete_secret, graphs::delete_version, drawings::graph, drawings::posted, drawings::run,
        runs::start, runs::list, runs::get, runs::transcript, runs::state, runs::fork, runs::cancel, runs::answer, runs::delete, inbox::inbox,
        events::events, hooks::webhook, hooks::event,
        subscriptions::create, subscriptions::list, subscriptions::remove, subscriptions::deliveries,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
    modifiers(&BearerAuth, &CommonErrors),
    tags((name = "graphs", description = "Graphs and their versions"),
        (name = "runs", description = "Runs: each a room with a transcript"),
        (name = "triggers", description = "What starts runs by itself"),
        (name = "hooks", description = "Run-event hooks: another system told when runs complete, fail, wait or are cancelled")),
)]
pub struct ApiDoc;

/// Declares the bearer token scheme the operations name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Documents the refusals every operation may answer: a malformed request
/// (400), a missing or wrong token (401), a request over the time limit
/// (408), a body over the limit (413), a body that is not JSON (415), a body
/// or graph that does not fit (422), a server fault (500) and a database that
/// is busy, out of reach or full (503, 507).
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let common = [
            ("400", "A malformed request: JSON, query, path or header"),
            ("401", "No token, or a token that is not valid"),
            ("408", "The request took longer than the server's request timeout"),
            ("413", "The body is larger than the server accepts"),
            ("415", "The body is not sent as Content-Type: application/json"),
            ("422", "The body does not fit what the operation takes"),
            ("500", "A server fault: a fixed message and the request's id, whose log tells more"),
            ("503", "The database is locked by another process, or out of reach"),
            ("507", "The database cannot grow"),
        ];
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                let takes_body = operation.request_body.is_some();
                // A webhook's sender chooses its Content-Type: the body is read as JSON whatever it says.
                let typed_body = takes_body && operation.operation_id.as_deref() != Some("deliverWebhook");
                for (status, description) in common {
                    if (status == "413" && !takes_body) || (status == "415" && !typed_body) {
                        continue;
                    }
                    operation.responses.responses.entry(status.to_owned()).or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(description)
                            .content(
                                "application/json",
                                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                            )
                            .into()
                    });
                }
            }
        }
    }
}

/// Serves the document.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
