//! Spans of runs and steps, for whoever listens to `tracing` (the command
//! line exports them over OTLP with `--otlp-endpoint`): a `run` span each
//! time a process drives a run, with a `step` span for each step it takes
//! (a run's first step, taken as it is started, and an answer's, each have
//! a `run` span of their own, ended `started` and `answered`).
//! Every `run` span of a run, in any process and after any restart, is in
//! one trace whose id is the run's id (a UUID's 128 bits), so a tracing UI
//! shows the run whole.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The span of one drive of `run_id`, in the run's trace. Its `org`,
/// `graph_id`, `graph_version` and `ended` are recorded as they are known.
pub(crate) fn run_span(run_id: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "run",
        run_id,
        org = Empty,
        graph_id = Empty,
        graph_version = Empty,
        ended = Empty
    );
    // Without an OpenTelemetry layer there is no trace to join.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(run_context(run_id)));
    span
}

/// Records on a `run` span which run of which graph it is.
pub(crate) fn record_run(span: &tracing::Span, org: &str, graph_id: &str, graph_version: u64) {
    span.record("org", org);
    span.record("graph_id", graph_id);
    span.record("graph_version", graph_version);
}

/// The span of a step at `node_id` of `graph`, its `attempt` at the node;
/// its `outcome` is recorded once the step is committed.
pub(crate) fn step_span(graph: &roomkit_graph::Graph, node_id: &str, attempt: u32) -> tracing::Span {
    let node_type = graph.node(node_id).map(|node| node.node_type.to_string()).unwrap_or_default();
    tracing::info_span!("step", node_id, node_type, attempt, outcome = Empty)
}

/// The trace of `run_id`: the run's id as trace id, under a parent span
/// that stands for the run as a whole (never sent itself).
fn run_context(run_id: &str) -> SpanContext {
    let bits = uuid::Uuid::parse_str(run_id).map_or_else(|_| digest(run_id), |id| id.as_u128());
    let trace_id = TraceId::from(bits);
    // Any non-zero id, the same for every process: the low half.
    let span_id = SpanId::from(u64::try_from(bits & u128::from(u64::MAX)).unwrap_or(1).max(1));
    SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, true, TraceState::default())
}

/// 128 bits of any id that is not a UUID (FNV-1a, twice over).
fn digest(text: &str) -> u128 {
    let fnv = |seed: u64| {
        text.bytes().fold(seed, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
    };
    (u128::from(fnv(0xcbf2_9ce4_8422_2325)) << 64 | u128::from(fnv(0x8422_2325_cbf2_9ce4))).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_trace_is_its_id() {
        let context = run_context("01a22f62-bdf4-735e-be06-8f2cc8f973cd");
        assert_eq!(context.trace_id().to_string(), "01a22f62bdf4735ebe068f2cc8f973cd");
        assert_eq!(context.span_id().to_string(), "be068f2cc8f973cd");
        assert!(context.is_valid() && context.is_remote() && context.is_sampled());
        let other = run_context("not-a-uuid");
        assert!(other.is_valid());
        assert_eq!(other.trace_id(), run_context("not-a-uuid").trace_id(), "the same in every process");
        assert_ne!(other.trace_id(), run_context("not-a-uuid2").trace_id());
    }
}
