//! The handlers runs use: the built-in nodes, the AI nodes when `--agents`
//! names an agents file, and the notification node when `--channels` names a
//! channels file. Without them, those node types fail saying which option
//! they need. Beside them, the checks every graph passes before it is
//! accepted: the trigger's, and those of the AI and notification nodes
//! against the same files.

use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use async_trait::async_trait;
use roomkit_graph::{Checks, HandlerError, Handlers, HumanHandler, Node, NodeHandler, NodeResult, Scope};
use roomkit_graph_ai::{AgentCheck, Agents, AgentsError};
use roomkit_graph_notify::{Channels, NotificationHandler};
use roomkit_graph_triggers::TriggerCheck;

/// The agents and channels files, loaded.
#[derive(Default)]
pub(crate) struct NodeSetup {
    agents: Option<Arc<Agents>>,
    notifications: Option<NotificationHandler>,
}

impl NodeSetup {
    /// Loads the files that are given; a mistake in one names the file and
    /// its place in it (line and column, or agent / channel and field).
    pub(crate) fn load(agents: Option<&Path>, channels: Option<&Path>) -> anyhow::Result<Self> {
        // The messages are whole: they name the file and quote the I/O error
        // already, which its chained source would repeat.
        let agents = agents
            .map(|path| {
                Agents::load(path).map_err(|error| match error {
                    AgentsError::Read { .. } => anyhow!("{error}"),
                    error => anyhow!("{}: {error}", path.display()),
                })
            })
            .transpose()?;
        let channels =
            channels.map(|path| Channels::from_path(path).map_err(|error| anyhow!("{error}"))).transpose()?;
        Ok(NodeSetup { agents: agents.map(Arc::new), notifications: channels.map(NotificationHandler::new) })
    }

    /// The built-in handlers, with the AI and notification handlers the files
    /// allow, and in place of each missing one a handler that fails naming
    /// the option to pass.
    pub(crate) fn handlers(&self) -> Handlers {
        let builtin = Handlers::builtin().with("human", HumanHandler);
        let handlers = match &self.agents {
            Some(agents) => roomkit_graph_ai::register(builtin, Arc::clone(agents)),
            None => {
                let missing = Unconfigured { file: "an agents file", option: "--agents", env: AGENTS_ENV };
                builtin.with("agent", missing).with("orchestration", missing)
            }
        };
        match &self.notifications {
            Some(notifications) => handlers.with("notification", notifications.clone()),
            None => handlers.with(
                "notification",
                Unconfigured { file: "a channels file", option: "--channels", env: CHANNELS_ENV },
            ),
        }
    }

    /// The checks of every place that accepts a graph (`validate`, `run`,
    /// the server's graph routes): the trigger's, and for each file given,
    /// those of the nodes its handlers serve.
    pub(crate) fn checks(&self) -> Checks {
        let mut checks = Checks::new().with(TriggerCheck);
        if let Some(agents) = &self.agents {
            checks = checks.with(AgentCheck::new(Arc::clone(agents)));
        }
        if let Some(notifications) = &self.notifications {
            checks = checks.with(notifications.graph_check());
        }
        checks
    }
}

/// The environment variables standing for `--agents` and `--channels`.
pub(crate) const AGENTS_ENV: &str = "ROOMKIT_GRAPH_AGENTS";
pub(crate) const CHANNELS_ENV: &str = "ROOMKIT_GRAPH_CHANNELS";

/// Serves a node type whose file was not given: the node fails saying so.
#[derive(Clone, Copy)]
struct Unconfigured {
    file: &'static str,
    option: &'static str,
    env: &'static str,
}

#[async_trait]
impl NodeHandler for Unconfigured {
    async fn execute(&self, node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        Err(HandlerError::execution(format!(
            "{} nodes need {}: pass {} FILE (or set {})",
            node.node_type, self.file, self.option, self.env
        ))
        .permanent())
    }
}
