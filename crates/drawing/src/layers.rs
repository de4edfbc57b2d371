//! Rows: which edges close a loop (drawn back up), each box's row, and the
//! waypoints that carry longer edges and labels across the rows between.
//!
//! Rows are counted twice over: boxes sit on even rows, and every edge
//! crosses at least one odd row on a waypoint, which holds its label when it
//! has one, so labels between rows never sit on a box.

use std::collections::VecDeque;

use crate::tree::{Tree, TreeEdge};

/// The most waypoints a picture holds: past them, an edge gets one waypoint
/// (holding its label) and runs straight on from it, so a graph of long
/// edges across many rows stays cheap to draw.
const MAX_WAYPOINTS: usize = 20_000;
/// How wide a waypoint is without a label.
const WAYPOINT_W: f64 = 6.0;
/// How tall a label is.
pub(crate) const LABEL_H: f64 = 16.0;

/// Each top-level box's rank, and which edges go back.
pub(crate) struct Ranked {
    /// By tree node (top-level ones only are meaningful).
    pub(crate) rank: Vec<usize>,
    /// By edge: whether it closes a loop.
    pub(crate) back: Vec<bool>,
}

impl Ranked {
    pub(crate) fn of(tree: &Tree<'_>, edges: &[TreeEdge]) -> Ranked {
        let lifted: Vec<(usize, usize)> =
            edges.iter().map(|edge| (tree.nodes[edge.source].top, tree.nodes[edge.target].top)).collect();
        let back = back_edges(tree, &lifted);
        let n = tree.nodes.len();
        let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut pred: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (e, &(from, to)) in lifted.iter().enumerate() {
            if from != to {
                let (u, v) = if back[e] { (to, from) } else { (from, to) };
                succ[u].push(v);
                pred[v].push(u);
            }
        }
        let mut rank = longest_paths(tree, &succ, &pred);
        // A box nothing leads to (other than start) sits just above the first
        // box it leads to, not on the top row.
        for &i in &tree.tops {
            if pred[i].is_empty()
                && Some(i) != tree.start
                && let Some(lowest) = succ[i].iter().map(|&s| rank[s]).min()
            {
                rank[i] = lowest.saturating_sub(1);
            }
        }
        if let Some(start) = tree.start
            && tree.tops.iter().any(|&i| i != start && rank[i] <= rank[start])
        {
            for &i in tree.tops.iter().filter(|&&i| i != start) {
                rank[i] += 1;
            }
        }
        Ranked { rank, back }
    }
}

/// The edges that close a loop, found by a walk from `start` first, then from
/// every box not reached yet, in the graph's order: an edge back to a box
/// still being walked. Every edge into `start` counts as one too, so `start`
/// stays on top.
fn back_edges(tree: &Tree<'_>, lifted: &[(usize, usize)]) -> Vec<bool> {
    let n = tree.nodes.len();
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (e, &(from, to)) in lifted.iter().enumerate() {
        if from != to {
            out[from].push(e);
        }
    }
    let mut back: Vec<bool> = lifted.iter().map(|&(from, to)| from != to && Some(to) == tree.start).collect();
    const NEW: u8 = 0;
    const WALKING: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; n];
    for root in tree.start.into_iter().chain(tree.tops.iter().copied()) {
        if state[root] != NEW {
            continue;
        }
        state[root] = WALKING;
        let mut stack = vec![(root, 0)];
        while let Some(&mut (at, ref mut next)) = stack.last_mut() {
            match out[at].get(*next) {
                Some(&e) => {
                    *next += 1;
                    let to = lifted[e].1;
                    match state[to] {
                        NEW => {
                            state[to] = WALKING;
                            stack.push((to, 0));
                        }
                        WALKING => back[e] = true,
                        _ => {}
                    }
                }
                None => {
                    state[at] = DONE;
                    stack.pop();
                }
            }
        }
    }
    back
}

/// Each box's longest path from a box nothing leads to (the edges form no
/// loop once the back edges are turned round).
fn longest_paths(tree: &Tree<'_>, succ: &[Vec<usize>], pred: &[Vec<usize>]) -> Vec<usize> {
    let mut rank = vec![0; tree.nodes.len()];
    let mut waiting: Vec<usize> = pred.iter().map(Vec::len).collect();
    let mut ready: VecDeque<usize> = tree.tops.iter().copied().filter(|&i| waiting[i] == 0).collect();
    while let Some(u) = ready.pop_front() {
        for &v in &succ[u] {
            rank[v] = rank[v].max(rank[u] + 1);
            waiting[v] -= 1;
            if waiting[v] == 0 {
                ready.push_back(v);
            }
        }
    }
    rank
}

/// A box or a waypoint on a row.
pub(crate) struct Slot {
    pub(crate) w: f64,
    pub(crate) h: f64,
    pub(crate) row: usize,
    /// The tree node it draws; none for a waypoint.
    pub(crate) node: Option<usize>,
    /// The slots on the row above it joined to it, and below.
    pub(crate) up: Vec<usize>,
    pub(crate) down: Vec<usize>,
}

/// An edge between two boxes, as the slots it passes, top to bottom.
pub(crate) struct Chain {
    pub(crate) slots: Vec<usize>,
    pub(crate) back: bool,
    /// The waypoint holding its label.
    pub(crate) label: Option<usize>,
}

/// The rows, each with its slots in order.
pub(crate) struct Layered {
    pub(crate) slots: Vec<Slot>,
    pub(crate) rows: Vec<Vec<usize>>,
    /// By edge: its chain, none for an edge within one top-level box.
    pub(crate) chains: Vec<Option<Chain>>,
    /// By tree node: its slot, for top-level boxes.
    pub(crate) slot_of: Vec<Option<usize>>,
}

impl Layered {
    pub(crate) fn of(tree: &Tree<'_>, edges: &[TreeEdge], ranked: &Ranked) -> Layered {
        let mut slots = Vec::new();
        let mut slot_of = vec![None; tree.nodes.len()];
        for &i in &tree.tops {
            slot_of[i] = Some(slots.len());
            let node = &tree.nodes[i];
            slots.push(Slot {
                w: node.w,
                h: node.h,
                row: 2 * ranked.rank[i],
                node: Some(i),
                up: vec![],
                down: vec![],
            });
        }
        let mut budget = MAX_WAYPOINTS;
        let chains = edges
            .iter()
            .enumerate()
            .map(|(e, edge)| {
                let (from, to) = (tree.nodes[edge.source].top, tree.nodes[edge.target].top);
                let (from, to) = (slot_of[from]?, slot_of[to]?);
                if from == to {
                    return None;
                }
                let back = ranked.back[e];
                let (upper, lower) = if back { (to, from) } else { (from, to) };
                let label = edge.label.as_ref().map(|(text, _)| text.as_str());
                Some(chain(&mut slots, &mut budget, (upper, lower), back, label))
            })
            .collect();
        let height = slots.iter().map(|slot| slot.row + 1).max().unwrap_or(0);
        let mut rows = vec![Vec::new(); height];
        for (s, slot) in slots.iter().enumerate() {
            rows[slot.row].push(s);
        }
        Layered { slots, rows, chains, slot_of }
    }
}

/// Adds the waypoints of an edge from `upper` down to `lower`; a label goes on
/// the waypoint nearest where the edge is decided (its source).
fn chain(
    slots: &mut Vec<Slot>,
    budget: &mut usize,
    (upper, lower): (usize, usize),
    back: bool,
    label: Option<&str>,
) -> Chain {
    let (top, bottom) = (slots[upper].row, slots[lower].row);
    let mut rows = top + 1..bottom;
    if rows.len() > *budget {
        rows = top + 1..top + 2;
    }
    *budget = budget.saturating_sub(rows.len());
    let mut path = vec![upper];
    for row in rows {
        path.push(slots.len());
        slots.push(Slot { w: WAYPOINT_W, h: 0.0, row, node: None, up: vec![], down: vec![] });
    }
    path.push(lower);
    let label = label.map(|text| {
        let at = if back { path[path.len() - 2] } else { path[1] };
        slots[at].w = crate::label::text_width(text, crate::label::KIND_FONT, false) + 8.0;
        slots[at].h = LABEL_H;
        at
    });
    for pair in path.windows(2) {
        slots[pair[0]].down.push(pair[1]);
        slots[pair[1]].up.push(pair[0]);
    }
    Chain { slots: path, back, label }
}
