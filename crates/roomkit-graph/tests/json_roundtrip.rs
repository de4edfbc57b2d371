//! JSON round-trips: any graph and any condition written as JSON and read back
//! is unchanged, and JSON in the canonical shape is written back byte for byte.

use std::collections::HashSet;

use proptest::prelude::*;
use proptest::sample::Index;
use roomkit_graph::{Condition, Edge, FieldCondition, Graph, Node, NodeType, Op, Path, Trigger};
use serde_json::{Map, Number, Value};

// ---------------------------------------------------------------------------
// Strategies: JSON values
// ---------------------------------------------------------------------------

/// Strings: printable Unicode, plus ones full of characters JSON must escape.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![4 => "\\PC{0,12}", 1 => "[\\x00-\\x1f\"\\\\/a-z\u{e9}\u{1F600}]{0,8}"]
}

/// Finite numbers: `i64`, `u64`, decimal-looking floats and arbitrary finite floats.
fn number() -> impl Strategy<Value = Number> {
    let finite = prop::num::f64::POSITIVE
        | prop::num::f64::NEGATIVE
        | prop::num::f64::NORMAL
        | prop::num::f64::SUBNORMAL
        | prop::num::f64::ZERO;
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        (-100_000i32..100_000, 0i32..6).prop_map(|(m, e)| float(f64::from(m) / 10f64.powi(e))),
        finite.prop_map(float),
    ]
}

/// A JSON number from a finite float.
fn float(x: f64) -> Number {
    Number::from_f64(x).expect("the strategies only make finite floats")
}

/// Any JSON value: scalars, and arrays and objects nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// A JSON object, often empty (empty maps are left out when written).
fn json_map() -> impl Strategy<Value = Map<String, Value>> {
    prop_oneof![
        1 => Just(Map::new()),
        2 => prop::collection::vec((text(), json_value()), 1..4).prop_map(|entries| entries.into_iter().collect()),
    ]
}

// ---------------------------------------------------------------------------
// Strategies: conditions
// ---------------------------------------------------------------------------

const KNOWN_OPS: [&str; 8] = ["eq", "neq", "in", "not_in", "contains", "gt", "lt", "exists"];
const KNOWN_TYPES: [&str; 6] = ["field", "all", "any", "not", "otherwise", "error"];

/// One path segment: identifier-like, or any text without a dot.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z_][a-z0-9_-]{0,7}", 1 => "[^.]{0,6}"]
}

/// A dot-separated path, often starting with a reserved scope (trigger, steps, input).
fn path() -> impl Strategy<Value = String> {
    let first = prop_oneof![
        Just("trigger".to_owned()),
        Just("steps".to_owned()),
        Just("input".to_owned()),
        segment(),
    ];
    (first, prop::collection::vec(segment(), 0..4))
        .prop_map(|(first, rest)| std::iter::once(first).chain(rest).collect::<Vec<_>>().join("."))
}

/// Every op: the eight known ones and unknown names.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Eq),
        Just(Op::Neq),
        Just(Op::In),
        Just(Op::NotIn),
        Just(Op::Contains),
        Just(Op::Gt),
        Just(Op::Lt),
        Just(Op::Exists),
        text()
            .prop_filter("not a known op", |name| !KNOWN_OPS.contains(&name.as_str()))
            .prop_map(Op::Unknown),
    ]
}

/// `{"type": "field", "path", "op", "value"}` with any op and any value.
fn field_condition() -> impl Strategy<Value = Condition> {
    (path(), op(), json_value()).prop_map(|(path, op, value)| {
        Condition::Field(FieldCondition { path: Path::parse(&path), op, value })
    })
}

/// An object whose `"type"` is a string that is not a known condition type.
fn unknown_condition() -> impl Strategy<Value = Condition> {
    let kind = text().prop_filter("not a known type", |kind| !KNOWN_TYPES.contains(&kind.as_str()));
    let extra = prop::collection::vec(
        (text().prop_filter("not the type key", |key| key != "type"), json_value()),
        0..3,
    );
    (kind, extra).prop_map(|(kind, extra)| {
        let mut raw = Map::new();
        raw.insert("type".into(), kind.into());
        raw.extend(extra);
        Condition::Unknown(Value::Object(raw))
    })
}

/// JSON that is not a usable condition, read as [`Condition::Malformed`]: not an
/// object, no type nor path, a field without path or op, a list that is not an
/// array, a `not` without a condition.
fn malformed_condition() -> impl Strategy<Value = Condition> {
    let raw = prop_oneof![
        json_value().prop_filter("not an object", |value| !value.is_object()),
        // Not empty: an edge reads `{}` as no condition.
        json_map().prop_filter_map("an empty object", |mut map| {
            map.remove("type");
            map.remove("path");
            (!map.is_empty()).then_some(Value::Object(map))
        }),
        path().prop_map(|path| serde_json::json!({"type": "field", "path": path})),
        op().prop_map(|op| serde_json::json!({"type": "field", "op": op.as_str(), "value": 1})),
        (prop::sample::select(&["all", "any", "not"][..]), text())
            .prop_map(|(kind, junk)| serde_json::json!({"type": kind, "conditions": junk})),
        Just(serde_json::json!({"type": "not", "conditions": []})),
        Just(serde_json::json!({"type": "not"})),
    ];
    raw.prop_map(|raw| {
        let condition = Condition::from_value(&raw);
        assert!(matches!(condition, Condition::Malformed { .. }), "{raw} should be malformed");
        condition
    })
}

/// JSON the reference reads leniently, read as [`Condition::Lenient`]: a field
/// condition without `type`, all / any without `conditions`, a null `path`.
fn lenient_condition() -> impl Strategy<Value = Condition> {
    let raw = prop_oneof![
        (path(), prop::sample::select(&KNOWN_OPS[..]), json_value())
            .prop_map(|(path, op, value)| serde_json::json!({"path": path, "op": op, "value": value})),
        prop::sample::select(&["all", "any"][..]).prop_map(|kind| serde_json::json!({"type": kind})),
        (op(), json_value()).prop_map(|(op, value)| {
            serde_json::json!({"type": "field", "path": null, "op": op.as_str(), "value": value})
        }),
    ];
    raw.prop_map(|raw| {
        let condition = Condition::from_value(&raw);
        assert!(matches!(condition, Condition::Lenient { .. }), "{raw} should be read leniently");
        condition
    })
}

/// Any condition: every variant, with all/any/not nested a few levels.
fn condition() -> impl Strategy<Value = Condition> {
    let leaf = prop_oneof![
        4 => field_condition(),
        1 => Just(Condition::Otherwise),
        1 => unknown_condition(),
        1 => malformed_condition(),
        1 => lenient_condition(),
        1 => Just(Condition::Error),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Condition::All),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Condition::Any),
            inner.clone().prop_map(Condition::not),
            prop::collection::vec(inner, 2..4).prop_map(Condition::Not),
        ]
    })
}

// ---------------------------------------------------------------------------
// Strategies: graphs
// ---------------------------------------------------------------------------

/// Every trigger kind, with and without config.
fn trigger() -> impl Strategy<Value = Trigger> {
    prop_oneof![
        json_map().prop_map(|config| Trigger::Manual { config }),
        (text(), json_map()).prop_map(|(source_type, config)| Trigger::Webhook { source_type, config }),
        (prop::option::of(json_map()), json_map())
            .prop_map(|(schedule, config)| Trigger::Scheduled { schedule, config }),
        (text(), json_map()).prop_map(|(event, config)| Trigger::Event { event, config }),
    ]
}

/// Built-in node types and custom names.
fn node_type() -> impl Strategy<Value = NodeType> {
    let builtin = prop::sample::select(
        &[
            "start",
            "end",
            "agent",
            "orchestration",
            "human",
            "notification",
            "function",
            "parallel",
            "condition",
            "switch",
            "log",
        ][..],
    );
    prop_oneof![builtin.prop_map(NodeType::from), text().prop_map(NodeType::from)]
}

/// A node or edge end: one of the graph's nodes (by index) or any id, possibly missing.
#[derive(Clone, Debug)]
enum End {
    Node(Index),
    Other(String),
}

/// Picks an [`End`]; most point at a node of the graph.
fn end() -> impl Strategy<Value = End> {
    prop_oneof![3 => any::<Index>().prop_map(End::Node), 1 => text().prop_map(End::Other)]
}

impl End {
    /// The id this end names among `ids`.
    fn resolve(self, ids: &[String]) -> String {
        match self {
            End::Node(index) if !ids.is_empty() => ids[index.index(ids.len())].clone(),
            End::Node(_) => "nowhere".to_owned(),
            End::Other(id) => id,
        }
    }
}

/// Everything about a node but its id: type, config, metadata and optional parent.
type NodeParts = (NodeType, Map<String, Value>, Map<String, Value>, Option<End>);

/// Everything about an edge: both ends, optional condition, metadata.
type EdgeParts = (End, End, Option<Condition>, Map<String, Value>);

fn node_parts() -> impl Strategy<Value = NodeParts> {
    (node_type(), json_map(), json_map(), prop::option::of(end()))
}

/// An edge condition: any condition but a bare JSON `null`, which has no JSON
/// form of its own there (`"condition": null` is read as no condition).
fn edge_condition() -> impl Strategy<Value = Condition> {
    condition().prop_filter("null reads back as no condition", |condition| {
        !matches!(condition, Condition::Malformed { raw: Value::Null, .. })
    })
}

fn edge_parts() -> impl Strategy<Value = EdgeParts> {
    (end(), end(), prop::option::of(edge_condition()), json_map())
}

/// The graph's own fields: id, name, trigger, description, version, metadata, max_steps.
fn header() -> impl Strategy<Value = Graph> {
    let version = prop_oneof![Just(1u64), any::<u64>()];
    let max_steps = prop::option::of(prop_oneof![Just(0u64), any::<u64>()]);
    (text(), text(), trigger(), prop::option::of(text()), version, json_map(), max_steps).prop_map(
        |(id, name, trigger, description, version, metadata, max_steps)| {
            let mut graph = Graph::new(id, name, trigger);
            graph.description = description;
            graph.version = version;
            graph.metadata = metadata;
            graph.max_steps = max_steps;
            graph
        },
    )
}

/// Any graph: nodes with unique ids (first of each id kept) and edges between
/// them or to ids that are not nodes.
fn graph() -> impl Strategy<Value = Graph> {
    let nodes = prop::collection::vec((text(), node_parts()), 0..6);
    let edges = prop::collection::vec(edge_parts(), 0..6);
    (header(), nodes, edges).prop_map(|(mut graph, nodes, edges)| {
        let mut seen = HashSet::new();
        let nodes: Vec<_> = nodes.into_iter().filter(|(id, _)| seen.insert(id.clone())).collect();
        let ids: Vec<String> = nodes.iter().map(|(id, _)| id.clone()).collect();
        for (id, (node_type, config, metadata, parent)) in nodes {
            let node = Node { id, node_type, config, metadata, parent: parent.map(|end| end.resolve(&ids)) };
            graph.add_node(node).expect("node ids are unique");
        }
        for (source, target, condition, metadata) in edges {
            graph.add_edge(Edge {
                source: source.resolve(&ids),
                target: target.resolve(&ids),
                condition,
                metadata,
            });
        }
        graph
    })
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The keys of a JSON object, in order.
fn keys(value: &Value) -> Vec<&str> {
    value.as_object().expect("a JSON object").keys().map(String::as_str).collect()
}

/// `always` followed by the optional keys that are present, in the given order.
fn expected<'a>(always: &[&'a str], optional: &[(&'a str, bool)]) -> Vec<&'a str> {
    always
        .iter()
        .copied()
        .chain(optional.iter().filter(|(_, present)| *present).map(|(key, _)| *key))
        .collect()
}

/// Checks that the written graph has exactly the keys it should, in canonical
/// order: optional keys are left out when absent, 1 or empty.
fn check_written_keys(graph: &Graph, json: &Value) -> Result<(), TestCaseError> {
    let top = expected(
        &["id", "name", "trigger"],
        &[
            ("description", graph.description.is_some()),
            ("version", graph.version != 1),
            ("metadata", !graph.metadata.is_empty()),
            ("max_steps", graph.max_steps.is_some()),
            ("nodes", true),
            ("edges", true),
        ],
    );
    prop_assert_eq!(keys(json), top);

    let trigger = match &graph.trigger {
        Trigger::Manual { config } => expected(&["type"], &[("config", !config.is_empty())]),
        Trigger::Webhook { config, .. } => {
            expected(&["type", "source_type"], &[("config", !config.is_empty())])
        }
        Trigger::Scheduled { schedule, config } => {
            expected(&["type"], &[("schedule", schedule.is_some()), ("config", !config.is_empty())])
        }
        Trigger::Event { config, .. } => expected(&["type", "event"], &[("config", !config.is_empty())]),
    };
    prop_assert_eq!(keys(&json["trigger"]), trigger);

    let written_nodes = json["nodes"].as_array().expect("nodes is an array");
    prop_assert_eq!(written_nodes.len(), graph.nodes().len());
    for (node, written) in graph.nodes().iter().zip(written_nodes) {
        let want = expected(
            &["id", "type"],
            &[
                ("config", !node.config.is_empty()),
                ("metadata", !node.metadata.is_empty()),
                ("parent", node.parent.is_some()),
            ],
        );
        prop_assert_eq!(keys(written), want);
    }

    let written_edges = json["edges"].as_array().expect("edges is an array");
    prop_assert_eq!(written_edges.len(), graph.edges.len());
    for (edge, written) in graph.edges.iter().zip(written_edges) {
        let want = expected(
            &["source", "target"],
            &[("condition", edge.condition.is_some()), ("metadata", !edge.metadata.is_empty())],
        );
        prop_assert_eq!(keys(written), want);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    /// Property 1: a condition survives `to_value`/`from_value`, serde, and its
    /// JSON text is stable.
    #[test]
    fn condition_round_trips(condition in condition()) {
        let value = condition.to_value();
        prop_assert_eq!(&Condition::from_value(&value), &condition);

        let text = serde_json::to_string(&condition).unwrap();
        let read: Condition = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&read, &condition);

        let written = value.to_string();
        let rewritten = Condition::from_value(&serde_json::from_str(&written).unwrap()).to_value().to_string();
        prop_assert_eq!(&rewritten, &written);
        prop_assert_eq!(&text, &written);
    }

    /// Property 2: a graph survives `to_json`/`from_json`, its JSON text is written
    /// back byte for byte, and optional keys are left out.
    #[test]
    fn graph_round_trips(graph in graph()) {
        let written = graph.to_json();
        let read = Graph::from_json(&written).unwrap();
        prop_assert_eq!(&read, &graph);
        prop_assert_eq!(read.to_json(), written.clone());

        let pretty = Graph::from_json(&graph.to_json_pretty()).unwrap();
        prop_assert_eq!(&pretty, &graph);

        let json: Value = serde_json::from_str(&written).unwrap();
        prop_assert_eq!(&json, &Value::from(&graph));
        check_written_keys(&graph, &json)?;
    }
}

// ---------------------------------------------------------------------------
// Hand-written JSON
// ---------------------------------------------------------------------------

/// A graph in the canonical key order with every kind of node, edge and condition.
const FULL_GRAPH: &str = concat!(
    r#"{"id":"bug-triage","name":"Bug Triage — nightly","#,
    r#""trigger":{"type":"webhook","source_type":"github","config":{"secret_env":"GH_SECRET"}},"#,
    r#""description":"Routes new issues.\nTab:\there, quote:\" \u0001 é 😀","version":3,"#,
    r#""metadata":{"owner":"infra","tags":["a","b"],"weights":[0.5,1e-7,-2.0,1.5e+300,6.127067548613223e+240,2.416486648076916e-87,12345678901234567890,-42]},"#,
    r#""nodes":["#,
    r#"{"id":"start","type":"start"},"#,
    r#"{"id":"triage","type":"agent","config":{"agent":"triager","timeout":"30s","retries":2},"metadata":{"x":10,"y":-20.25}},"#,
    r#"{"id":"fan","type":"parallel","config":{"children":["a","b"]}},"#,
    r#"{"id":"a","type":"webscrape","config":{"url":"https://example.com/?q=1&r=2"},"parent":"fan"},"#,
    r#"{"id":"b","type":"log","parent":"fan"},"#,
    r#"{"id":"end","type":"end","metadata":{"label":null,"ok":true,"nested":{"z":[],"a":{}}}}"#,
    r#"],"edges":["#,
    r#"{"source":"start","target":"triage"},"#,
    r#"{"source":"triage","target":"fan","condition":{"type":"all","conditions":["#,
    r#"{"type":"field","path":"triage.output.severity","op":"in","value":["critical","high"]},"#,
    r#"{"type":"not","conditions":[{"type":"field","path":"trigger.draft","op":"eq","value":true}]},"#,
    r#"{"type":"any","conditions":[]}]},"metadata":{"label":"urgent"}},"#,
    r#"{"source":"triage","target":"end","condition":{"type":"field","path":"steps.triage.labels","op":"contains","value":"wontfix"}},"#,
    r#"{"source":"triage","target":"end","condition":{"type":"field","path":"input.score","op":"gt","value":0.75}},"#,
    r#"{"source":"triage","target":"end","condition":{"type":"field","path":"triage.output","op":"exists","value":null}},"#,
    r#"{"source":"triage","target":"end","condition":{"type":"field","path":"x.y","op":"matches","value":"^a"}},"#,
    r#"{"source":"triage","target":"end","condition":{"type":"xor","conditions":[],"note":"kept as read"}},"#,
    r#"{"source":"triage","target":"end","condition":{"type":"not","conditions":[{"type":"otherwise"},{"type":"otherwise"}]}},"#,
    r#"{"source":"triage","target":"ghost","condition":{"path":"no type"}},"#,
    r#"{"source":"fan","target":"end","condition":{"type":"otherwise"}},"#,
    r#"{"source":"fan","target":"end","condition":{}}"#,
    r#"]}"#,
);

/// Property 3: canonical compact JSON is written back byte for byte.
#[test]
fn canonical_json_is_written_back_unchanged() {
    let texts = [
        FULL_GRAPH,
        r#"{"id":"m","name":"Manual","trigger":{"type":"manual"},"nodes":[],"edges":[]}"#,
        r#"{"id":"w","name":"Webhook","trigger":{"type":"webhook","source_type":"generic"},"nodes":[],"edges":[]}"#,
        r#"{"id":"s","name":"Cron","trigger":{"type":"scheduled","schedule":{"cron":"0 9 * * 1","timezone":"Europe/Paris"}},"nodes":[],"edges":[]}"#,
        r#"{"id":"s2","name":"Cron","trigger":{"type":"scheduled","schedule":{},"config":{"jitter":"5m"}},"nodes":[],"edges":[]}"#,
        r#"{"id":"s3","name":"Cron","trigger":{"type":"scheduled"},"description":"","nodes":[],"edges":[]}"#,
        r#"{"id":"e","name":"Event","trigger":{"type":"event","event":"ticket.created","config":{"k":1}},"version":0,"nodes":[],"edges":[]}"#,
        r#"{"id":"l","name":"Loop","trigger":{"type":"manual"},"version":2,"max_steps":500,"nodes":[],"edges":[]}"#,
        r#"{"id":"z","name":"Zero","trigger":{"type":"manual"},"max_steps":0,"nodes":[],"edges":[]}"#,
    ];
    for text in texts {
        let graph = Graph::from_json(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(graph.to_json(), text);
        assert_eq!(Graph::from_json(&graph.to_json_pretty()).unwrap(), graph);
    }

    let full = Graph::from_json(FULL_GRAPH).unwrap();
    assert_eq!(full.version, 3);
    assert_eq!(full.nodes().len(), 6);
    assert_eq!(full.node("a").unwrap().node_type, NodeType::Custom("webscrape".into()));
    assert!(matches!(full.edges[6].condition, Some(Condition::Unknown(_))));
    assert!(matches!(&full.edges[7].condition, Some(Condition::Not(items)) if items.len() == 2));
    assert!(matches!(full.edges[8].condition, Some(Condition::Malformed { .. })));
    assert!(full.edges[9].condition.as_ref().unwrap().is_otherwise());
    assert!(matches!(full.edges[10].condition, Some(Condition::Lenient { .. })));
    assert_eq!(full.edges[10].route_condition(), None);
}

/// Defaults: a graph without `version`, `description`, `nodes` or `edges`, and a
/// webhook without `source_type`, are read with their defaults.
#[test]
fn defaults_are_filled_in_when_reading() {
    let graph = Graph::from_json(r#"{"id":"g","name":"G","trigger":{"type":"webhook"}}"#).unwrap();
    assert_eq!(graph.version, 1);
    assert_eq!(graph.description, None);
    assert!(graph.nodes().is_empty() && graph.edges.is_empty());
    assert_eq!(graph.trigger, Trigger::webhook("generic"));
    assert_eq!(
        graph.to_json(),
        r#"{"id":"g","name":"G","trigger":{"type":"webhook","source_type":"generic"},"nodes":[],"edges":[]}"#
    );

    // A null condition or description is read as none (and then left out).
    let text = concat!(
        r#"{"id":"g","name":"G","trigger":{"type":"scheduled","schedule":null},"description":null,"#,
        r#""edges":[{"source":"a","target":"b","condition":null}]}"#,
    );
    let graph = Graph::from_json(text).unwrap();
    assert_eq!(graph.edges[0].condition, None);
    assert_eq!(graph.description, None);
    assert_eq!(graph.trigger, Trigger::Scheduled { schedule: None, config: Map::new() });

    // No max_steps, or a null one, is none, and stays out when written.
    for text in [
        r#"{"id":"g","name":"G","trigger":{"type":"manual"},"nodes":[],"edges":[]}"#,
        r#"{"id":"g","name":"G","trigger":{"type":"manual"},"max_steps":null,"nodes":[],"edges":[]}"#,
    ] {
        let graph = Graph::from_json(text).unwrap();
        assert_eq!(graph.max_steps, None);
        assert!(!graph.to_json().contains("max_steps"), "{}", graph.to_json());
    }
    let graph =
        Graph::from_json(r#"{"id":"g","name":"G","trigger":{"type":"manual"},"max_steps":1000}"#).unwrap();
    assert_eq!(graph.max_steps, Some(1000));
}

// ---------------------------------------------------------------------------
// Refused JSON
// ---------------------------------------------------------------------------

/// A max_steps that is not a whole number of steps is refused when read,
/// saying what it must be and what it is.
#[test]
fn a_max_steps_that_is_not_a_whole_number_is_refused() {
    for (value, shown) in [
        ("-1", "-1"),
        ("2.5", "2.5"),
        ("1e3", "1000.0"),
        ("18446744073709551616", "1.8446744073709552e+19"),
        (r#""1000""#, "a string"),
        ("true", "a boolean"),
        ("[10]", "a list"),
        (r#"{"n": 10}"#, "an object"),
    ] {
        let text = format!(r#"{{"id":"g","name":"G","trigger":{{"type":"manual"}},"max_steps":{value}}}"#);
        let message = Graph::from_json(&text).unwrap_err().to_string();
        let want = format!(
            "invalid graph JSON: max_steps must be a whole number of steps such as 1000, not {shown}"
        );
        assert!(message.starts_with(&want), "{value}: {message}");
        let value: Value = serde_json::from_str(&text).unwrap();
        let message = Graph::from_value(value).unwrap_err().to_string();
        assert_eq!(message, want, "{text}");
    }
}

/// Property 4a: a duplicate node id is refused, naming the id.
#[test]
fn duplicate_node_id_is_refused() {
    let text = concat!(
        r#"{"id":"g","name":"G","trigger":{"type":"manual"},"nodes":["#,
        r#"{"id":"start","type":"start"},{"id":"review","type":"human"},{"id":"review","type":"end"}"#,
        r#"],"edges":[]}"#,
    );
    let message = Graph::from_json(text).unwrap_err().to_string();
    assert!(message.contains("duplicate node id \"review\""), "{message}");

    let value: Value = serde_json::from_str(text).unwrap();
    let message = Graph::from_value(value).unwrap_err().to_string();
    assert!(message.contains("duplicate node id \"review\""), "{message}");

    let mut graph = Graph::new("g", "G", Trigger::manual());
    graph.add_node(Node::new("review", "human")).unwrap();
    let message = graph.add_node(Node::new("review", "end")).unwrap_err().to_string();
    assert!(message.contains("\"review\""), "{message}");
    assert_eq!(graph.nodes().len(), 1);
}

/// Property 4b: unknown keys in the graph, a node, an edge or the trigger are
/// refused, naming the key.
#[test]
fn unknown_keys_are_refused() {
    let cases = [
        (r#"{"id":"g","name":"G","trigger":{"type":"manual"},"nodes":[],"edgse":[]}"#, "edgse"),
        (
            r#"{"id":"g","name":"G","trigger":{"type":"manual"},"nodes":[{"id":"a","type":"log","confg":{}}]}"#,
            "confg",
        ),
        (
            r#"{"id":"g","name":"G","trigger":{"type":"manual"},"edges":[{"source":"a","target":"b","conditon":{}}]}"#,
            "conditon",
        ),
        (r#"{"id":"g","name":"G","trigger":{"type":"webhook","sorce_type":"github"}}"#, "sorce_type"),
        (r#"{"id":"g","name":"G","trigger":{"type":"manual","schedule":{}}}"#, "schedule"),
    ];
    for (text, key) in cases {
        let message = Graph::from_json(text).map(|_| ()).unwrap_err().to_string();
        assert!(message.contains(&format!("unknown field `{key}`")), "{text}: {message}");
    }
}
