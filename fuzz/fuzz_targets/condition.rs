//! Conditions: any JSON reads as a condition (perhaps malformed), writes back
//! to the same condition, serializes and evaluates without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use roomkit_graph::{Condition, Context};
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let condition = Condition::from_value(&value);
    assert_eq!(Condition::from_value(&condition.to_value()), condition);
    let text =
        serde_json::to_string(&condition).expect("a condition read from JSON text writes as JSON text");
    let back: Condition = serde_json::from_str(&text).expect("a written condition reads back");
    assert_eq!(back, condition);

    let mut context = Context::new("start");
    context.set_output("start", json!({"input": {"severity": "critical", "n": 3, "tags": ["a", "b"]}}));
    context.set_output("triage", json!({"score": 0.5, "labels": null}));
    let _ = condition.evaluate(&context);
    let _ = condition.problem();
});
