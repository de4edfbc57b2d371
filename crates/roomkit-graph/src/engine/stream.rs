//! Streaming a run as typed events.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use futures_core::Stream;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use super::EngineError;

/// What a stream reports; pick one or more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamMode {
    /// The whole context: before the first step and after each step.
    Values,
    /// What a step wrote: `{node_id: {"output": value}}`, after each step that wrote something.
    Updates,
    /// `{phase: "start", node_id, type}` before and `{phase: "complete", node_id, status}` after each node.
    Lifecycle,
    /// Payloads handlers emit, attributed to the emitting node.
    Custom,
}

impl StreamMode {
    /// Every mode.
    pub const ALL: [StreamMode; 4] =
        [StreamMode::Values, StreamMode::Updates, StreamMode::Lifecycle, StreamMode::Custom];

    fn bit(self) -> u8 {
        match self {
            StreamMode::Values => 1,
            StreamMode::Updates => 2,
            StreamMode::Lifecycle => 4,
            StreamMode::Custom => 8,
        }
    }
}

/// One streamed event. `seq` numbers the events delivered, from 0, with no gap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Which mode produced it.
    pub mode: StreamMode,
    /// What happened.
    pub payload: Value,
    /// The node it is about (null for values snapshots).
    pub node_id: Option<String>,
    /// Its position in the stream.
    pub seq: u64,
    /// For an event from inside a subgraph's child run: the subgraph nodes
    /// leading to it, outermost first, then the child's node it is about
    /// (`["parent_node", "child_node"]`); empty (and not written) for the
    /// run's own events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
}

/// Where a streamed run's events go, numbered in the order they are sent.
pub(crate) struct EventSink {
    modes: u8,
    /// The subgraph nodes leading to the run whose events this sink takes
    /// (empty for the streamed run itself).
    prefix: Vec<String>,
    // A std mutex, not an async one: it is held only to number and queue an
    // event. Shared with the sinks of child runs, so they number as one.
    numbered: Arc<Mutex<(u64, mpsc::UnboundedSender<Event>)>>,
}

impl EventSink {
    pub(crate) fn new(modes: &[StreamMode], sender: mpsc::UnboundedSender<Event>) -> Self {
        EventSink {
            modes: modes.iter().fold(0, |bits, mode| bits | mode.bit()),
            prefix: Vec::new(),
            numbered: Arc::new(Mutex::new((0, sender))),
        }
    }

    /// The sink for the child run of subgraph node `node_id`: its events go
    /// to the same stream, with their path.
    pub(crate) fn nested(&self, node_id: &str) -> EventSink {
        let mut prefix = self.prefix.clone();
        prefix.push(node_id.to_owned());
        EventSink { modes: self.modes, prefix, numbered: Arc::clone(&self.numbered) }
    }

    pub(crate) fn wants(&self, mode: StreamMode) -> bool {
        self.modes & mode.bit() != 0
    }

    /// Sends an event of `mode` if that mode was asked for; the payload is only
    /// built then.
    pub(crate) fn send(&self, mode: StreamMode, node_id: Option<&str>, payload: impl FnOnce() -> Value) {
        if !self.wants(mode) {
            return;
        }
        let payload = payload();
        let path = match self.prefix.is_empty() {
            true => Vec::new(),
            false => self.prefix.iter().map(String::as_str).chain(node_id).map(str::to_owned).collect(),
        };
        let mut numbered = self.numbered.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (seq, sender) = &mut *numbered;
        let event = Event { mode, payload, node_id: node_id.map(str::to_owned), seq: *seq, path };
        // A closed receiver means the stream was dropped: nobody is listening.
        if sender.send(event).is_ok() {
            *seq += 1;
        }
    }
}

/// The events of a streamed run, as they happen. A failing step ends the
/// stream with its error, after that step's events.
///
/// Dropping the stream stops the run between steps (or inside a step, at the
/// handler's next await point); the engine keeps the state it had reached.
pub struct EventStream<'a> {
    drive: Option<BoxFuture<'a, Result<(), EngineError>>>,
    events: mpsc::UnboundedReceiver<Event>,
    error: Option<EngineError>,
}

impl<'a> EventStream<'a> {
    pub(crate) fn new(
        drive: BoxFuture<'a, Result<(), EngineError>>,
        events: mpsc::UnboundedReceiver<Event>,
    ) -> Self {
        EventStream { drive: Some(drive), events, error: None }
    }
}

impl Stream for EventStream<'_> {
    type Item = Result<Event, EngineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Ok(event) = this.events.try_recv() {
                return Poll::Ready(Some(Ok(event)));
            }
            let Some(drive) = this.drive.as_mut() else {
                return Poll::Ready(this.error.take().map(Err));
            };
            match drive.as_mut().poll(cx) {
                Poll::Ready(result) => {
                    this.drive = None;
                    this.error = result.err();
                }
                Poll::Pending => {
                    // Events sent while the run was polled are picked up above;
                    // anything else wakes us through the run's own wakers.
                    if let Ok(event) = this.events.try_recv() {
                        return Poll::Ready(Some(Ok(event)));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
