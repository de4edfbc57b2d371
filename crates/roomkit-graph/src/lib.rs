//! roomkit-graph: a workflow graph engine. Workflows are JSON graphs of nodes
//! (start, end, agent, orchestration, human, notification, function, parallel,
//! condition, switch, log, subgraph, and custom types) joined by edges with serializable
//! conditions; a run goes step by step, pauses for people and can be saved and
//! continued in another process.
//!
//! This crate holds the model and the engine and does no storage or network
//! I/O.
//!
//! - [`model`](Graph): [`Graph`], [`Node`], [`Edge`], [`Trigger`], read from and
//!   written to JSON.
//! - [`Condition`]: the edge condition language.
//! - [`Context`], [`Path`], [`Template`]: what a run has produced and how
//!   `{{path}}` placeholders read it.
//! - [`Graph::validate`]: every mistake of a graph in one pass; [`Checks`]:
//!   the checks other crates add for their nodes and triggers ([`GraphCheck`]).
//! - [`Workflow`], [`WorkflowEngine`]: running, pausing, resuming, streaming;
//!   [`Graphs`]: the graphs subgraph nodes run as child runs.
//! - [`NodeHandler`], [`Handlers`], [`FunctionRegistry`]: what each node type does.
//!
//! # Quick start
//!
//! ```
//! use roomkit_graph::{Condition, Edge, Graph, Handlers, Node, EngineStatus, Trigger, WorkflowEngine};
//! use serde_json::json;
//!
//! let mut graph = Graph::new("triage", "Triage", Trigger::manual());
//! graph.add_nodes([
//!     Node::new("start", "start"),
//!     Node::new("urgent", "function")
//!         .with_config(json!({"action": "set_context", "values": {"queue": "on-call"}})),
//!     Node::new("later", "function")
//!         .with_config(json!({"action": "set_context", "values": {"queue": "backlog"}})),
//!     Node::new("end", "end"),
//! ])?;
//! graph.add_edges([
//!     Edge::new("start", "urgent").when(Condition::field("trigger.severity").equals("critical")),
//!     Edge::new("start", "later").when(Condition::otherwise()),
//!     Edge::new("urgent", "end"),
//!     Edge::new("later", "end"),
//! ]);
//! graph.validate_or_raise()?;
//!
//! let mut engine = WorkflowEngine::new(graph, Handlers::builtin());
//! # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
//! let status = engine.run(json!({"severity": "critical"})).await?;
//! assert_eq!(status, EngineStatus::Completed);
//! assert_eq!(engine.context().get("urgent.output.queue"), Some(&json!("on-call")));
//! # Ok::<(), roomkit_graph::EngineError>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod clock;
mod condition;
mod context;
mod duration;
mod engine;
mod error_chain;
mod handler;
pub mod limits;
mod model;
mod policy;
mod template;
mod validate;

pub use clock::{Clock, ManualClock, NoWaitClock, SystemClock};
pub use condition::{Condition, ConditionError, FieldBuilder, FieldCondition, Op};
pub use context::{Context, Path};
pub use duration::{DurationError, parse_duration};
pub use engine::{
    ChildEnd, ChildRequest, ChildState, EngineError, EngineState, EngineStatus, ErrorKind, Event,
    EventStream, Graphs, NodeFailure, Progress, StepOutcome, StepStatus, StreamMode, WaitingPoint, Workflow,
    WorkflowEngine,
};
pub use error_chain::ErrorChain;
pub use handler::{
    Ask, ConditionHandler, Emitted, EndHandler, FunctionError, FunctionHandler, FunctionRegistry,
    HandlerError, Handlers, HumanHandler, LiveHook, LogHandler, NodeHandler, NodeResult, NodeStatus,
    ParallelHandler, Scope, Sent, Signal, StartHandler, SwitchHandler,
};
pub use limits::{LimitError, Limits, Measure, measure};
pub use model::{Concurrency, Edge, Graph, GraphError, Node, NodeType, Trigger};
pub use policy::{NodePolicy, PolicyError};
pub use template::{Template, TemplateError, ValueTemplate};
pub use validate::{
    Checks, GraphCheck, SubgraphRef, Validation, ValidationCode, ValidationError, ValidationWarning,
    WarningCode, json_kind,
};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExamples;
