//! Templates: any text parses or is refused; a template without placeholders
//! renders as written; text and value templates resolve or fail cleanly.

#![no_main]

use libfuzzer_sys::fuzz_target;
use roomkit_graph::{Context, Template, ValueTemplate};
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut context = Context::new("start");
    context.set_output("start", json!({"input": {"title": "DB down", "tags": ["db"], "n": 7}}));
    context.set_output("triage", json!({"severity": "critical", "nested": {"deep": [1, {"x": null}]}}));

    let parsed = Template::parse(text);
    if let Ok(template) = &parsed {
        let rendered = template.render(&context);
        if template.is_literal() {
            assert_eq!(rendered.as_deref(), Ok(text));
        }
        if let (Ok(rendered), Ok(Value::String(resolved))) = (rendered, template.resolve(&context)) {
            assert_eq!(rendered, resolved);
        }
    }
    let compiled = ValueTemplate::compile(&Value::String(text.to_owned()));
    assert_eq!(compiled.first_error().is_some(), parsed.is_err());
    let _ = compiled.resolve(&context);

    // The same bytes as a JSON value whose strings are templates.
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        let _ = ValueTemplate::compile(&value).resolve(&context);
    }
});
