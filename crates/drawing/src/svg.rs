//! The picture as SVG: plain elements with classes a page can style, colours
//! as presentation attributes (so the file also reads alone), no style sheet,
//! no script, no link, no element id (so two pictures can share a page). The
//! picture is a group, not an image, so its nodes (buttons) reach a screen reader.

use std::fmt::Write as _;

use crate::label::{self, ID_FONT, KIND_FONT};
use crate::layers::LABEL_H;
use crate::tree::TEXT_PAD;
use crate::{Layout, Overlay, PlacedEdge, PlacedNode, Point};

const LINE: &str = "#8a94a6";
const INK: &str = "#1f2430";
const MUTED: &str = "#5b6475";

/// Writes `layout` as SVG, with `overlay`'s marks when given: classes `done`,
/// `current` and `failed` on nodes (each with a sign too: ✓, ● or ✕, so a
/// state is never told by colour alone) and `taken` on edges. Nodes carry
/// `data-node` (their id), edges and their labels `data-edge` (their index in
/// the graph), for a page to find them by.
///
/// ```
/// use roomkit_graph::Graph;
/// use roomkit_graph_drawing::{layout, render_svg};
///
/// let graph = Graph::from_json(r#"{"id": "g", "name": "<G & co>", "trigger": {"type": "manual"},
///     "nodes": [{"id": "start", "type": "start"}, {"id": "a\"b", "type": "log"}],
///     "edges": [{"source": "start", "target": "a\"b", "condition": {"type": "error"}}]}"#)?;
/// let svg = render_svg(&layout(&graph)?, None);
/// assert!(svg.starts_with("<svg ") && svg.contains("<title>&lt;G &amp; co&gt;</title>"));
/// assert!(svg.contains(r#"data-node="a&quot;b""#));
/// assert!(svg.contains(r#"class="edge error""#) && svg.contains(r#"stroke-dasharray="6 4""#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn render_svg(layout: &Layout, overlay: Option<&Overlay>) -> String {
    let mut svg = String::with_capacity(1024 + 600 * (layout.nodes.len() + layout.edges.len()));
    let (w, h) = (layout.width, layout.height);
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="graph" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="group" aria-label="{title}" font-family="system-ui, sans-serif"><title>{title}</title>"##,
        title = escape(&layout.title)
    );
    // Parallel nodes first (outer before inner: an outer box holds, so
    // outsizes, the boxes inside it), then edges, then the other nodes: a
    // line between two children of a parallel node shows on it.
    let area = |i: usize| layout.nodes[i].rect.w * layout.nodes[i].rect.h;
    let mut compounds: Vec<usize> = (0..layout.nodes.len()).filter(|&i| layout.nodes[i].compound).collect();
    compounds.sort_by(|&a, &b| area(b).total_cmp(&area(a)));
    for i in compounds {
        node(&mut svg, &layout.nodes[i], overlay);
    }
    for edge in &layout.edges {
        self::edge(&mut svg, layout, edge, overlay);
    }
    for node in layout.nodes.iter().filter(|node| !node.compound) {
        self::node(&mut svg, node, overlay);
    }
    svg.push_str("</svg>");
    svg
}

fn node(svg: &mut String, node: &PlacedNode, overlay: Option<&Overlay>) {
    let marks = overlay.map(|overlay| marks(overlay, &node.id)).unwrap_or_default();
    let mut class = format!("node kind-{}", class_name(&node.kind));
    if node.compound {
        class.push_str(" compound");
    }
    for (mark, _, _) in &marks {
        class.push(' ');
        class.push_str(mark);
    }
    let states: String = marks.iter().map(|(_, word, _)| format!(", {word}")).collect();
    let r = node.rect;
    let _ = write!(
        svg,
        r##"<g class="{class}" data-node="{id}" tabindex="0" role="button" aria-label="{id}, {caption}{states}"><title>{id} ({caption}){states}</title><rect class="box" x="{}" y="{}" width="{}" height="{}" rx="8" fill="{}" stroke="{LINE}" stroke-width="1.5"/>"##,
        r.x,
        r.y,
        r.w,
        r.h,
        if node.compound { "#f4f6fa" } else { "#ffffff" },
        id = escape(&node.id),
        caption = escape(&node.caption),
    );
    let room = r.w - 2.0 * TEXT_PAD;
    if node.compound {
        let id = label::fit(&node.id, ID_FONT, true, room * 0.5);
        let caption =
            label::fit(&node.caption, KIND_FONT, false, room - label::text_width(&id, ID_FONT, true) - 8.0);
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="{ID_FONT}" fill="{INK}"><tspan class="id" font-weight="600">{}</tspan><tspan class="caption" dx="8" font-size="{KIND_FONT}" fill="{MUTED}">{}</tspan></text>"##,
            r.x + TEXT_PAD,
            r.y + 20.0,
            escape(&id),
            escape(&caption)
        );
    } else {
        let middle = r.x + r.w / 2.0;
        let _ = write!(
            svg,
            r##"<text class="id" x="{middle}" y="{}" text-anchor="middle" font-size="{ID_FONT}" font-weight="600" fill="{INK}">{}</text><text class="caption" x="{middle}" y="{}" text-anchor="middle" font-size="{KIND_FONT}" fill="{MUTED}">{}</text>"##,
            r.y + 20.0,
            escape(&label::fit(&node.id, ID_FONT, true, room)),
            r.y + 36.0,
            escape(&label::fit(&node.caption, KIND_FONT, false, room)),
        );
    }
    if let Some((_, _, sign)) = marks.last() {
        let _ = write!(
            svg,
            r##"<text class="sign" x="{}" y="{}" font-size="{KIND_FONT}" fill="{INK}" aria-hidden="true">{sign}</text>"##,
            r.x + 3.0,
            r.y + 13.0
        );
    }
    svg.push_str("</g>");
}

/// A node's marks: class, word, sign.
fn marks(overlay: &Overlay, id: &str) -> Vec<(&'static str, &'static str, &'static str)> {
    [
        (&overlay.done, ("done", "done", "✓")),
        (&overlay.current, ("current", "current", "●")),
        (&overlay.failed, ("failed", "failed", "✕")),
    ]
    .into_iter()
    .filter(|(set, _)| set.contains(id))
    .map(|(_, mark)| mark)
    .collect()
}

fn edge(svg: &mut String, layout: &Layout, edge: &PlacedEdge, overlay: Option<&Overlay>) {
    let mut class = String::from("edge");
    for (on, name) in [
        (edge.error, "error"),
        (edge.back, "back"),
        (overlay.is_some_and(|overlay| overlay.taken.contains(&edge.index)), "taken"),
    ] {
        if on {
            class.push(' ');
            class.push_str(name);
        }
    }
    let (source, target) = (&layout.nodes[edge.source].id, &layout.nodes[edge.target].id);
    let condition = edge.label.as_ref().map(|label| format!(": {}", label.full)).unwrap_or_default();
    let dash = if edge.error { r##" stroke-dasharray="6 4""## } else { "" };
    let _ = write!(
        svg,
        r##"<g class="{class}" data-edge="{}"><title>{} → {}{}</title><path class="line" d="{}" fill="none" stroke="{LINE}" stroke-width="1.5"{dash}/>"##,
        edge.index,
        escape(source),
        escape(target),
        escape(&condition),
        path(edge),
    );
    if let Some(head) = arrowhead(edge) {
        let _ = write!(svg, r##"<path class="head" d="{head}" fill="{LINE}"/>"##);
    }
    if let Some(label) = &edge.label {
        let width = label::text_width(&label.text, KIND_FONT, false) + 8.0;
        let Point { x, y } = label.at;
        let _ = write!(
            svg,
            r##"<g class="label"><rect x="{}" y="{}" width="{width}" height="{LABEL_H}" rx="3" fill="#ffffff"/><text x="{x}" y="{}" text-anchor="middle" font-size="{KIND_FONT}" fill="{MUTED}">{}</text></g>"##,
            x - width / 2.0,
            y - LABEL_H / 2.0,
            y + 4.0,
            escape(&label.text),
        );
    }
    svg.push_str("</g>");
}

/// The line through an edge's points: a loop's one curve, else curves that
/// leave and reach each point going up or down.
fn path(edge: &PlacedEdge) -> String {
    let p = &edge.points;
    let mut d = String::new();
    let Some(first) = p.first() else { return d };
    let _ = write!(d, "M{} {}", first.x, first.y);
    if edge.source == edge.target && p.len() == 4 {
        let _ = write!(d, " C{} {} {} {} {} {}", p[1].x, p[1].y, p[2].x, p[2].y, p[3].x, p[3].y);
        return d;
    }
    for pair in p.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let middle = (a.y + b.y) / 2.0;
        let _ = write!(d, " C{} {middle} {} {middle} {} {}", a.x, b.x, b.x, b.y);
    }
    d
}

/// A triangle at the end of the edge, pointing the way the line arrives.
fn arrowhead(edge: &PlacedEdge) -> Option<String> {
    let p = &edge.points;
    let tip = *p.last()?;
    let before = *p.get(p.len().checked_sub(2)?)?;
    let (dx, dy) = if edge.source == edge.target {
        (tip.x - before.x, tip.y - before.y)
    } else if tip.y != before.y {
        (0.0, tip.y - before.y)
    } else {
        (tip.x - before.x, 0.0)
    };
    let length = (dx * dx + dy * dy).sqrt();
    if length == 0.0 {
        return None;
    }
    let (ux, uy) = (dx / length, dy / length);
    let (bx, by) = (tip.x - 8.0 * ux, tip.y - 8.0 * uy);
    let r = crate::place::round;
    Some(format!(
        "M{} {} L{} {} L{} {} Z",
        r(tip.x),
        r(tip.y),
        r(bx - 4.0 * uy),
        r(by + 4.0 * ux),
        r(bx + 4.0 * uy),
        r(by - 4.0 * ux)
    ))
}

/// A node type as a class name: letters, digits and `-` only.
fn class_name(kind: &str) -> String {
    kind.chars()
        .take(40)
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect()
}

/// `text` for XML text or an attribute: the five special characters escaped,
/// characters XML cannot hold replaced.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}
