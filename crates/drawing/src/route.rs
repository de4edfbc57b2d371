//! Edge routes: from the bottom of the box an edge leaves, through its
//! waypoints, into the top of the box it enters (turned round for an edge
//! going back up); a loop on the right of a box for an edge to itself; a
//! straight line between boxes inside one parallel node.

use crate::layers::{Chain, Layered};
use crate::place::{LOOP_ROOM, Placed, round};
use crate::tree::{Tree, TreeEdge};
use crate::{EdgeLabel, PlacedEdge, Point, Rect, label};

/// How far from a box's corner an edge may leave or enter it.
const CORNER: f64 = 10.0;

/// By tree node: the room its right side needs for the edges from the node
/// to itself, their labels included (none without such an edge).
pub(crate) fn loop_rooms(tree: &Tree<'_>, edges: &[TreeEdge]) -> Vec<f64> {
    let mut rooms = vec![0.0; tree.nodes.len()];
    for edge in edges.iter().filter(|edge| edge.source == edge.target) {
        let room = loop_room(edge.label.as_ref().map(|(text, _)| text.as_str()));
        rooms[edge.source] = f64::max(rooms[edge.source], room);
    }
    rooms
}

/// The room a loop takes on the right of its box, with its label.
fn loop_room(label: Option<&str>) -> f64 {
    LOOP_ROOM + label.map_or(0.0, |text| label::text_width(text, label::KIND_FONT, false) + 12.0)
}

pub(crate) fn route(
    tree: &Tree<'_>,
    edges: &[TreeEdge],
    layered: &Layered,
    placed: &Placed,
) -> Vec<PlacedEdge> {
    let rect = |node: usize| placed.nodes[node].rect;
    edges
        .iter()
        .zip(&layered.chains)
        .map(|(edge, chain)| {
            let (points, at) = match chain {
                Some(chain) => through(chain, layered, placed, tree),
                None if edge.source == edge.target => {
                    self_loop(rect(edge.source), edge.label.as_ref().map(|(text, _)| text.as_str()))
                }
                None => straight(rect(edge.source), rect(edge.target)),
            };
            PlacedEdge {
                index: edge.index,
                source: edge.source,
                target: edge.target,
                points,
                label: edge.label.as_ref().map(|(text, full)| EdgeLabel {
                    text: text.clone(),
                    full: full.clone(),
                    at,
                }),
                error: edge.error,
                back: chain.as_ref().is_some_and(|chain| chain.back),
            }
        })
        .collect()
}

/// The route of an edge between two top-level boxes, and where its label goes.
fn through(chain: &Chain, layered: &Layered, placed: &Placed, tree: &Tree<'_>) -> (Vec<Point>, Point) {
    let slots = &chain.slots;
    let box_of = |s: usize| layered.slots[s].node.map(|node| placed.nodes[tree.nodes[node].top].rect);
    let inner: Vec<Point> = slots[1..slots.len() - 1].iter().map(|&s| placed.centers[s]).collect();
    let (first, last) = (inner.first().copied(), inner.last().copied());
    let mut points = Vec::with_capacity(inner.len() + 2);
    if let (Some(upper), Some(next)) = (box_of(slots[0]), first) {
        points.push(Point { x: clamp_x(upper, next.x), y: upper.bottom() });
    }
    points.extend(inner);
    if let (Some(lower), Some(previous)) = (box_of(slots[slots.len() - 1]), last) {
        points.push(Point { x: clamp_x(lower, previous.x), y: lower.y });
    }
    if chain.back {
        points.reverse();
    }
    let at = chain.label.map(|s| placed.centers[s]).or(first).unwrap_or(Point { x: 0.0, y: 0.0 });
    (points, at)
}

fn clamp_x(rect: Rect, x: f64) -> f64 {
    let (low, high) = (rect.x + CORNER, rect.right() - CORNER);
    if low <= high { x.clamp(low, high) } else { rect.center().x }
}

/// A loop on the right of a box: its two ends and two control points, and
/// where its label goes (right of the loop).
fn self_loop(rect: Rect, label: Option<&str>) -> (Vec<Point>, Point) {
    let (right, middle) = (rect.right(), rect.center().y);
    let reach = right + LOOP_ROOM - 4.0;
    let points = vec![
        Point { x: right, y: round(middle - 10.0) },
        Point { x: reach, y: round(middle - 24.0) },
        Point { x: reach, y: round(middle + 24.0) },
        Point { x: right, y: round(middle + 10.0) },
    ];
    let at = round(right + (LOOP_ROOM + loop_room(label)) / 2.0);
    (points, Point { x: at, y: middle })
}

/// A straight line between two boxes' borders, along the line between their centres.
fn straight(from: Rect, to: Rect) -> (Vec<Point>, Point) {
    let (a, b) = (from.center(), to.center());
    let (start, end) = (border(from, b), border(to, a));
    let middle = Point { x: round((start.x + end.x) / 2.0), y: round((start.y + end.y) / 2.0) };
    (vec![start, end], middle)
}

/// Where the line from `rect`'s centre towards `towards` leaves `rect`.
fn border(rect: Rect, towards: Point) -> Point {
    let c = rect.center();
    let (dx, dy) = (towards.x - c.x, towards.y - c.y);
    if dx == 0.0 && dy == 0.0 {
        return c;
    }
    let scale_x = if dx == 0.0 { f64::INFINITY } else { (rect.w / 2.0) / dx.abs() };
    let scale_y = if dy == 0.0 { f64::INFINITY } else { (rect.h / 2.0) / dy.abs() };
    let scale = scale_x.min(scale_y).min(1.0);
    Point { x: round(c.x + dx * scale), y: round(c.y + dy * scale) }
}
