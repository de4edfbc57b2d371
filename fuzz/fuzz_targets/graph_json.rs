//! Graph JSON: read it or refuse it; what is read writes back to the same
//! graph; validation never panics; a graph it accepts starts; every graph
//! runs (with the built-in handlers, under a step limit) within its limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use roomkit_graph::{ErrorKind, Graph, measure};
use roomkit_graph_fuzz::{block_on, check_state, drive, workflow};
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(graph) = Graph::from_json(text) else { return };
    let written = graph.to_json();
    let back = Graph::from_json(&written).expect("a graph's JSON reads back");
    assert_eq!(back, graph);
    assert_eq!(back.to_json(), written);

    let valid = graph.validate().is_empty();
    let workflow = workflow(graph);
    let mut engine = workflow.engine();
    match engine.start(json!({"title": "Checkout is down", "n": 3})) {
        Ok(()) => {}
        Err(error) => {
            assert!(
                !valid || error.kind() != ErrorKind::InvalidArgument,
                "a valid graph must start: {error}"
            );
            return;
        }
    }
    check_state(&workflow, &engine);
    block_on(drive(&workflow, &mut engine, &json!({"action": "approve"})));
    let limits = workflow.limits();
    assert!(engine.context().size() <= limits.context_bytes);
    for (node, entry) in engine.context().to_entries() {
        let size = measure(&entry["output"]);
        if Some(node.as_str()) != engine.graph().start_node().map(|n| n.id.as_str()) {
            assert!(size.bytes <= limits.output_bytes, "{node}: {} bytes", size.bytes);
            assert!(size.depth <= limits.json_depth, "{node}: {} levels", size.depth);
        }
    }
});
