use std::any::Any;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

use super::stream::EventSink;
use super::{Plan, Prepared, Progress, StreamMode};
use crate::clock::Clock;
use crate::context::Context;
use crate::handler::{Emitted, HandlerError, NodeHandler, NodeResult, Sent, Signal};
use crate::limits::Limits;
use crate::model::{Graph, Node};
use crate::template::{TemplateError, ValueTemplate};

/// A handler's view of the run while it executes one node: the context, the
/// node's configuration with its templates resolved, and `emit` for progress.
pub struct Scope<'a> {
    pub(crate) plan: &'a Plan,
    /// Each node's handler, by node index.
    pub(crate) handlers: &'a [Option<Arc<dyn NodeHandler>>],
    pub(crate) clock: &'a dyn Clock,
    pub(crate) sink: Option<&'a EventSink>,
    pub(crate) context: &'a Arc<Context>,
    pub(crate) run_id: &'a str,
    pub(crate) attempt: u32,
    pub(crate) node: usize,
    pub(crate) limits: &'a Limits,
    /// What the step's nodes sent, in order.
    pub(crate) sent: &'a Mutex<Vec<Emitted>>,
    /// Who hears signals as they are sent.
    pub(crate) live: Option<&'a LiveHook>,
    /// Where the step keeps its progress, if anywhere.
    pub(crate) progress: Option<&'a dyn Progress>,
}

/// Hears each [`Signal`] as a node sends it, with the run's id and the
/// node's: a durable runner sends tokens out live this way
/// ([`Workflow::with_live`](crate::Workflow::with_live)).
pub type LiveHook = dyn Fn(&str, &str, &Signal) + Send + Sync;

impl<'a> Scope<'a> {
    /// The node being executed.
    pub fn node(&self) -> &'a Node {
        self.plan.node(self.node)
    }

    /// The graph the run executes.
    pub fn graph(&self) -> &'a Graph {
        self.plan.graph()
    }

    /// The run's context, as it was when the step began.
    pub fn context(&self) -> &'a Context {
        self.context
    }

    /// The run's context as it was when the step began, shared: for a
    /// handler that must keep it past a borrow (one that hands it to another
    /// language's runtime, say). Drop it when the handler returns: while it
    /// is held, the engine copies the context to store the step's outputs.
    pub fn shared_context(&self) -> Arc<Context> {
        Arc::clone(self.context)
    }

    /// The run's id.
    pub fn run_id(&self) -> &'a str {
        self.run_id
    }

    /// Which attempt at this node this is: 1, then 2, 3... when a durable
    /// runner retries it.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// A key naming this execution of this node in this run: `run/node/attempt`.
    /// A handler with outside side effects passes it on (as an idempotency key)
    /// so a step re-run after a crash does not repeat them.
    ///
    /// ```
    /// use roomkit_graph::{Edge, Graph, HandlerError, Handlers, Node, NodeHandler, NodeResult, Scope, Trigger, WorkflowEngine};
    /// use serde_json::json;
    ///
    /// struct Charge;
    ///
    /// #[async_trait::async_trait]
    /// impl NodeHandler for Charge {
    ///     async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
    ///         Ok(NodeResult::completed(json!({"key": scope.idempotency_key()})))
    ///     }
    /// }
    ///
    /// let mut graph = Graph::new("g", "G", Trigger::manual());
    /// graph.add_nodes([Node::new("start", "start"), Node::new("pay", "charge")])?;
    /// graph.add_edge(Edge::new("start", "pay"));
    /// let mut engine = WorkflowEngine::new(graph, Handlers::builtin().with("charge", Charge));
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// engine.run(json!({})).await?;
    /// let key = format!("{}/pay/1", engine.run_id());
    /// assert_eq!(engine.context().get("pay.output.key"), Some(&json!(key)));
    /// # Ok::<(), roomkit_graph::EngineError>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}/{}", self.run_id, self.plan.id(self.node), self.attempt)
    }

    /// The limits the run keeps to: a handler that builds large outputs can
    /// stop early with [`HandlerError::Limit`] instead of building them.
    pub fn limits(&self) -> &'a Limits {
        self.limits
    }

    /// The clock delays wait on.
    pub fn clock(&self) -> &'a dyn Clock {
        self.clock
    }

    /// Sends a custom event, attributed to this node, to the run's stream
    /// (outside a stream nobody sees it), and keeps it with the step's
    /// outcome ([`StepOutcome::emitted`](crate::StepOutcome::emitted)), so
    /// handlers need not care how they run.
    pub fn emit(&self, payload: Value) {
        if let Some(sink) = self.sink {
            sink.send(StreamMode::Custom, Some(self.plan.id(self.node)), || payload.clone());
        }
        self.keep(Sent::Custom(payload));
    }

    /// Tells whoever runs the graph what the node is doing ([`Signal`]): the
    /// live hook hears it at once, a stream's custom mode shows it as JSON,
    /// and the step's outcome keeps it unless it is a token.
    ///
    /// ```
    /// use roomkit_graph::{Edge, Graph, HandlerError, Handlers, Node, NodeHandler, NodeResult, Scope, Sent, Signal, Trigger, WorkflowEngine};
    /// use serde_json::json;
    ///
    /// struct Agent;
    ///
    /// #[async_trait::async_trait]
    /// impl NodeHandler for Agent {
    ///     async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
    ///         scope.signal(Signal::Token { agent: "writer".into(), text: "Hi".into() });
    ///         scope.signal(Signal::AgentMessage { agent: "writer".into(), text: "Hi".into(), usage: None });
    ///         Ok(NodeResult::completed(json!({"text": "Hi"})))
    ///     }
    /// }
    ///
    /// let mut graph = Graph::new("g", "G", Trigger::manual());
    /// graph.add_nodes([Node::new("start", "start"), Node::new("draft", "agent")])?;
    /// graph.add_edge(Edge::new("start", "draft"));
    /// let mut engine = WorkflowEngine::new(graph, Handlers::builtin().with("agent", Agent));
    /// engine.start(json!({}))?;
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// engine.step().await?;
    /// let outcome = engine.step_outcome().await.expect("draft runs");
    /// assert_eq!(outcome.emitted.len(), 1, "the token is not kept");
    /// assert!(matches!(&outcome.emitted[0].sent, Sent::Signal(Signal::AgentMessage { text, .. }) if text == "Hi"));
    /// # Ok::<(), roomkit_graph::EngineError>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn signal(&self, signal: Signal) {
        let id = self.plan.id(self.node);
        if let Some(sink) = self.sink {
            sink.send(StreamMode::Custom, Some(id), || signal.to_value());
        }
        if let Some(live) = self.live {
            live(self.run_id, id, &signal);
        }
        if signal.is_kept() {
            self.keep(Sent::Signal(signal));
        }
    }

    /// What an earlier go at this step kept with
    /// [`keep_progress`](Self::keep_progress) before it was cut short (a
    /// crash), in order: the step goes on from there. Empty on a first go,
    /// and where no runner keeps progress.
    pub fn progress(&self) -> &'a [Value] {
        self.progress.map_or(&[], |progress| progress.kept())
    }

    /// Keeps `record` (a finished part of the node's work: an agent's turn,
    /// say) with every event the step kept since its last record, before
    /// returning, where the runner keeps progress
    /// ([`WorkflowEngine::keep_progress_in`](crate::WorkflowEngine::keep_progress_in));
    /// elsewhere it does nothing. A step re-run after a crash finds it in
    /// [`progress`](Self::progress). An error means it could not be kept (the
    /// run moved on, the store failed): the step should stop with it.
    /// See [`Progress`] for an example.
    pub async fn keep_progress(&self, record: Value) -> Result<(), HandlerError> {
        let Some(progress) = self.progress else { return Ok(()) };
        let sent = std::mem::take(&mut *self.sent.lock().unwrap_or_else(PoisonError::into_inner));
        progress
            .keep(self.plan.id(self.node), record, sent)
            .await
            .map_err(|why| HandlerError::execution(format!("its progress could not be kept: {why}")))
    }

    fn keep(&self, sent: Sent) {
        let node_id = self.plan.id(self.node).to_owned();
        self.sent.lock().unwrap_or_else(PoisonError::into_inner).push(Emitted { node_id, sent });
    }

    /// The configuration field `key` with its placeholders resolved (a string
    /// that is one placeholder gives the raw value); `None` when absent.
    /// Resolving stops with [`TemplateError::Limit`] once it has produced more
    /// than the run's [`Limits::output_bytes`].
    pub fn resolve(&self, key: &str) -> Result<Option<Value>, TemplateError> {
        let limit = self.limits.output_bytes;
        self.config_template(key).map(|t| t.resolve_within(self.context, limit)).transpose()
    }

    /// The configuration field `key` resolved as text: strings as they are,
    /// other values as JSON; `None` when absent. Bounded as [`resolve`](Self::resolve).
    pub fn render(&self, key: &str) -> Result<Option<String>, TemplateError> {
        let Some(compiled) = self.config_template(key) else { return Ok(None) };
        let limit = self.limits.output_bytes;
        Ok(Some(match compiled.render_within(self.context, limit) {
            Some(text) => text?,
            None => match compiled.resolve_within(self.context, limit)? {
                Value::String(text) => text,
                value => value.to_string(),
            },
        }))
    }

    fn config_template(&self, key: &str) -> Option<&'a ValueTemplate> {
        self.plan.config_template(self.node, key)
    }

    /// What `prepare` derives from this node (its configuration parsed into a
    /// handler's own types, say), computed on first use and shared by every
    /// later run of the same [`Workflow`](crate::Workflow).
    ///
    /// ```
    /// use roomkit_graph::{HandlerError, Node, NodeHandler, NodeResult, Scope};
    /// use serde_json::json;
    ///
    /// struct Retries;
    ///
    /// #[async_trait::async_trait]
    /// impl NodeHandler for Retries {
    ///     async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
    ///         let attempts = scope.prepared(|node| node.config.get("attempts").and_then(|a| a.as_u64()).unwrap_or(3));
    ///         Ok(NodeResult::completed(json!({"attempts": *attempts})))
    ///     }
    /// }
    /// ```
    pub fn prepared<T: Any + Send + Sync>(&self, prepare: impl FnOnce(&Node) -> T) -> Arc<T> {
        let slot = self.plan.prepared(self.node);
        if let Some(shared) = slot.get() {
            // Another handler type may have prepared this node: then compute afresh.
            return Arc::clone(shared).downcast::<T>().unwrap_or_else(|_| Arc::new(prepare(self.node())));
        }
        let value = Arc::new(prepare(self.node()));
        // Two runs preparing at once both compute it; either result is kept.
        let _ = slot.set(Arc::clone(&value) as Prepared);
        value
    }

    /// The nodes whose `parent` is this node, in graph order.
    pub fn children(&self) -> impl Iterator<Item = &'a Node> + 'a {
        let plan = self.plan;
        plan.children(self.node).iter().map(move |&child| plan.node(child))
    }

    /// Executes `child` with its own handler, in a scope of its own: its
    /// `emit` calls are attributed to it. Its output is not stored: return it
    /// in [`NodeResult::child_outputs`].
    pub async fn execute_child(&self, child: &Node) -> Result<NodeResult, HandlerError> {
        let index = self
            .plan
            .index(&child.id)
            .ok_or_else(|| HandlerError::execution(format!("no node {:?} in the graph", child.id)))?;
        let handler = self.handlers[index]
            .as_ref()
            .ok_or_else(|| HandlerError::NoHandler { node_type: child.node_type.to_string() })?;
        let scope = Scope { node: index, ..*self };
        crate::handler::execute_guarded(&**handler, child, &scope).await
    }
}
