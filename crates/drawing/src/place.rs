//! Coordinates: each row's height and place down the picture, and each slot's
//! place along its row, pulled under (and over) its neighbours while keeping
//! the row's order and spacing.

use crate::layers::Layered;
use crate::tree::Tree;
use crate::{PlacedNode, Point, Rect};

/// Space around the picture.
const MARGIN: f64 = 16.0;
/// Space above and below each row.
const ROW_GAP: f64 = 10.0;
/// Space between two boxes on a row.
const BOX_GAP: f64 = 28.0;
/// Space beside a waypoint.
const WAYPOINT_GAP: f64 = 12.0;
/// Room on a box's right for an edge from the box to itself.
pub(crate) const LOOP_ROOM: f64 = 30.0;
/// Passes that pull slots towards their neighbours.
const PASSES: usize = 8;

/// Where everything is.
pub(crate) struct Placed {
    pub(crate) width: f64,
    pub(crate) height: f64,
    /// By tree node.
    pub(crate) nodes: Vec<PlacedNode>,
    /// By slot: its centre.
    pub(crate) centers: Vec<Point>,
}

/// `loop_rooms`: by tree node, the room on its right for its loops.
pub(crate) fn place(tree: &Tree<'_>, layered: &Layered, loop_rooms: &[f64]) -> Placed {
    let room = |s: usize| layered.slots[s].node.map_or(0.0, |node| loop_rooms[node]);
    let gaps: Vec<Vec<f64>> = layered
        .rows
        .iter()
        .map(|row| {
            row.windows(2)
                .map(|pair| {
                    let [a, b] = [pair[0], pair[1]].map(|s| &layered.slots[s]);
                    let gap = if a.node.is_some() && b.node.is_some() { BOX_GAP } else { WAYPOINT_GAP };
                    (a.w + b.w) / 2.0 + gap + room(pair[0])
                })
                .collect()
        })
        .collect();
    let mut x = vec![0.0; layered.slots.len()];
    for (row, gaps) in layered.rows.iter().zip(&gaps) {
        let mut at = 0.0;
        for (i, &s) in row.iter().enumerate() {
            x[s] = at;
            at += gaps.get(i).copied().unwrap_or_default();
        }
    }
    for pass in 0..PASSES {
        let (up, down) = match pass % 3 {
            0 => (true, false),
            1 => (false, true),
            _ => (true, true),
        };
        let rows: Vec<usize> = if down && !up {
            (0..layered.rows.len()).rev().collect()
        } else {
            (0..layered.rows.len()).collect()
        };
        for r in rows {
            pull(layered, r, &gaps[r], &mut x, up, down);
        }
    }
    let left =
        layered.rows.iter().flatten().map(|&s| x[s] - layered.slots[s].w / 2.0).fold(f64::INFINITY, f64::min);
    let shift = if left.is_finite() { MARGIN - left } else { MARGIN };
    let mut centers = vec![Point { x: 0.0, y: 0.0 }; layered.slots.len()];
    let mut y = MARGIN - ROW_GAP;
    for row in &layered.rows {
        let height = row.iter().map(|&s| layered.slots[s].h).fold(0.0, f64::max);
        y += ROW_GAP;
        for &s in row {
            centers[s] = Point { x: round(x[s] + shift), y: round(y + height / 2.0) };
        }
        y += height + ROW_GAP;
    }
    let nodes = boxes(tree, layered, &centers);
    let width = layered
        .rows
        .iter()
        .flatten()
        .map(|&s| centers[s].x + layered.slots[s].w / 2.0 + room(s))
        .fold(0.0, f64::max)
        + MARGIN;
    Placed { width: round(width.max(2.0 * MARGIN)), height: round(y.max(MARGIN) + MARGIN), nodes, centers }
}

/// Moves row `r`'s slots as near the mean of their neighbours (above, below
/// or both) as the row's order and spacing allow.
fn pull(layered: &Layered, r: usize, gaps: &[f64], x: &mut [f64], up: bool, down: bool) {
    let row = &layered.rows[r];
    let mut wanted = Vec::with_capacity(row.len());
    for &s in row {
        let slot = &layered.slots[s];
        let mut sum = 0.0;
        let mut weight = 0.0;
        let near = (if up { slot.up.as_slice() } else { &[] }).iter().chain(if down {
            slot.down.as_slice()
        } else {
            &[]
        });
        for &n in near {
            // Waypoint to waypoint weighs most, so long edges run straight.
            let w = match (slot.node, layered.slots[n].node) {
                (None, None) => 8.0,
                (None, _) | (_, None) => 2.0,
                _ => 1.0,
            };
            sum += w * x[n];
            weight += w;
        }
        if weight == 0.0 {
            wanted.push((x[s], 0.01));
        } else {
            wanted.push((sum / weight, weight));
        }
    }
    let placed = spaced(&wanted, gaps);
    for (&s, at) in row.iter().zip(placed) {
        x[s] = at;
    }
}

/// The places nearest `wanted` (each with its weight, by least weighted
/// squares) that keep at least `gaps[i]` between place `i` and `i + 1`: pool
/// adjacent violators on the places less their least offsets.
fn spaced(wanted: &[(f64, f64)], gaps: &[f64]) -> Vec<f64> {
    let mut offsets = Vec::with_capacity(wanted.len());
    let mut offset = 0.0;
    for i in 0..wanted.len() {
        offsets.push(offset);
        offset += gaps.get(i).copied().unwrap_or_default();
    }
    // Blocks of (weight, weighted sum, count), each block's mean rising.
    let mut blocks: Vec<(f64, f64, usize)> = Vec::new();
    for (&(at, weight), offset) in wanted.iter().zip(&offsets) {
        blocks.push((weight, weight * (at - offset), 1));
        while blocks.len() > 1 {
            let [.., (w1, s1, _), (w2, s2, _)] = blocks.as_slice() else { break };
            if s1 / w1 <= s2 / w2 {
                break;
            }
            let (w2, s2, c2) = blocks.pop().unwrap_or_default();
            if let Some(last) = blocks.last_mut() {
                *last = (last.0 + w2, last.1 + s2, last.2 + c2);
            }
        }
    }
    let mut places = Vec::with_capacity(wanted.len());
    for (weight, sum, count) in blocks {
        for _ in 0..count {
            let offset = offsets[places.len()];
            places.push(sum / weight + offset);
        }
    }
    places
}

/// Each node's box: top-level ones centred on their slots, the rest inside
/// their parallel node's.
fn boxes(tree: &Tree<'_>, layered: &Layered, centers: &[Point]) -> Vec<PlacedNode> {
    let mut rects: Vec<Rect> = vec![Rect { x: 0.0, y: 0.0, w: 0.0, h: 0.0 }; tree.nodes.len()];
    let mut stack: Vec<usize> = Vec::new();
    for &top in &tree.tops {
        if let Some(s) = layered.slot_of[top] {
            let node = &tree.nodes[top];
            let c = centers[s];
            rects[top] =
                Rect { x: round(c.x - node.w / 2.0), y: round(c.y - node.h / 2.0), w: node.w, h: node.h };
            stack.push(top);
        }
    }
    while let Some(parent) = stack.pop() {
        for &child in &tree.nodes[parent].children {
            let node = &tree.nodes[child];
            let (dx, dy) = node.offset;
            rects[child] =
                Rect { x: round(rects[parent].x + dx), y: round(rects[parent].y + dy), w: node.w, h: node.h };
            stack.push(child);
        }
    }
    tree.nodes
        .iter()
        .zip(rects)
        .map(|(node, rect)| PlacedNode {
            id: node.node.id.clone(),
            kind: node.node.node_type.as_str().to_owned(),
            caption: crate::tree::caption(node),
            rect,
            parent: node.parent,
            compound: !node.children.is_empty(),
        })
        .collect()
}

/// Rounds to a tenth of a pixel, so the picture's numbers stay short.
pub(crate) fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_keep_their_spacing_and_come_as_near_as_they_can() {
        // Free to sit where wanted.
        assert_eq!(spaced(&[(0.0, 1.0), (100.0, 1.0)], &[50.0]), [0.0, 100.0]);
        // Both want 0: they share the difference.
        assert_eq!(spaced(&[(0.0, 1.0), (0.0, 1.0)], &[50.0]), [-25.0, 25.0]);
        // The heavier one moves less.
        assert_eq!(spaced(&[(0.0, 3.0), (0.0, 1.0)], &[40.0]), [-10.0, 30.0]);
        let three = spaced(&[(10.0, 1.0), (0.0, 1.0), (5.0, 1.0)], &[10.0, 10.0]);
        assert!(three.windows(2).all(|w| w[1] - w[0] >= 10.0 - 1e-9), "{three:?}");
    }
}
