//! What every fuzz target checks, whatever its input: runs end (a step limit,
//! delays that do not wait), keep to their limits, and save states that read
//! back as they were written.

use roomkit_graph::{EngineState, Graph, Handlers, HumanHandler, Limits, NoWaitClock, Workflow, WorkflowEngine};
use serde_json::Value;

/// The most steps a fuzzed run may take.
pub const MAX_STEPS: u64 = 64;

/// Limits small enough for fuzzed runs to reach them quickly.
pub fn limits() -> Limits {
    Limits { json_depth: 32, output_bytes: 64 << 10, context_bytes: 256 << 10, ..Limits::default() }
}

/// `graph` with the built-in handlers, the step limit, [`limits`] and a clock that does not wait.
pub fn workflow(graph: Graph) -> Workflow {
    Workflow::new(graph, Handlers::builtin().with("human", HumanHandler))
        .with_max_steps(MAX_STEPS)
        .with_clock(NoWaitClock)
        .with_limits(limits())
}

/// Runs `work` to its end on a single-threaded runtime.
pub fn block_on<T>(work: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().build().expect("a runtime").block_on(work)
}

/// Steps the run until it ends or fails, answering each node it waits on
/// with `answer` (a few times at most), checking after each step that the
/// context grew past neither its limit nor what it held before, and that
/// the saved state reads back.
pub async fn drive(workflow: &Workflow, engine: &mut WorkflowEngine, answer: &Value) {
    for _ in 0..4 {
        loop {
            let before = engine.context().size();
            let moved = engine.step().await;
            let after = engine.context().size();
            assert!(
                after <= before.max(workflow.limits().context_bytes),
                "the context grew to {after} bytes"
            );
            check_state(workflow, engine);
            if !matches!(moved, Ok(true)) {
                break;
            }
        }
        let Some(node) = engine.current_node_id().filter(|_| engine.waiting()).map(str::to_owned) else {
            return;
        };
        if engine.resume(&node, answer.clone()).is_err() {
            return;
        }
    }
}

/// The run's saved state, written as JSON text, reads back equal and restores.
pub fn check_state(workflow: &Workflow, engine: &WorkflowEngine) {
    let state = engine.to_state();
    let text = serde_json::to_string(&state).expect("a saved state is JSON");
    let back: EngineState = serde_json::from_str(&text).expect("a saved state reads back");
    assert_eq!(back, state);
    let restored = workflow.restore(back).expect("a run's own state restores");
    assert_eq!(restored.to_state(), state);
}
