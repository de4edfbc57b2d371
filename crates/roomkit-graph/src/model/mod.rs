//! The graph model: what a workflow is, as data.

mod edge;
mod graph;
mod node;
mod trigger;

pub use edge::Edge;
pub use graph::{Concurrency, Graph, GraphError};
pub use node::{Node, NodeType};
pub use trigger::Trigger;
