//! The layout's promises, on the shipped example graphs and on random graphs
//! (loops, edges to themselves, nested parallel nodes, dangling edges).

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a graph it cannot read")]

use std::collections::BTreeSet;

use proptest::prelude::*;
use roomkit_graph::{Condition, Edge, Graph, Node, NodeType, Trigger};
use roomkit_graph_drawing::{Layout, Overlay, Rect, layout, render_svg};

fn example(name: &str) -> Graph {
    let path = format!("{}/../../examples/{name}.json", env!("CARGO_MANIFEST_DIR"));
    Graph::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn node<'a>(drawing: &'a Layout, id: &str) -> &'a roomkit_graph_drawing::PlacedNode {
    drawing.nodes.iter().find(|node| node.id == id).unwrap()
}

/// Every promise the layout makes about any graph.
fn check(graph: &Graph, drawing: &Layout) -> Result<(), String> {
    let n = &drawing.nodes;
    let within = |x: f64, y: f64| {
        x.is_finite()
            && y.is_finite()
            && (0.0..=drawing.width).contains(&x)
            && (0.0..=drawing.height).contains(&y)
    };
    for node in n {
        let r = node.rect;
        if !(within(r.x, r.y) && within(r.right(), r.bottom())) {
            return Err(format!("{} lies outside the picture: {r:?}", node.id));
        }
        if let Some(parent) = node.parent
            && !n[parent].rect.contains(&r)
        {
            return Err(format!("{} is not inside its parallel node {}", node.id, n[parent].id));
        }
    }
    // Boxes with the same holder never overlap.
    for (i, a) in n.iter().enumerate() {
        for b in &n[i + 1..] {
            if a.parent == b.parent && a.rect.overlaps(&b.rect) {
                return Err(format!("{} and {} overlap", a.id, b.id));
            }
        }
    }
    if let Some(start) = graph.start_node().and_then(|start| n.iter().position(|node| node.id == start.id))
        && n[start].parent.is_none()
        && let Some(other) =
            n.iter().enumerate().find(|(i, node)| *i != start && node.rect.y <= n[start].rect.y)
    {
        return Err(format!("{} is as high as start", other.1.id));
    }
    for edge in &drawing.edges {
        // A label of an edge between top-level boxes sits on no top-level box.
        if let Some(label) = &edge.label
            && n[edge.source].parent.is_none()
            && n[edge.target].parent.is_none()
        {
            let w = label.text.chars().count() as f64 * 4.0;
            let spot = Rect { x: label.at.x - w / 2.0, y: label.at.y - 6.0, w, h: 12.0 };
            if let Some(under) = n.iter().find(|node| node.parent.is_none() && node.rect.overlaps(&spot)) {
                return Err(format!("the label of edge {} sits on {}", edge.index, under.id));
            }
        }
        if edge.points.iter().any(|p| !within(p.x, p.y)) {
            return Err(format!("edge {} leaves the picture: {:?}", edge.index, edge.points));
        }
        let (source, target) = (&n[edge.source], &n[edge.target]);
        let lifted = |mut i: usize| {
            while let Some(parent) = n[i].parent {
                i = parent;
            }
            i
        };
        if lifted(edge.source) != lifted(edge.target) {
            let (from, to) = (lifted(edge.source), lifted(edge.target));
            let below = n[from].rect.bottom() < n[to].rect.y;
            if below == edge.back {
                return Err(format!(
                    "edge {} {} → {} goes the wrong way (back: {})",
                    edge.index, source.id, target.id, edge.back
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn content_review_flows_down_and_loops_back_from_revise() {
    let graph = example("content-review");
    let drawing = layout(&graph).unwrap();
    check(&graph, &drawing).unwrap();
    let y = |id: &str| node(&drawing, id).rect.y;
    assert!(y("start") < y("draft") && y("draft") < y("review"), "{drawing:#?}");
    assert!(y("review") < y("revise") && y("review") < y("publish") && y("publish") < y("end"));
    // revise and publish are the two branches of review: side by side.
    assert_eq!(y("revise"), y("publish"));
    let back: Vec<usize> = drawing.edges.iter().filter(|edge| edge.back).map(|edge| edge.index).collect();
    assert_eq!(back, [4], "only revise → review goes back up");
    let labels: Vec<&str> =
        drawing.edges.iter().filter_map(|edge| Some(edge.label.as_ref()?.text.as_str())).collect();
    assert_eq!(labels, ["action = approve", "action = reject"]);
}

#[test]
fn the_loop_is_found_whatever_order_the_edges_come_in() {
    let mut graph = example("content-review");
    graph.edges.reverse();
    let drawing = layout(&graph).unwrap();
    check(&graph, &drawing).unwrap();
    let back: Vec<(&str, &str)> = drawing
        .edges
        .iter()
        .filter(|edge| edge.back)
        .map(|edge| (drawing.nodes[edge.source].id.as_str(), drawing.nodes[edge.target].id.as_str()))
        .collect();
    assert_eq!(back, [("revise", "review")]);
}

#[test]
fn parallel_children_sit_in_a_row_inside_their_parallel_node() {
    let graph = example("parallel-checks");
    let drawing = layout(&graph).unwrap();
    check(&graph, &drawing).unwrap();
    let checks = node(&drawing, "checks");
    assert!(checks.compound && checks.caption == "parallel · join all");
    let children = ["security", "compliance", "notify"].map(|id| node(&drawing, id));
    for child in &children {
        assert_eq!(child.parent.map(|p| drawing.nodes[p].id.as_str()), Some("checks"));
        assert_eq!(child.rect.y, children[0].rect.y);
    }
    assert!(children.windows(2).all(|pair| pair[0].rect.right() < pair[1].rect.x));
    assert!(node(&drawing, "analyze").rect.bottom() < checks.rect.y);
    assert!(checks.rect.bottom() < node(&drawing, "summarize").rect.y);
}

#[test]
fn every_example_draws_as_well_formed_svg_with_each_node_and_edge_once() {
    for name in ["bug-triage", "content-review", "parallel-checks"] {
        let graph = example(name);
        let drawing = layout(&graph).unwrap();
        check(&graph, &drawing).unwrap();
        let overlay = Overlay {
            done: ["start".to_owned()].into(),
            current: [graph.nodes()[1].id.clone()].into(),
            failed: BTreeSet::new(),
            taken: [0].into(),
        };
        for svg in [render_svg(&drawing, None), render_svg(&drawing, Some(&overlay))] {
            let document =
                roxmltree::Document::parse(&svg).unwrap_or_else(|error| panic!("{name}: {error}\n{svg}"));
            let with = |attribute: &str| -> Vec<String> {
                document
                    .descendants()
                    .filter_map(|element| element.attribute(attribute).map(str::to_owned))
                    .collect()
            };
            let nodes: Vec<String> = graph.nodes().iter().map(|node| node.id.clone()).collect();
            assert_eq!(
                with("data-node").into_iter().collect::<BTreeSet<_>>(),
                nodes.iter().cloned().collect()
            );
            assert_eq!(with("data-node").len(), nodes.len());
            let edges: Vec<String> = (0..graph.edges.len()).map(|i| i.to_string()).collect();
            assert_eq!(with("data-edge"), edges, "{name}");
            for banned in ["style=", "<style", "<script", "href", " id=", "on"] {
                let found = match banned {
                    // No event handler attribute (on…=).
                    "on" => document
                        .descendants()
                        .flat_map(|element| element.attributes())
                        .any(|attribute| attribute.name().starts_with("on")),
                    banned => svg.contains(banned),
                };
                assert!(!found, "{name}: the picture holds {banned}");
            }
        }
        let marked = render_svg(&drawing, Some(&overlay));
        assert!(marked.contains(r#"class="edge taken""#), "{name}");
        assert!(marked.contains("done\" data-node=\"start\""), "{name}");
    }
}

#[test]
fn error_routes_are_dashed_and_said() {
    let mut graph = Graph::new("g", "G", Trigger::manual());
    graph
        .add_chain([Node::new("start", "start"), Node::new("call", "function"), Node::new("end", "end")])
        .unwrap();
    graph.add_node(Node::new("recover", "log")).unwrap();
    graph.add_edge(Edge::new("call", "recover").when(Condition::error()));
    let drawing = layout(&graph).unwrap();
    check(&graph, &drawing).unwrap();
    let error = drawing.edges.iter().find(|edge| edge.error).unwrap();
    assert_eq!(error.label.as_ref().unwrap().text, "on error");
    let svg = render_svg(&drawing, None);
    assert_eq!(svg.matches("stroke-dasharray").count(), 1);
}

#[test]
fn a_huge_id_is_cut_and_the_picture_stays_small() {
    let long = "n".repeat(500_000);
    let mut graph = Graph::new(long.clone(), long.clone(), Trigger::manual());
    graph
        .add_chain([Node::new("start", "start"), Node::new(long.clone(), "agent"), Node::new("end", "end")])
        .unwrap();
    let drawing = layout(&graph).unwrap();
    check(&graph, &drawing).unwrap();
    assert!(drawing.width < 400.0, "{}", drawing.width);
    let svg = render_svg(&drawing, None);
    // The id is whole where it is data (the title, data-node, aria-label), cut where it is drawn.
    assert!(svg.contains("n…</text>"));
}

#[test]
fn long_chains_of_branches_lay_out_quickly_enough_to_serve() {
    // 60 diamonds in a row with loops back: 243 nodes.
    let mut graph = Graph::new("d", "D", Trigger::manual());
    graph.add_node(Node::new("start", "start")).unwrap();
    let mut last = "start".to_owned();
    for i in 0..60 {
        let [split, left, right, join] = ["split", "left", "right", "join"].map(|part| format!("{part}{i}"));
        graph.add_nodes([&split, &left, &right, &join].map(|id| Node::new(id.as_str(), "log"))).unwrap();
        graph.add_edges([
            Edge::new(&last, &split),
            Edge::new(&split, &left).when(Condition::field("x").equals(i)),
            Edge::new(&split, &right).when(Condition::otherwise()),
            Edge::new(&left, &join),
            Edge::new(&right, &join),
            Edge::new(&join, &split).when(Condition::field("again").exists()),
        ]);
        last = join;
    }
    let drawing = layout(&graph).unwrap();
    check(&graph, &drawing).unwrap();
    assert_eq!(drawing.edges.iter().filter(|edge| edge.back).count(), 60);
}

#[test]
fn many_long_loops_stay_cheap_and_keep_every_promise() {
    // 1,000 nodes in a line, each but the first with an edge back to the
    // first: a million waypoints drawn in full, fewer than 25,000 here.
    let mut graph = Graph::new("g", "G", Trigger::manual());
    graph.add_node(Node::new("start", "start")).unwrap();
    graph.add_chain((0..1000).map(|i| Node::new(format!("n{i}"), "log"))).unwrap();
    graph.add_edge(Edge::new("start", "n0"));
    graph
        .add_edges((1..1000).map(|i| Edge::new(format!("n{i}"), "n0").when(Condition::field("x").equals(i))));
    let drawing = layout(&graph).unwrap();
    check(&graph, &drawing).unwrap();
    let points: usize = drawing.edges.iter().map(|edge| edge.points.len()).sum();
    assert!(points < 25_000 + 4 * drawing.edges.len(), "{points}");
    assert_eq!(drawing.edges.iter().filter(|edge| edge.back).count(), 999);
}

#[test]
fn edges_cut_short_past_the_waypoint_budget_are_drawn_too() {
    // 300 loops from the end of a 100-node line to its start use up the
    // waypoints; edges after them jump rows, onto rows of other lengths.
    let mut graph = Graph::new("g", "G", Trigger::manual());
    graph.add_node(Node::new("start", "start")).unwrap();
    graph.add_chain((0..100).map(|i| Node::new(format!("n{i}"), "log"))).unwrap();
    graph.add_nodes(["a", "b", "c0", "c1", "c2", "c3"].map(|id| Node::new(id, "log"))).unwrap();
    graph.add_edge(Edge::new("start", "n0"));
    graph.add_edges((0..300).map(|_| Edge::new("n99", "n0")));
    graph.add_edges([Edge::new("n99", "a"), Edge::new("a", "b")]);
    graph
        .add_edges((0..4).flat_map(|i| [Edge::new("b", format!("c{i}")), Edge::new("n99", format!("c{i}"))]));
    let drawing = layout(&graph).unwrap();
    check(&graph, &drawing).unwrap();
}

#[test]
fn a_loop_on_a_node_keeps_its_label_off_the_boxes() {
    let mut graph = Graph::new("g", "G", Trigger::manual());
    graph
        .add_chain([Node::new("start", "start"), Node::new("poll", "function"), Node::new("end", "end")])
        .unwrap();
    graph.add_node(Node::new("side", "log")).unwrap();
    graph.add_edges([
        Edge::new("poll", "poll")
            .when(Condition::field("poll.output.status").equals("still pending, try again")),
        Edge::new("poll", "side"),
    ]);
    let drawing = layout(&graph).unwrap();
    check(&graph, &drawing).unwrap();
    let (poll, side) = (node(&drawing, "poll"), node(&drawing, "side"));
    let label = drawing.edges[2].label.as_ref().unwrap();
    assert!(
        label.at.x > poll.rect.right() + 30.0 && poll.rect.bottom() <= side.rect.y
            || side.rect.x > label.at.x
    );
}

/// A random graph: `n` nodes (the first a start), some parallel, some with a
/// parent (maybe a loop of parents, maybe not a parallel node), and edges
/// between any of them, to themselves and to ids that do not exist.
fn graphs() -> impl Strategy<Value = Graph> {
    (2usize..40)
        .prop_flat_map(|n| {
            let kinds =
                proptest::collection::vec(prop_oneof![Just("log"), Just("parallel"), Just("human")], n);
            let parents = proptest::collection::vec(proptest::option::weighted(0.3, 0..n), n);
            let edges = proptest::collection::vec((0..n + 1, 0..n + 1, 0u8..4), 0..n * 2);
            (Just(n), kinds, parents, edges)
        })
        .prop_map(|(n, kinds, parents, edges)| {
            let mut graph = Graph::new("random", "Random", Trigger::manual());
            for i in 0..n {
                let kind = if i == 0 { NodeType::Start } else { NodeType::from(kinds[i]) };
                let mut node = Node::new(format!("n{i}"), kind);
                if let Some(parent) = parents[i] {
                    node = node.with_parent(format!("n{parent}"));
                }
                graph.add_node(node).unwrap();
            }
            for (from, to, condition) in edges {
                let mut edge = Edge::new(format!("n{from}"), format!("n{to}"));
                edge = match condition {
                    0 => edge,
                    1 => edge.when(Condition::error()),
                    2 => edge.when(Condition::otherwise()),
                    _ => edge
                        .when(Condition::field("a.output.some_long_field_name").equals("a long value here")),
                };
                graph.add_edge(edge);
            }
            graph
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_graph_lays_out_keeping_every_promise(graph in graphs()) {
        let drawing = layout(&graph).unwrap();
        prop_assert!(check(&graph, &drawing).is_ok(), "{}", check(&graph, &drawing).unwrap_err());
        prop_assert_eq!(&layout(&graph).unwrap(), &drawing);
        let svg = render_svg(&drawing, None);
        prop_assert!(roxmltree::Document::parse(&svg).is_ok());
    }
}
