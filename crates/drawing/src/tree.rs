//! The boxes to lay out: each node once, a parallel node holding its children
//! (laid out in a row inside it), and the edges between the top-level boxes.

use std::collections::HashMap;

use roomkit_graph::{Condition, Graph, Node, NodeType};

use crate::label;

/// A box's height.
pub(crate) const NODE_H: f64 = 46.0;
/// A box's narrowest width.
const MIN_W: f64 = 104.0;
/// A box's widest width: longer ids are cut.
pub(crate) const MAX_W: f64 = 240.0;
/// Space between a parallel node's border and its children.
const PAD: f64 = 12.0;
/// A parallel node's title row.
const HEADER: f64 = 30.0;
/// Space between two children of a parallel node.
const CHILD_GAP: f64 = 16.0;
/// Space between a box's text and its sides.
pub(crate) const TEXT_PAD: f64 = 14.0;

/// A node with its place in the tree of parallel nodes.
pub(crate) struct TreeNode<'g> {
    pub(crate) node: &'g Node,
    pub(crate) detail: Option<String>,
    /// The parallel node holding it.
    pub(crate) parent: Option<usize>,
    /// The nodes it holds, in the graph's order.
    pub(crate) children: Vec<usize>,
    /// Its outermost holder (itself when it is top-level).
    pub(crate) top: usize,
    /// Its box's size.
    pub(crate) w: f64,
    pub(crate) h: f64,
    /// Where its box sits inside its parent's, from the parent's top left.
    pub(crate) offset: (f64, f64),
}

/// The graph's nodes as boxes.
pub(crate) struct Tree<'g> {
    pub(crate) nodes: Vec<TreeNode<'g>>,
    /// The top-level boxes, in the graph's order.
    pub(crate) tops: Vec<usize>,
    /// The first `start` node, if it is top-level.
    pub(crate) start: Option<usize>,
    index: HashMap<&'g str, usize>,
}

/// An edge between two nodes of the tree.
pub(crate) struct TreeEdge {
    /// Its index in the graph's edges.
    pub(crate) index: usize,
    pub(crate) source: usize,
    pub(crate) target: usize,
    /// Its condition, in short and in full.
    pub(crate) label: Option<(String, String)>,
    pub(crate) error: bool,
}

impl<'g> Tree<'g> {
    pub(crate) fn of(graph: &'g Graph) -> Tree<'g> {
        // A graph's node ids are its own (reading or building one refuses a repeat).
        let index: HashMap<&str, usize> =
            graph.nodes().iter().enumerate().map(|(i, node)| (node.id.as_str(), i)).collect();
        let mut nodes: Vec<TreeNode<'g>> = graph
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, node)| TreeNode {
                node,
                detail: detail(node),
                parent: None,
                children: Vec::new(),
                top: i,
                w: 0.0,
                h: 0.0,
                offset: (0.0, 0.0),
            })
            .collect();
        let parents = parents(&nodes, &index);
        for (child, parent) in parents.iter().enumerate() {
            nodes[child].parent = *parent;
            if let Some(parent) = parent {
                nodes[*parent].children.push(child);
            }
        }
        let depths = depths(&parents);
        for (i, node) in nodes.iter_mut().enumerate() {
            node.top = top(&parents, i);
        }
        let mut deepest_first: Vec<usize> = (0..nodes.len()).collect();
        deepest_first.sort_by_key(|&i| std::cmp::Reverse(depths[i]));
        for i in deepest_first {
            size(&mut nodes, i);
        }
        let tops: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].parent.is_none()).collect();
        let start = tops.iter().copied().find(|&i| nodes[i].node.node_type == NodeType::Start);
        Tree { nodes, tops, start, index }
    }

    /// The graph's edges between nodes it has, in its order.
    pub(crate) fn edges(&self, graph: &Graph) -> Vec<TreeEdge> {
        graph
            .edges
            .iter()
            .enumerate()
            .filter_map(|(index, edge)| {
                let source = *self.index.get(edge.source.as_str())?;
                let target = *self.index.get(edge.target.as_str())?;
                let full = edge.condition.as_ref().and_then(label::condition);
                let label = full.map(|full| (label::shorten(&full, label::MAX_LABEL), full));
                let error = matches!(edge.condition, Some(Condition::Error));
                Some(TreeEdge { index, source, target, label, error })
            })
            .collect()
    }
}

/// What a node uses, as its config names it.
fn detail(node: &Node) -> Option<String> {
    ["agent_id", "channel", "function", "graph_id"]
        .iter()
        .find_map(|key| node.config.get(*key)?.as_str())
        .map(str::to_owned)
}

/// Each node's parallel node: its `parent` when that is a parallel node of
/// the graph and no loop of parents leads back to it.
fn parents(nodes: &[TreeNode<'_>], index: &HashMap<&str, usize>) -> Vec<Option<usize>> {
    let mut parents: Vec<Option<usize>> = nodes
        .iter()
        .enumerate()
        .map(|(i, tree_node)| {
            let parent = *index.get(tree_node.node.parent.as_deref()?)?;
            (parent != i && nodes[parent].node.node_type == NodeType::Parallel).then_some(parent)
        })
        .collect();
    // Walk up from each node once; a walk that meets itself found a loop,
    // whose nodes are all made top-level.
    const NEW: u8 = 0;
    const WALKING: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; nodes.len()];
    for first in 0..nodes.len() {
        let mut path = Vec::new();
        let mut at = Some(first);
        while let Some(i) = at {
            match state[i] {
                NEW => {
                    state[i] = WALKING;
                    path.push(i);
                    at = parents[i];
                }
                WALKING => {
                    let from = path.iter().position(|&p| p == i).unwrap_or(0);
                    for &looped in &path[from..] {
                        parents[looped] = None;
                    }
                    at = None;
                }
                _ => at = None,
            }
        }
        for i in path {
            state[i] = DONE;
        }
    }
    parents
}

/// How many parallel nodes hold each node (parents have no loops).
fn depths(parents: &[Option<usize>]) -> Vec<usize> {
    let mut depths: Vec<Option<usize>> = vec![None; parents.len()];
    for first in 0..parents.len() {
        let mut path = Vec::new();
        let mut at = Some(first);
        let mut base = 0;
        while let Some(i) = at {
            if let Some(depth) = depths[i] {
                base = depth + 1;
                break;
            }
            path.push(i);
            at = parents[i];
        }
        for (up, &i) in path.iter().rev().enumerate() {
            depths[i] = Some(base + up);
        }
    }
    depths.into_iter().map(Option::unwrap_or_default).collect()
}

/// The outermost holder of `i`.
fn top(parents: &[Option<usize>], mut i: usize) -> usize {
    while let Some(parent) = parents[i] {
        i = parent;
    }
    i
}

/// Sizes node `i`'s box, its children's being sized already, and places the
/// children in a row inside it.
fn size(nodes: &mut [TreeNode<'_>], i: usize) {
    let title_w = label::text_width(&nodes[i].node.id, label::ID_FONT, true);
    let kind_w = label::text_width(&caption(&nodes[i]), label::KIND_FONT, false);
    if nodes[i].children.is_empty() {
        nodes[i].w = (title_w.max(kind_w) + 2.0 * TEXT_PAD).clamp(MIN_W, MAX_W);
        nodes[i].h = NODE_H;
        return;
    }
    let children = nodes[i].children.clone();
    let row: f64 =
        children.iter().map(|&c| nodes[c].w).sum::<f64>() + CHILD_GAP * (children.len() - 1) as f64;
    let header = (title_w + kind_w + 3.0 * TEXT_PAD).min(MAX_W * 1.5);
    let w = (row + 2.0 * PAD).max(header).max(MIN_W);
    let mut x = (w - row) / 2.0;
    let mut tallest: f64 = 0.0;
    for c in children {
        nodes[c].offset = (x, HEADER);
        x += nodes[c].w + CHILD_GAP;
        tallest = tallest.max(nodes[c].h);
    }
    nodes[i].w = w;
    nodes[i].h = HEADER + tallest + PAD;
}

/// A box's second line: its type, and what it uses.
pub(crate) fn caption(node: &TreeNode<'_>) -> String {
    let kind = node.node.node_type.as_str();
    match (&node.detail, node.node.node_type == NodeType::Parallel) {
        (_, true) => match node.node.config.get("join").and_then(|join| join.as_str()) {
            Some(join) => format!("parallel · join {join}"),
            None => "parallel".to_owned(),
        },
        (Some(detail), false) => format!("{kind} · {detail}"),
        (None, false) => kind.to_owned(),
    }
}
