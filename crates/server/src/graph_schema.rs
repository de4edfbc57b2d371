//! The OpenAPI schema of a graph as the API takes and gives it: the format of
//! the graph files (`Graph`, with its `Node`s, `Edge`s, `Condition`s and
//! `Trigger`). It describes the shape; what a shape-valid graph may still
//! get wrong (an edge to an unknown node, say) the server answers with 422.
//! Node and condition types are open: custom node types are allowed, and a
//! condition of an unknown type is kept (and evaluates false).

use std::borrow::Cow;

use serde_json::{Value, json};
use utoipa::openapi::schema::{Object, Schema};
use utoipa::openapi::{RefOr, Type};
use utoipa::{PartialSchema, ToSchema};

/// A graph (see the module docs).
pub(crate) struct GraphSchema;

impl PartialSchema for GraphSchema {
    fn schema() -> RefOr<Schema> {
        parsed(json!({
            "type": "object",
            "description": "A workflow graph: nodes, and edges between them with conditions.",
            "required": ["id", "name", "trigger"],
            "properties": {
                "id": {"type": "string", "description": "The graph's id, unique in its organization."},
                "name": {"type": "string"},
                "description": {"type": "string"},
                "version": {"type": "integer", "minimum": 1, "description": "1 when not given."},
                "trigger": {"$ref": "#/components/schemas/Trigger"},
                "nodes": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
                "edges": {"type": "array", "items": {"$ref": "#/components/schemas/Edge"},
                          "description": "In routing order: the first whose condition holds is taken."},
                "metadata": {"type": "object"},
                "max_steps": {"type": "integer", "minimum": 1,
                              "description": "How many steps a run may execute; the runner's default when absent, never above its ceiling."},
                "concurrency": {"type": "object", "required": ["limit"], "additionalProperties": false,
                    "description": "At most `limit` runs of the graph per key are driven at once; the others wait, queued, in the order they were started.",
                    "properties": {
                        "limit": {"type": "integer", "minimum": 1},
                        "key": {"type": "string", "description": "A template over the trigger data, such as {{trigger.customer}}; one key for every run when absent."}
                    }}
            }
        }))
    }
}

impl ToSchema for GraphSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Graph")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.extend(PARTS.iter().map(|(name, part)| ((*name).to_owned(), parsed(part()))));
    }
}

/// A named schema a graph refers to, and how to write it.
type Part = (&'static str, fn() -> Value);

/// The schemas a graph refers to, by name.
const PARTS: [Part; 4] = [("Trigger", trigger), ("Node", node), ("Edge", edge), ("Condition", condition)];

fn trigger() -> Value {
    json!({
        "type": "object",
        "description": "What starts a run.",
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": ["manual", "webhook", "scheduled", "event"]},
            "source_type": {"type": "string", "description": "webhook: where requests come from, e.g. github."},
            "schedule": {"type": "object", "description": "scheduled: {\"cron\": \"0 9 * * 1\", \"timezone\": \"Europe/Paris\"}.",
                         "properties": {"cron": {"type": "string"}, "timezone": {"type": "string"}}},
            "event": {"type": "string", "description": "event: the event's name."},
            "config": {"type": "object"}
        }
    })
}

fn node() -> Value {
    json!({
        "type": "object",
        "required": ["id", "type"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string", "description": "start, end, agent, orchestration, human, notification, \
                function, parallel, condition, switch, log, or a custom type with a registered handler."},
            "config": {"type": "object", "description": "The type's settings, plus retry and timeout."},
            "metadata": {"type": "object"},
            "parent": {"type": "string", "description": "The parallel node this one runs under."}
        }
    })
}

fn edge() -> Value {
    json!({
        "type": "object",
        "required": ["source", "target"],
        "properties": {
            "source": {"type": "string"},
            "target": {"type": "string"},
            "condition": {"$ref": "#/components/schemas/Condition"},
            "metadata": {"type": "object"}
        }
    })
}

fn condition() -> Value {
    json!({
        "type": "object",
        "description": "field (path, op, value), all / any / not (conditions), or otherwise.",
        "required": ["type"],
        "properties": {
            "type": {"type": "string"},
            "path": {"type": "string", "description": "field: where the compared value is, e.g. triage.output.severity."},
            "op": {"type": "string", "enum": ["eq", "neq", "in", "not_in", "contains", "gt", "lt", "exists"]},
            "value": {"description": "field: what the value is compared with (any JSON).",
                      "type": ["string", "number", "boolean", "array", "object", "null"]},
            "conditions": {"type": "array", "items": {"$ref": "#/components/schemas/Condition"}}
        }
    })
}

/// `schema` as utoipa's type: an object schema, whatever JSON Schema it is
/// (the literals above are checked to read back by the tests).
fn parsed(schema: Value) -> RefOr<Schema> {
    serde_json::from_value(schema)
        .unwrap_or_else(|_| RefOr::T(Schema::Object(Object::with_type(Type::Object))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The property names of a schema as JSON, sorted.
    fn properties(schema: &Value) -> Vec<String> {
        let mut names: Vec<String> = schema["properties"]
            .as_object()
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn every_schema_reads_back_as_written() {
        let mut written: Vec<(&str, Value)> = PARTS.iter().map(|(name, part)| (*name, part())).collect();
        written.push(("Graph", serde_json::to_value(GraphSchema::schema()).unwrap()));
        for (name, schema) in written {
            let read = serde_json::to_value(parsed(schema.clone())).unwrap();
            assert_eq!(read["required"], schema["required"], "{name}");
            assert_eq!(properties(&read), properties(&schema), "{name}");
            assert!(!properties(&read).is_empty(), "{name} is not the fallback");
        }
    }
}
