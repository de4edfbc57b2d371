//! Setting a waiting run going again: an answer to a node (or to one of the
//! children a parallel node waits on), or the end of a rest on a timer.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{EngineError, StepOutcome, StepStatus, WorkflowEngine};
use crate::handler::{NodeStatus, joins_any};
use crate::model::NodeType;

impl WorkflowEngine {
    /// Stores `data` as node `node_id`'s output (null included) and clears
    /// waiting; when the run is on that node, follows its edges (a node without
    /// edges completes the run). Call [`advance`](Self::advance) or
    /// [`step`](Self::step) to go on. See [`answer`](Self::answer) for what it did.
    ///
    /// Refused, changing nothing: the start node, a node not in the graph, a
    /// completed run, an answer the node's handler does not take, and, while a
    /// parallel node's children wait, any node but one of them.
    pub fn resume(&mut self, node_id: &str, data: Value) -> Result<(), EngineError> {
        match self.answer(node_id, data)?.status {
            StepStatus::Failed { error, .. } => Err(error),
            _ => Ok(()),
        }
    }

    /// Answers `node_id` with `data`, as [`resume`](Self::resume), and says
    /// what happened. While a parallel node waits on children, the answer
    /// goes to one of them: the run keeps waiting until the last is answered
    /// (the first, for `join: "any"`), then the parallel node completes with
    /// `{child_id: output}` and the run follows its edges.
    ///
    /// ```
    /// use roomkit_graph::{Edge, Graph, Handlers, HumanHandler, Node, EngineStatus, StepStatus, Trigger, Workflow};
    /// use serde_json::json;
    ///
    /// let mut graph = Graph::new("release", "Release", Trigger::manual());
    /// graph.add_nodes([
    ///     Node::new("start", "start"),
    ///     Node::new("approvals", "parallel"),
    ///     Node::new("legal", "human").with_parent("approvals").with_config(json!({"actions": ["approve", "reject"]})),
    ///     Node::new("security", "human").with_parent("approvals"),
    ///     Node::new("end", "end"),
    /// ])?;
    /// graph.add_edges([Edge::new("start", "approvals"), Edge::new("approvals", "end")]);
    /// let mut engine = Workflow::new(graph, Handlers::builtin().with("human", HumanHandler)).engine();
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// engine.run(json!({})).await?;
    /// assert_eq!(engine.pending(), ["legal", "security"]);
    /// assert!(engine.answer("approvals", json!({})).is_err(), "its children are answered, not it");
    /// assert!(engine.answer("legal", json!({"action": "maybe"})).is_err());
    /// let outcome = engine.answer("legal", json!({"action": "approve"}))?;
    /// assert!(matches!(outcome.status, StepStatus::Waiting(_)));
    /// assert_eq!(engine.pending(), ["security"]);
    /// engine.answer("security", json!({"ok": true}))?;
    /// assert_eq!(engine.status(), EngineStatus::Running);
    /// assert_eq!(
    ///     engine.context().get("approvals.output"),
    ///     Some(&json!({"legal": {"action": "approve"}, "security": {"ok": true}}))
    /// );
    /// # Ok::<(), roomkit_graph::EngineError>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn answer(&mut self, node_id: &str, data: Value) -> Result<StepOutcome, EngineError> {
        if self.child.is_some() {
            // The run stands on a subgraph node whose child is under way:
            // every answer is the child's until it is done.
            return self.answer_in_child(node_id, data);
        }
        let plan = Arc::clone(&self.workflow.plan);
        let refuse = |why: String| EngineError::InvalidArgument(format!("cannot resume {node_id:?}: {why}"));
        let node = plan
            .index(node_id)
            .ok_or_else(|| refuse(format!("no such node in graph {:?}", plan.graph().id)))?;
        if plan.node(node).node_type == NodeType::Start {
            return Err(refuse("it is the start node; start a new run instead".to_owned()));
        }
        if plan.node(node).node_type == NodeType::Subgraph || self.workflow.hands_out(node) {
            return Err(EngineError::AnswerRefused {
                node: node_id.to_owned(),
                reason: "it waits on its child run: answer the child run's nodes".to_owned(),
            });
        }
        let Some(current) = self.current else {
            return Err(refuse(format!("run {} has completed", self.run_id)));
        };
        let refused = |reason: String| EngineError::AnswerRefused { node: node_id.to_owned(), reason };
        if !self.pending.is_empty() && !self.pending.contains(&node) {
            let waiting: Vec<_> = self.pending.iter().map(|&child| format!("{:?}", plan.id(child))).collect();
            return Err(refused(format!(
                "the run waits on the children of parallel node {:?}: answer {}",
                plan.id(current),
                waiting.join(" or ")
            )));
        }
        if let Some(handler) = &self.workflow.handlers[node] {
            handler.check_answer(plan.node(node), &data).map_err(refused)?;
        }
        let as_answer = |error| match error {
            EngineError::Limit { node, source, .. } => {
                EngineError::Limit { node, what: "the answer".to_owned(), source }
            }
            other => other,
        };
        let sizes =
            self.check_writes(node, std::slice::from_ref(&(node, data.clone()))).map_err(as_answer)?;
        // The last answer a parallel node waits for (the first, for join "any")
        // completes it: its aggregate is checked before anything is stored.
        let completes = !self.pending.is_empty()
            && (joins_any(plan.node(current)) || self.pending.iter().all(|&child| child == node));
        let aggregate = if completes {
            let aggregate = self.aggregate(current, node, &data);
            let size = self.check_writes(current, std::slice::from_ref(&(current, aggregate.clone())))?;
            Some((aggregate, size[0]))
        } else {
            None
        };
        self.written.clear();
        self.context_mut().set_output_at(node, data, sizes[0]);
        self.written.push(node);
        let no_events = Mutex::new(Vec::new());
        if !self.pending.is_empty() {
            return Ok(self.answer_child(current, node, aggregate, no_events));
        }
        self.waiting = false;
        let status = if current == node {
            match self.follow_edges(node) {
                Ok(()) => StepStatus::Completed,
                Err(error) => StepStatus::Failed { error, retry_in: None },
            }
        } else {
            StepStatus::Completed
        };
        self.send_updates(node);
        self.send_values();
        Ok(self.outcome(node, 1, status, no_events))
    }

    /// The aggregate parallel node `parallel` completes with once `child` is
    /// answered with `data`: `{child_id: output}` over its children (the
    /// answered child alone for join "any").
    fn aggregate(&self, parallel: usize, child: usize, data: &Value) -> Value {
        let plan = &self.workflow.plan;
        let members: Vec<usize> =
            if joins_any(plan.node(parallel)) { vec![child] } else { plan.children(parallel).to_vec() };
        let entry = |member: usize| match member == child {
            true => data.clone(),
            false => self.context.output(plan.id(member)).cloned().unwrap_or(Value::Null),
        };
        Value::Object(members.iter().map(|&member| (plan.id(member).to_owned(), entry(member))).collect())
    }

    /// The answer to `child`, one of the children parallel node `parallel`
    /// waits on, is stored: the run keeps waiting on the others, or, given the
    /// node's checked `aggregate` and its size, the parallel node completes and
    /// the run moves on.
    fn answer_child(
        &mut self,
        parallel: usize,
        child: usize,
        aggregate: Option<(Value, usize)>,
        no_events: Mutex<Vec<crate::handler::Emitted>>,
    ) -> StepOutcome {
        let plan = Arc::clone(&self.workflow.plan);
        self.pending.retain(|&waiting| waiting != child);
        let Some((aggregate, bytes)) = aggregate else {
            self.send_updates(child);
            self.send_values();
            return self.outcome(child, 1, StepStatus::Waiting(Vec::new()), no_events);
        };
        let closed: Vec<String> =
            std::mem::take(&mut self.pending).iter().map(|&i| plan.id(i).to_owned()).collect();
        self.context_mut().set_output_at(parallel, aggregate, bytes);
        self.written.push(parallel);
        self.waiting = false;
        let status = match self.follow_edges(parallel) {
            Ok(()) => StepStatus::Completed,
            Err(error) => StepStatus::Failed { error, retry_in: None },
        };
        self.send_updates(child);
        self.send_values();
        let mut outcome = self.outcome(child, 1, status, no_events);
        outcome.closed = closed;
        outcome
    }

    /// Answers `node_id` of the child run of the subgraph node the run stands
    /// on: the run waits as long as its child does, and goes on with it at
    /// the next step. The outcome is the child's, its waiting
    /// points under the subgraph node, writing nothing of the parent's.
    fn answer_in_child(&mut self, node_id: &str, data: Value) -> Result<StepOutcome, EngineError> {
        let plan = Arc::clone(&self.workflow.plan);
        let (Some(current), Some(child)) = (self.current, self.child.as_mut()) else {
            return Err(EngineError::InvalidArgument(format!("run {} waits on no child run", self.run_id)));
        };
        let subgraph = plan.id(current);
        let engine = child.engine_mut();
        engine.sink = self.sink.as_ref().map(|sink| Arc::new(sink.nested(subgraph)));
        let answered = engine.answer(node_id, data);
        engine.sink = None;
        let mut outcome = answered?;
        self.waiting = engine.waiting();
        self.written.clear();
        if let StepStatus::Waiting(points) = outcome.status {
            outcome.status = StepStatus::Waiting(super::subgraph::under(subgraph, points));
        }
        outcome.writes.clear();
        outcome.next = Some(subgraph.to_owned());
        Ok(outcome)
    }

    /// Ends the rest of a run on a node that slept ([`StepStatus::Sleeping`]):
    /// the run follows the node's edges without running it again.
    pub fn wake(&mut self) -> Result<StepOutcome, EngineError> {
        let rests = self.waiting && self.pending.is_empty() && self.child.is_none();
        let Some(node) = self.current.filter(|_| rests) else {
            return Err(EngineError::InvalidArgument(format!(
                "run {} rests on no node: there is nothing to wake",
                self.run_id
            )));
        };
        self.written.clear();
        self.waiting = false;
        let status = match self.follow_edges(node) {
            Ok(()) => {
                self.send_lifecycle_complete(node, NodeStatus::Completed);
                StepStatus::Completed
            }
            Err(error) => {
                self.waiting = true;
                self.send_lifecycle_complete(node, NodeStatus::Failed);
                StepStatus::Failed { error, retry_in: None }
            }
        };
        self.send_values();
        Ok(self.outcome(node, 1, status, Mutex::new(Vec::new())))
    }

    /// The children of the parallel node the run waits on that still wait for
    /// an answer, in node order (none when the run waits on a single node).
    pub fn pending(&self) -> Vec<&str> {
        self.pending.iter().map(|&child| self.workflow.plan.id(child)).collect()
    }
}
