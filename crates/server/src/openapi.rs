//! The OpenAPI document of the HTTP API, generated from the handlers.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{error, events, graphs, hooks, runs};

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "roomkit-graph", description = "Workflow graphs whose runs read like a conversation: \
        graphs, runs, their transcripts live over Server-Sent Events, and triggers."),
    paths(
        graphs::create, graphs::put_version, graphs::list, graphs::get, graphs::validate,
        graphs::set_secret, graphs::delete_secret,
        runs::start, runs::list, runs::get, runs::transcript, runs::cancel, runs::answer,
        events::events, hooks::webhook, hooks::event,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
    modifiers(&BearerAuth),
    tags((name = "graphs", description = "Graphs and their versions"),
        (name = "runs", description = "Runs: each a room with a transcript"),
        (name = "triggers", description = "What starts runs by itself")),
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

/// Serves the document.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
