//! Draws a roomkit-graph workflow as a picture: [`layout`] places its nodes
//! and routes its edges, [`render_svg`] writes them as SVG, with a run's path
//! marked on it by an [`Overlay`].
//!
//! The layout is layered, top to bottom: `start` alone on the top row, each
//! node below the nodes it comes from, branches side by side, loops drawn back
//! up, a `parallel` node as a box holding its children in a row, edge
//! conditions as short labels, error routes dashed. It is a pure function of
//! the graph (the same graph always gives the same picture), so a server
//! computes it once per graph version; an overlay only adds classes and
//! badges, never moves anything.
//!
//! Inside: `tree` finds the boxes (a parallel node and its children),
//! `layers` breaks cycles and ranks the boxes, `order` sorts each row to cut
//! crossings, `place` sets coordinates, `route` draws the edges through them,
//! `label` shortens text, `svg` writes the picture.
//!
//! ```
//! use roomkit_graph::Graph;
//! use roomkit_graph_drawing::{Overlay, layout, render_svg};
//!
//! let graph = Graph::from_json(r#"{
//!     "id": "review", "name": "Review", "trigger": {"type": "manual"},
//!     "nodes": [{"id": "start", "type": "start"}, {"id": "approve", "type": "human"},
//!               {"id": "end", "type": "end"}],
//!     "edges": [{"source": "start", "target": "approve"}, {"source": "approve", "target": "end"}]
//! }"#)?;
//! let drawing = layout(&graph)?;
//! let [start, approve, end] = [0, 1, 2].map(|i| &drawing.nodes[i].rect);
//! assert!(start.y + start.h < approve.y && approve.y + approve.h < end.y);
//!
//! let overlay = Overlay { done: ["start".into()].into(), current: ["approve".into()].into(),
//!                         taken: [0].into(), ..Overlay::default() };
//! let svg = render_svg(&drawing, Some(&overlay));
//! assert!(svg.contains(r#"class="node kind-human current" data-node="approve""#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod label;
mod layers;
mod order;
mod place;
mod route;
mod svg;
mod tree;

use std::collections::BTreeSet;

use roomkit_graph::Graph;

pub use label::MAX_LABEL;
pub use svg::render_svg;

/// A point, in SVG user units (pixels) from the picture's top left corner.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Rightwards.
    pub x: f64,
    /// Downwards.
    pub y: f64,
}

/// A box: its top left corner, width and height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    /// Left side.
    pub x: f64,
    /// Top side.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

impl Rect {
    /// The right side.
    pub fn right(&self) -> f64 {
        self.x + self.w
    }

    /// The bottom side.
    pub fn bottom(&self) -> f64 {
        self.y + self.h
    }

    /// The centre.
    pub fn center(&self) -> Point {
        Point { x: self.x + self.w / 2.0, y: self.y + self.h / 2.0 }
    }

    /// Whether `other` lies wholly inside this box (touching the sides counts).
    ///
    /// ```
    /// use roomkit_graph_drawing::Rect;
    ///
    /// let outer = Rect { x: 0.0, y: 0.0, w: 100.0, h: 50.0 };
    /// assert!(outer.contains(&Rect { x: 10.0, y: 10.0, w: 90.0, h: 20.0 }));
    /// assert!(!outer.contains(&Rect { x: 10.0, y: 10.0, w: 91.0, h: 20.0 }));
    /// ```
    pub fn contains(&self, other: &Rect) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.right() <= self.right()
            && other.bottom() <= self.bottom()
    }

    /// Whether the two boxes share any area (touching sides do not).
    ///
    /// ```
    /// use roomkit_graph_drawing::Rect;
    ///
    /// let a = Rect { x: 0.0, y: 0.0, w: 10.0, h: 10.0 };
    /// assert!(a.overlaps(&Rect { x: 9.0, y: 9.0, w: 5.0, h: 5.0 }));
    /// assert!(!a.overlaps(&Rect { x: 10.0, y: 0.0, w: 5.0, h: 5.0 }));
    /// ```
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.right() && other.x < self.right() && self.y < other.bottom() && other.y < self.bottom()
    }
}

/// A graph laid out: where each node's box is and the route of each edge.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The picture's width.
    pub width: f64,
    /// The picture's height.
    pub height: f64,
    /// The graph's title (its name, else its id).
    pub title: String,
    /// Each node, in the graph's order.
    pub nodes: Vec<PlacedNode>,
    /// Each edge between two nodes of the graph, in the graph's order (an
    /// edge naming a node the graph lacks is left out).
    pub edges: Vec<PlacedEdge>,
}

/// A node's box.
#[derive(Clone, Debug, PartialEq)]
pub struct PlacedNode {
    /// The node's id.
    pub id: String,
    /// Its type (`agent`, `human`, a custom type …).
    pub kind: String,
    /// The box's second line: its type and what it uses, when its config
    /// says (an agent's `agent_id`, a notification's `channel`, a function's
    /// `function`, a subgraph's `graph_id`, a parallel node's `join`):
    /// `agent · triage-agent`, `parallel · join all`.
    pub caption: String,
    /// Where its box is.
    pub rect: Rect,
    /// The parallel node holding it (an index into [`Layout::nodes`]).
    pub parent: Option<usize>,
    /// Whether it is a parallel node drawn around its children.
    pub compound: bool,
}

/// An edge's route.
#[derive(Clone, Debug, PartialEq)]
pub struct PlacedEdge {
    /// The edge's index in the graph's `edges`.
    pub index: usize,
    /// The node it leaves (an index into [`Layout::nodes`]).
    pub source: usize,
    /// The node it enters.
    pub target: usize,
    /// The route, from the border of the source's box to the target's (for
    /// a node inside a parallel node, the outermost parallel node's box when
    /// the edge leaves it): the points a smooth line passes through (for an
    /// edge from a node to itself, the loop's two ends and its two control points).
    pub points: Vec<Point>,
    /// Its condition in short, and where the label goes.
    pub label: Option<EdgeLabel>,
    /// Whether it is an error route (`{"type": "error"}`): drawn dashed.
    pub error: bool,
    /// Whether it goes back up (closing a loop).
    pub back: bool,
}

/// An edge's condition as a label.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeLabel {
    /// The label as shown (at most [`MAX_LABEL`] characters).
    pub text: String,
    /// The whole condition, shown on hover.
    pub full: String,
    /// The label's centre.
    pub at: Point,
}

/// A run's marks on its graph's picture: they add classes and badges to the
/// nodes and edges they name, and move nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overlay {
    /// The nodes the run has finished.
    pub done: BTreeSet<String>,
    /// Where the run is now: the node it runs, or the nodes it waits on.
    pub current: BTreeSet<String>,
    /// The nodes that failed.
    pub failed: BTreeSet<String>,
    /// The edges the run took (indices into the graph's `edges`).
    pub taken: BTreeSet<usize>,
}

/// The most nodes a drawn graph may have.
pub const MAX_NODES: usize = 5_000;
/// The most edges a drawn graph may have.
pub const MAX_EDGES: usize = 10_000;

/// A graph too large to draw: more than [`MAX_NODES`] nodes or [`MAX_EDGES`] edges.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the graph has {nodes} nodes and {edges} edges: a picture is drawn of at most {MAX_NODES} nodes and {MAX_EDGES} edges"
)]
pub struct TooLarge {
    /// How many nodes it has.
    pub nodes: usize,
    /// How many edges it has.
    pub edges: usize,
}

/// Lays `graph` out: see the crate's documentation. Any graph can be laid
/// out, one that does not validate too (a missing `start`, a dangling edge, a
/// `parent` that is not a parallel node or loops back are drawn as they can
/// be), unless it is too large: [`MAX_NODES`], [`MAX_EDGES`]. It takes about
/// a tenth of a second at the limits.
///
/// ```
/// use roomkit_graph::{Graph, Node, Trigger};
/// use roomkit_graph_drawing::{MAX_NODES, layout};
///
/// let mut graph = Graph::new("big", "Big", Trigger::manual());
/// graph.add_nodes((0..=MAX_NODES).map(|i| Node::new(format!("n{i}"), "log")))?;
/// assert_eq!(layout(&graph).unwrap_err().nodes, MAX_NODES + 1);
/// # Ok::<(), roomkit_graph::GraphError>(())
/// ```
pub fn layout(graph: &Graph) -> Result<Layout, TooLarge> {
    let (nodes, edges) = (graph.nodes().len(), graph.edges.len());
    if nodes > MAX_NODES || edges > MAX_EDGES {
        return Err(TooLarge { nodes, edges });
    }
    let tree = tree::Tree::of(graph);
    let edges = tree.edges(graph);
    let ranked = layers::Ranked::of(&tree, &edges);
    let mut layered = layers::Layered::of(&tree, &edges, &ranked);
    order::order(&mut layered);
    let placed = place::place(&tree, &layered, &route::loop_rooms(&tree, &edges));
    let routes = route::route(&tree, &edges, &layered, &placed);
    let title = if graph.name.is_empty() { graph.id.clone() } else { graph.name.clone() };
    Ok(Layout { width: placed.width, height: placed.height, title, nodes: placed.nodes, edges: routes })
}
