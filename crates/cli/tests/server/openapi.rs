//! Checks of an OpenAPI 3 document beyond its schema, the rules code
//! generators rely on: each operation's id unique, path parameters exactly
//! those of the path's template, every response described, every `$ref`
//! pointing at something.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// What is wrong with the OpenAPI document `text`: that it does not parse as
/// OpenAPI 3 (with the `oas3` crate), and each broken rule, one line each.
pub(crate) fn problems(text: &str) -> Vec<String> {
    if let Err(error) = oas3::from_json(text) {
        return vec![format!("not an OpenAPI 3 document: {error}")];
    }
    let document: Value = match serde_json::from_str(text) {
        Ok(document) => document,
        Err(error) => return vec![format!("not JSON: {error}")],
    };
    let mut problems = Vec::new();
    let mut operation_ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let paths = document["paths"].as_object().cloned().unwrap_or_default();
    for (path, item) in &paths {
        let template: BTreeSet<&str> =
            path.split('{').skip(1).filter_map(|rest| rest.split_once('}')).map(|(name, _)| name).collect();
        for method in ["get", "put", "post", "delete", "patch", "head", "options", "trace"] {
            let Some(operation) = item.get(method) else { continue };
            let at = format!("{} {path}", method.to_uppercase());
            match operation["operationId"].as_str() {
                Some(id) if !id.is_empty() => {
                    operation_ids.entry(id.to_owned()).or_default().push(at.clone())
                }
                _ => problems.push(format!("{at}: no operationId")),
            }
            let parameters = [&item["parameters"], &operation["parameters"]]
                .into_iter()
                .filter_map(Value::as_array)
                .flatten()
                .map(|parameter| resolve(&document, parameter))
                .collect::<Vec<_>>();
            let mut declared = BTreeSet::new();
            for parameter in &parameters {
                if parameter["in"] != "path" {
                    continue;
                }
                let name = parameter["name"].as_str().unwrap_or_default();
                declared.insert(name);
                if !template.contains(name) {
                    problems.push(format!("{at}: path parameter {name:?} is not in the path"));
                }
                if parameter["required"] != true {
                    problems.push(format!("{at}: path parameter {name:?} is not required"));
                }
            }
            for name in template.difference(&declared) {
                problems.push(format!("{at}: {{{name}}} is not declared as a path parameter"));
            }
            let responses = operation["responses"].as_object().cloned().unwrap_or_default();
            if responses.is_empty() {
                problems.push(format!("{at}: no responses"));
            }
            for (status, response) in &responses {
                let response = resolve(&document, response);
                if response["description"].as_str().is_none_or(str::is_empty) {
                    problems.push(format!("{at}: response {status} has no description"));
                }
            }
        }
    }
    for (id, operations) in operation_ids {
        if operations.len() > 1 {
            problems.push(format!("operationId {id:?} is used by {}", operations.join(", ")));
        }
    }
    unresolved_refs(&document, &document, &mut problems);
    problems
}

/// `value`, or what its `$ref` points at.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str().and_then(|reference| reference.strip_prefix('#')) {
        Some(pointer) => document.pointer(pointer).unwrap_or(&Value::Null),
        None => value,
    }
}

/// Adds a problem for each `$ref` under `value` that points at nothing in
/// `document` (or outside it).
fn unresolved_refs(document: &Value, value: &Value, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                let found = reference.strip_prefix('#').and_then(|pointer| document.pointer(pointer));
                if found.is_none() {
                    problems.push(format!("$ref {reference:?} points at nothing"));
                }
            }
            map.values().for_each(|value| unresolved_refs(document, value, problems));
        }
        Value::Array(items) => items.iter().for_each(|value| unresolved_refs(document, value, problems)),
        _ => {}
    }
}
