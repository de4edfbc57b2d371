//! Fuzz-style properties of the core: random and mutated graphs, templates,
//! conditions, saved states and answers, and whole runs with the built-in
//! handlers. Whatever the input: no panic, no stack overflow (it would abort
//! this binary), no hang (every run has a step limit, delays do not wait), and
//! no growth past the run's limits, asserted by sizes and by the bytes each
//! step allocates (this binary counts every allocation), never by time.
//!
//! Each property runs [`CASES`] cases; `ROOMKIT_PROPTEST_CASES=N` runs N
//! instead (for a longer search).

use std::alloc::System;
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures_util::StreamExt;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use roomkit_graph::{
    Condition, Context, EngineState, ErrorKind, Graph, Handlers, HumanHandler, Limits, NoWaitClock,
    NodePolicy, StreamMode, Template, ValueTemplate, Workflow, WorkflowEngine, measure,
};
use serde_json::{Map, Value, json};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Cases per property, unless `ROOMKIT_PROPTEST_CASES` says otherwise.
const CASES: u32 = 96;

/// The most steps a run of a random graph may take.
const MAX_STEPS: u64 = 48;

fn config() -> ProptestConfig {
    let cases = std::env::var("ROOMKIT_PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(CASES);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// The properties measure allocations, so they run one at a time.
static MEASURING: Mutex<()> = Mutex::new(());

fn measuring() -> MutexGuard<'static, ()> {
    MEASURING.lock().unwrap_or_else(PoisonError::into_inner)
}

fn block_on<T>(work: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime").block_on(work)
}

// ---------------------------------------------------------------------------
// Strategies: JSON values and text
// ---------------------------------------------------------------------------

/// Node ids: a small pool, so that edges, parents, paths and answers hit
/// nodes that exist; now and then an id no graph has.
const IDS: [&str; 8] = ["start", "a", "b", "c", "d", "e", "end", "ghost"];

fn id() -> BoxedStrategy<String> {
    prop_oneof![8 => prop::sample::select(&IDS[..]).prop_map(str::to_owned), 1 => "\\PC{0,6}"].boxed()
}

/// Strings, plus ones full of characters JSON must escape.
fn text() -> BoxedStrategy<String> {
    prop_oneof![4 => "\\PC{0,10}", 1 => "[\\x00-\\x1f\"\\\\{}|()a-z]{0,8}"].boxed()
}

fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        (-5i64..5).prop_map(Value::from),
        text().prop_map(Value::String),
    ]
    .boxed()
}

/// Any JSON value, a few levels deep.
fn json_value() -> BoxedStrategy<Value> {
    scalar()
        .prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((prop_oneof![id(), text()], inner), 0..5)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A value nested `depth` levels deep (arrays and objects in turn), built
/// without recursion.
fn nested(depth: usize, leaf: Value) -> Value {
    let mut value = leaf;
    for level in 0..depth {
        value = if level % 2 == 0 {
            Value::Array(vec![value])
        } else {
            Value::Object([("k".to_owned(), value)].into_iter().collect())
        };
    }
    value
}

/// Values now and then nested well past the depth limits.
fn deep_or_plain_value() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => json_value(),
        1 => (0usize..200, scalar()).prop_map(|(depth, leaf)| nested(depth, leaf)),
        1 => (0usize..5_000, text()).prop_map(|(n, part)| Value::String(part.repeat(n))),
    ]
    .boxed()
}

/// A path into a run's context: through the scopes (`trigger.`, `steps.`,
/// `input.`) or a node's id, often to something a run stores.
fn path() -> BoxedStrategy<String> {
    let head = prop_oneof![
        Just("trigger".to_owned()),
        id().prop_map(|id| format!("steps.{id}")),
        Just("input".to_owned()),
        id(),
        "[^{}|]{0,6}",
    ];
    let tail = prop::collection::vec(
        prop_oneof![
            Just("output".to_owned()),
            Just("input".to_owned()),
            "[a-z]{1,3}",
            (0u8..4).prop_map(|n| n.to_string()),
            "[^.{}|]{0,4}",
        ],
        0..4,
    );
    (head, tail)
        .prop_map(|(head, tail)| std::iter::once(head).chain(tail).collect::<Vec<_>>().join("."))
        .boxed()
}

/// A path to what a run may hold large (the trigger data, a node's output).
fn large_value_path() -> BoxedStrategy<String> {
    prop_oneof![Just("trigger".to_owned()), Just("steps.start.output.input".to_owned()), path()].boxed()
}

// ---------------------------------------------------------------------------
// Strategies: templates and conditions
// ---------------------------------------------------------------------------

/// A template string: text and placeholders (with and without defaults),
/// malformed placeholders, and placeholders repeated many times.
fn template_text() -> BoxedStrategy<String> {
    let placeholder = prop_oneof![
        4 => path().prop_map(|p| format!("{{{{{p}}}}}")),
        3 => (path(), json_value()).prop_map(|(p, d)| format!("{{{{ {p} | default({d}) }}}}")),
        1 => (path(), "\\PC{0,6}").prop_map(|(p, f)| format!("{{{{{p} | {f}}}}}")),
        1 => "\\{\\{[^}]{0,8}\\}?\\}?",
    ];
    let part = prop_oneof![3 => placeholder, 2 => "[^{]{0,8}", 1 => "[{}|() a-z\"]{0,6}"];
    prop_oneof![
        8 => prop::collection::vec(part, 0..6).prop_map(|parts| parts.concat()),
        1 => (large_value_path(), 1usize..2_000).prop_map(|(p, n)| format!("{{{{{p}}}}}").repeat(n)),
    ]
    .boxed()
}

/// A JSON value whose strings are templates (a `json_transform` template).
fn template_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![3 => template_text().prop_map(Value::String), 1 => scalar()];
    prop_oneof![
        8 => leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-z]{1,4}", inner), 0..4)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        }),
        // One placeholder under many keys: the output is many times what it reads.
        1 => (large_value_path(), 1usize..2_000).prop_map(|(p, n)| {
            Value::Object((0..n).map(|i| (format!("k{i}"), Value::String(format!("{{{{{p}}}}}")))).collect())
        }),
    ]
    .boxed()
}

const OPS: [&str; 9] = ["eq", "neq", "in", "not_in", "contains", "gt", "lt", "exists", "matches"];

/// A condition as JSON: well formed, and now and then malformed, unknown, or
/// nested far deeper than conditions may.
fn condition_value() -> BoxedStrategy<Value> {
    prop_oneof![2 => sound_condition(), 1 => any_condition()].boxed()
}

/// A well-formed condition: fields with known ops under `all`, `any` and `not`.
fn sound_condition() -> BoxedStrategy<Value> {
    let field = (path(), prop::sample::select(&OPS[..8]), json_value())
        .prop_map(|(path, op, value)| json!({"type": "field", "path": path, "op": op, "value": value}));
    let leaf = prop_oneof![8 => field, 1 => Just(json!({"type": "otherwise"}))];
    leaf.prop_recursive(4, 16, 3, |inner| {
        prop_oneof![
            (prop::sample::select(&["all", "any"][..]), prop::collection::vec(inner.clone(), 0..3))
                .prop_map(|(kind, conditions)| json!({"type": kind, "conditions": conditions})),
            inner.prop_map(|condition| json!({"type": "not", "conditions": [condition]})),
        ]
    })
    .boxed()
}

/// Any condition-like JSON: unknown types and ops, junk, and nesting far deeper than conditions may.
fn any_condition() -> BoxedStrategy<Value> {
    let field = (path(), prop::sample::select(&OPS[..]), prop::option::of(json_value())).prop_map(
        |(path, op, value)| {
            let mut field = json!({"type": "field", "path": path, "op": op});
            if let Some(value) = value {
                field["value"] = value;
            }
            field
        },
    );
    let wild = prop_oneof![
        6 => field,
        1 => Just(json!({"type": "otherwise"})),
        1 => json_value(),
        1 => (text(), json_value()).prop_map(|(kind, rest)| json!({"type": kind, "rest": rest})),
    ];
    let tree = |leaf: BoxedStrategy<Value>, max_items: usize| {
        leaf.prop_recursive(4, 24, 4, move |inner| {
            (prop::sample::select(&["all", "any", "not"][..]), prop::collection::vec(inner, 0..max_items))
                .prop_map(|(kind, conditions)| json!({"type": kind, "conditions": conditions}))
        })
    };
    prop_oneof![
        12 => tree(wild.boxed(), 4),
        1 => (1usize..150, prop::sample::select(&["all", "any", "not"][..])).prop_map(|(depth, kind)| {
            let mut value = json!({"type": "field", "path": "trigger.n", "op": "exists"});
            for _ in 0..depth {
                value = json!({"type": kind, "conditions": [value]});
            }
            value
        }),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Strategies: graphs
// ---------------------------------------------------------------------------

/// Durations as written in configurations: valid, extreme and unreadable.
fn duration_value() -> BoxedStrategy<Value> {
    prop_oneof![
        prop::sample::select(&["0s", "1ms", "2s", "1m", "30d", "31d", "1000000000s", "soon", "", "-1s"][..])
            .prop_map(Value::from),
        "[0-9]{1,25}(ms|s|m|h|d)".prop_map(Value::from),
        scalar(),
    ]
    .boxed()
}

/// Retry and timeout settings with extreme numbers.
fn policy_config() -> BoxedStrategy<Map<String, Value>> {
    let attempts = prop_oneof![
        (0u64..120).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        scalar(),
    ];
    let factor = prop_oneof![
        (0.0f64..200.0).prop_map(Value::from),
        prop::sample::select(&[1e300, -1.0, 0.0, 1.0, 100.0, 100.000_001, f64::MAX, f64::MIN_POSITIVE][..])
            .prop_map(Value::from),
        scalar(),
    ];
    let backoff = prop_oneof![
        duration_value(),
        (prop::option::of(duration_value()), prop::option::of(factor), prop::option::of(duration_value()))
            .prop_map(|(initial, factor, max)| {
                let mut backoff = Map::new();
                for (key, value) in [("initial", initial), ("factor", factor), ("max", max)] {
                    if let Some(value) = value {
                        backoff.insert(key.to_owned(), value);
                    }
                }
                Value::Object(backoff)
            }),
    ];
    (prop::option::of(attempts), prop::option::of(backoff), prop::option::of(duration_value()), any::<bool>())
        .prop_map(|(attempts, backoff, timeout, retry_object)| {
            let mut config = Map::new();
            let mut retry = Map::new();
            if let Some(attempts) = attempts {
                retry.insert("max_attempts".to_owned(), attempts);
            }
            if let Some(backoff) = backoff {
                retry.insert("backoff".to_owned(), backoff);
            }
            if !retry.is_empty() || retry_object {
                config.insert("retry".to_owned(), Value::Object(retry));
            }
            if let Some(timeout) = timeout {
                config.insert("timeout".to_owned(), timeout);
            }
            config
        })
        .boxed()
}

const TYPES: [&str; 10] =
    ["log", "parallel", "function", "condition", "switch", "human", "end", "start", "agent", "custom-kind"];

/// A node's type and a configuration for it, mostly of the shape its handler reads.
fn typed_config() -> BoxedStrategy<(String, Value)> {
    let log = (prop::option::of(prop::collection::vec(path(), 0..3)), prop::option::of(text())).prop_map(
        |(paths, message)| {
            let mut config = json!({});
            if let Some(paths) = paths {
                config["paths"] = json!(paths);
            }
            if let Some(message) = message {
                config["message"] = json!(message);
            }
            ("log".to_owned(), config)
        },
    );
    let parallel =
        prop::option::of(prop_oneof![Just(json!("all")), Just(json!("any")), Just(json!("first")), scalar()])
            .prop_map(|join| ("parallel".to_owned(), join.map_or(json!({}), |join| json!({"join": join}))));
    let function = prop_oneof![
        deep_or_plain_value().prop_map(|values| json!({"action": "set_context", "values": values})),
        template_value().prop_map(|template| json!({"action": "json_transform", "template": template})),
        Just(json!({"action": "json_transform"})),
        duration_value().prop_map(|duration| json!({"action": "delay", "duration": duration})),
        text().prop_map(|function| json!({"action": "custom", "function": function})),
        scalar().prop_map(|action| json!({"action": action})),
    ]
    .prop_map(|config| ("function".to_owned(), config));
    let condition = prop::option::of(condition_value())
        .prop_map(|c| ("condition".to_owned(), c.map_or(json!({}), |c| json!({"condition": c}))));
    let switch = prop::option::of(path())
        .prop_map(|p| ("switch".to_owned(), p.map_or(json!({}), |p| json!({"path": p}))));
    let human = (
        prop_oneof![
            prop::collection::vec("[a-z]{0,6}", 0..4).prop_map(|a| json!(a)),
            json_value(),
            Just(json!(["approve", "reject"]))
        ],
        prop::option::of(prop_oneof![template_text().prop_map(Value::String), scalar()]),
    )
        .prop_map(|(actions, prompt)| {
            let mut config = json!({"actions": actions});
            if let Some(prompt) = prompt {
                config["prompt"] = prompt;
            }
            ("human".to_owned(), config)
        });
    let other =
        (prop::sample::select(&TYPES[..]), prop::collection::vec(("[a-z_]{1,8}", json_value()), 0..3))
            .prop_map(|(kind, entries)| {
                (kind.to_owned(), Value::Object(entries.into_iter().collect::<Map<String, Value>>()))
            });
    (prop_oneof![2 => log, 2 => parallel, 4 => function, 2 => condition, 1 => switch, 2 => human, 1 => other],
        prop::option::weighted(0.2, policy_config()))
        .prop_map(|((kind, mut config), policy)| {
            if let (Some(policy), Some(map)) = (policy, config.as_object_mut()) {
                map.extend(policy);
            }
            (kind, config)
        })
    .boxed()
}

/// A graph as JSON: start, nodes `a`..`e` of random types in a chain to
/// `end`, random extra edges with random conditions, and random parents
/// (cycles included): what validation is for. Half of them are made sound
/// (see [`soundly`]), and most of those are valid.
fn graph_value() -> BoxedStrategy<Value> {
    let middle = prop::collection::vec((typed_config(), prop::option::weighted(0.15, id())), 0..5);
    // Mostly between the graph's nodes (by position), now and then to any id.
    let end = prop_oneof![6 => any::<Index>().prop_map(Ok), 1 => id().prop_map(Err)];
    let condition = prop_oneof![sound_condition(), condition_value()];
    let edge = (end.clone(), end, prop::option::weighted(0.5, condition));
    let trigger = prop_oneof![
        Just(json!({"type": "manual"})),
        Just(json!({"type": "webhook", "source_type": "github"})),
        Just(json!({"type": "event", "event": "go"})),
    ];
    (middle, prop::collection::vec(edge, 0..5), trigger, prop::bool::weighted(0.8), any::<bool>())
        .prop_map(|(middle, extra, trigger, chain, sound)| {
            let mut nodes = vec![json!({"id": "start", "type": "start"})];
            let mut ids = vec!["start".to_owned()];
            for (((kind, config), parent), id) in middle.into_iter().zip(["a", "b", "c", "d", "e"]) {
                let mut node = json!({"id": id, "type": kind});
                if config.as_object().is_some_and(|c| !c.is_empty()) {
                    node["config"] = config;
                }
                if let Some(parent) = parent {
                    node["parent"] = json!(parent);
                }
                nodes.push(node);
                ids.push(id.to_owned());
            }
            nodes.push(json!({"id": "end", "type": "end"}));
            ids.push("end".to_owned());
            let mut edges: Vec<Value> = Vec::new();
            if chain {
                edges.extend(ids.windows(2).map(|pair| json!({"source": pair[0], "target": pair[1]})));
            }
            let pick = |end: Result<Index, String>| match end {
                Ok(at) => ids[at.index(ids.len())].clone(),
                Err(id) => id,
            };
            for (source, target, condition) in extra {
                let mut edge = json!({"source": pick(source), "target": pick(target)});
                if let Some(condition) = condition {
                    edge["condition"] = condition;
                }
                edges.push(edge);
            }
            if sound {
                soundly(&mut nodes, &mut edges);
            }
            json!({"id": "g", "name": "G", "trigger": trigger, "nodes": nodes, "edges": edges})
        })
        .boxed()
}

/// Takes out of a random graph the mistakes that make most graphs invalid:
/// edges into start, out of end or with malformed conditions, parents that
/// are not parallel nodes, malformed retry policies and human nodes' actions.
fn soundly(nodes: &mut [Value], edges: &mut Vec<Value>) {
    let parallel: Vec<Value> =
        nodes.iter().filter(|n| n["type"] == "parallel").map(|n| n["id"].clone()).collect();
    edges.retain(|edge| {
        edge["source"] != "end"
            && edge["target"] != "start"
            && Condition::from_value(&edge["condition"]).problem().is_none_or(|_| edge["condition"].is_null())
    });
    for node in nodes.iter_mut() {
        let Value::Object(node) = node else { continue };
        if node
            .get("parent")
            .is_some_and(|parent| !parallel.contains(parent) || node.get("id") == Some(parent))
        {
            node.remove("parent");
        }
        let human = node.get("type").is_some_and(|t| t == "human");
        if let Some(Value::Object(config)) = node.get_mut("config") {
            if NodePolicy::read(config).is_err() {
                config.remove("retry");
                config.remove("timeout");
            }
            if human {
                config.insert("actions".to_owned(), json!(["approve", "reject"]));
                config.remove("prompt");
            }
        }
    }
}

/// One change to a graph's JSON text: a byte replaced, removed or inserted.
fn mutations() -> BoxedStrategy<Vec<(Index, u8, u8)>> {
    let edit = (any::<Index>(), 0u8..3, any::<u8>());
    prop_oneof![2 => Just(Vec::new()), 1 => prop::collection::vec(edit, 1..4)].boxed()
}

/// `text` with `mutations` applied (bytes that leave invalid UTF-8 are read lossily).
fn mutate(text: &str, mutations: &[(Index, u8, u8)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for (at, how, byte) in mutations {
        if bytes.is_empty() {
            break;
        }
        let at = at.index(bytes.len());
        match how {
            0 => bytes[at] = *byte,
            1 => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, *byte),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Limits for a run: the defaults, or small ones that random graphs reach.
fn limits() -> BoxedStrategy<Limits> {
    prop_oneof![
        1 => Just(Limits::default()),
        3 => (8usize..40, 1usize..64, 1usize..256).prop_map(|(json_depth, output_kib, context_kib)| Limits {
            json_depth,
            output_bytes: output_kib << 10,
            context_bytes: context_kib << 10,
            ..Limits::default()
        }),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// Every stored output keeps to `limits` and the context to its size limit
/// (the start node's trigger data, checked at the door, sits one level down).
fn check_context(engine: &WorkflowEngine, limits: &Limits) -> Result<(), TestCaseError> {
    let context = engine.context();
    prop_assert!(context.size() <= limits.context_bytes, "context of {} bytes", context.size());
    let entries = context.to_entries();
    let mut total = 0;
    for (node, entry) in &entries {
        let output = &entry["output"];
        let size = measure(output);
        total += if engine.graph().node(node).is_none() {
            // An entry of no node of the graph (the trigger data under `start` when the
            // start node has another id) counts whole.
            measure(entry).bytes
        } else {
            // A failure taken along an error edge is kept beside the output.
            size.bytes + entry.get("error").map_or(0, |error| measure(error).bytes)
        };
        let is_start = engine.graph().start_node().is_some_and(|start| start.id == *node);
        let depth_limit = limits.json_depth + usize::from(is_start);
        prop_assert!(size.depth <= depth_limit, "{node}: output nests {} levels", size.depth);
        if !is_start {
            prop_assert!(size.bytes <= limits.output_bytes, "{node}: output of {} bytes", size.bytes);
        }
    }
    prop_assert_eq!(total, context.size(), "the context's size is the sum of its outputs and failures");
    Ok(())
}

/// The saved state reads back equal from its JSON text and restores to the same state.
fn check_state(workflow: &Workflow, engine: &WorkflowEngine) -> Result<(), TestCaseError> {
    let state = engine.to_state();
    let text = serde_json::to_string(&state).map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
    let back: EngineState =
        serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("does not read back: {e}")))?;
    prop_assert_eq!(&back, &state);
    let restored =
        workflow.restore(back).map_err(|e| TestCaseError::fail(format!("its own state is refused: {e}")))?;
    prop_assert_eq!(restored.to_state(), state);
    Ok(())
}

/// What one step may allocate: a few copies of the context and of the largest
/// output, whatever the graph (a value in memory takes up to ~32 times its
/// JSON text). Growth past that is super-linear.
fn step_allowance(context_bytes: usize, limits: &Limits) -> usize {
    (8 << 20) + 64 * (context_bytes + limits.output_bytes)
}

/// Steps the run to its end (or error) one step at a time, checking what
/// each step allocates and stores. Returns the error kind it ended with.
async fn drive(
    workflow: &Workflow,
    engine: &mut WorkflowEngine,
    limits: &Limits,
) -> Result<Option<ErrorKind>, TestCaseError> {
    loop {
        let before = engine.context().size();
        let (result, bytes) = {
            let region = Region::new(GLOBAL);
            let result = engine.step().await;
            (result, region.change().bytes_allocated)
        };
        let allowance = step_allowance(before.max(engine.context().size()), limits);
        prop_assert!(bytes <= allowance, "a step allocated {bytes} bytes (allowed {allowance})");
        check_context(engine, limits)?;
        match result {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(error) => {
                prop_assert!(!error.to_string().contains("Some("), "{error}");
                return Ok(Some(error.kind()));
            }
        }
        check_state(workflow, engine)?;
    }
}

fn workflow(graph: Graph, limits: &Limits) -> Workflow {
    Workflow::new(graph, Handlers::builtin().with("human", HumanHandler))
        .with_max_steps(MAX_STEPS)
        .with_clock(NoWaitClock)
        .with_limits(limits.clone())
}

/// Runs `graph` with `trigger`, answers waiting nodes with `answers` (on the
/// node they name, which may not be the one waiting), and checks every step.
fn run_and_answer(
    graph: Graph,
    limits: &Limits,
    trigger: Value,
    answers: Vec<(String, Value)>,
) -> Result<Option<ErrorKind>, TestCaseError> {
    let workflow = workflow(graph, limits);
    let mut engine = workflow.engine();
    block_on(async {
        if let Err(error) = engine.start(trigger) {
            prop_assert!(
                matches!(error.kind(), ErrorKind::Limit | ErrorKind::InvalidArgument),
                "start: {error}"
            );
            return Ok(Some(error.kind()));
        }
        check_context(&engine, limits)?;
        check_state(&workflow, &engine)?;
        let mut last = drive(&workflow, &mut engine, limits).await?;
        for (node, data) in answers {
            if !engine.waiting() {
                break;
            }
            match engine.resume(&node, data) {
                Ok(()) => last = drive(&workflow, &mut engine, limits).await?,
                // Refused (or routed nowhere) as the graph allows: said in plain words.
                Err(error) => prop_assert!(!error.to_string().contains("Some("), "resume: {error}"),
            }
            check_context(&engine, limits)?;
            check_state(&workflow, &engine)?;
        }
        Ok(last)
    })
}

fn answers() -> BoxedStrategy<Vec<(String, Value)>> {
    let data = prop_oneof![
        3 => prop::sample::select(&["approve", "reject", "", "other"][..])
            .prop_map(|action| json!({"action": action})),
        2 => deep_or_plain_value(),
    ];
    prop::collection::vec((id(), data), 0..4).boxed()
}

/// A context holding a few random outputs, and trigger data.
fn context() -> BoxedStrategy<Context> {
    (json_value(), prop::collection::vec((id(), json_value()), 0..5))
        .prop_map(|(trigger, outputs)| {
            let mut context = Context::new("start");
            context.set_output("start", json!({"input": trigger}));
            for (node, output) in outputs {
                context.set_output(&node, output);
            }
            context
        })
        .boxed()
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Graph JSON, random and mutated: read it or refuse it with an error;
    /// what is read writes back to the same graph; validation never panics,
    /// and a graph it accepts starts; every graph runs within its limits.
    #[test]
    fn graphs_read_write_back_validate_and_run_within_their_limits(
        value in graph_value(),
        edits in mutations(),
        limits in limits(),
        trigger in deep_or_plain_value(),
        answers in answers(),
    ) {
        let _guard = measuring();
        let text = mutate(&value.to_string(), &edits);
        let Ok(graph) = Graph::from_json(&text) else { return Ok(()) };

        let written = graph.to_json();
        let back = Graph::from_json(&written).map_err(|e| TestCaseError::fail(format!("{e}: {written}")))?;
        prop_assert_eq!(&back, &graph);
        prop_assert_eq!(back.to_json(), written);

        let errors = graph.validate();
        prop_assert_eq!(graph.validate_with(&Limits::default()), errors.clone());
        for error in &errors {
            prop_assert!(!error.message.contains("Some("), "{}", error.message);
        }
        let valid = errors.is_empty();
        let ended = run_and_answer(graph, &limits, trigger, answers)?;
        if valid {
            prop_assert_ne!(ended, Some(ErrorKind::InvalidArgument), "a valid graph must start");
        }
    }

    /// Valid graphs streamed in every mode: the stream ends, each event's
    /// payload keeps to the context's limits, and the run ends as a plain run does.
    #[test]
    fn streamed_runs_end_and_their_events_keep_to_the_limits(
        value in graph_value(),
        limits in limits(),
        trigger in json_value(),
    ) {
        let _guard = measuring();
        let Ok(graph) = Graph::from_value(value) else { return Ok(()) };
        let workflow = workflow(graph, &limits);
        let mut engine = workflow.engine();
        let modes = [StreamMode::Values, StreamMode::Updates, StreamMode::Lifecycle, StreamMode::Custom];
        let events: Vec<_> = block_on(engine.stream(trigger, &modes).collect());
        // Every step sends at most a start, a complete, an updates and a values event.
        prop_assert!(events.len() as u64 <= 4 * (MAX_STEPS + 1) + 2, "{} events", events.len());
        for event in events.iter().flatten() {
            let size = measure(&event.payload);
            prop_assert!(size.bytes <= limits.context_bytes + 1024, "an event of {} bytes", size.bytes);
        }
        prop_assert!(events.iter().filter(|e| e.is_err()).count() <= 1, "one error at most");
        check_context(&engine, &limits)?;
        check_state(&workflow, &engine)?;
    }

    /// Saved states, random and mutated, restored into random graphs: refused
    /// with an error or run on within the limits.
    #[test]
    fn saved_states_restore_into_any_graph_or_are_refused(
        graph in graph_value(),
        context in prop::collection::vec((id(), deep_or_plain_value()), 0..5),
        current in prop::option::of(id()),
        previous in prop::option::of(id()),
        waiting in any::<bool>(),
        edits in mutations(),
        limits in limits(),
        answers in answers(),
    ) {
        let _guard = measuring();
        let Ok(graph) = Graph::from_value(graph) else { return Ok(()) };
        let context: Map<String, Value> =
            context.into_iter().map(|(node, output)| (node, json!({"output": output}))).collect();
        let state = json!({
            "context": context, "current_node_id": current, "previous_node_id": previous,
            "waiting": waiting, "run_id": "r",
        });
        let text = mutate(&state.to_string(), &edits);
        let Ok(state) = serde_json::from_str::<EngineState>(&text) else { return Ok(()) };
        let workflow = workflow(graph, &limits);
        let Ok(mut engine) = workflow.restore(state.clone()) else { return Ok(()) };
        prop_assert_eq!(engine.to_state().context, state.context);
        block_on(async {
            // A restored state larger than the limits still runs: steps may not grow it.
            loop {
                let before = engine.context().size();
                let result = engine.step().await;
                prop_assert!(
                    engine.context().size() <= before.max(limits.context_bytes),
                    "a step grew the context from {before} to {} bytes", engine.context().size()
                );
                if !matches!(result, Ok(true)) {
                    break;
                }
            }
            for (node, data) in answers {
                if engine.resume(&node, data).is_ok() {
                    let _ = engine.advance().await;
                }
            }
            Ok::<(), TestCaseError>(())
        })?;
        let text = serde_json::to_string(&engine.to_state()).expect("a state is JSON");
        prop_assert!(serde_json::from_str::<EngineState>(&text).is_ok(), "the state reads back");
    }

    /// Templates: parsing never panics; a template without placeholders renders
    /// as written; rendering and resolving never panic.
    #[test]
    fn templates_parse_and_render_or_fail_cleanly(text in template_text(), context in context()) {
        let _guard = measuring();
        if let Ok(template) = Template::parse(&text) {
            if template.is_literal() {
                prop_assert_eq!(template.render(&context), Ok(text.clone()));
            }
            if let (Ok(rendered), Ok(Value::String(resolved))) =
                (template.render(&context), template.resolve(&context))
            {
                prop_assert_eq!(resolved, rendered);
            }
        }
        let compiled = ValueTemplate::compile(&Value::String(text.clone()));
        prop_assert_eq!(compiled.first_error().is_some(), Template::parse(&text).is_err());
        let _ = compiled.resolve(&context);
    }

    /// A placeholder's default is any JSON, read back exactly when the path names nothing.
    #[test]
    fn a_placeholder_default_reads_back_as_written(default in json_value()) {
        let _guard = measuring();
        let template = Template::parse(&format!("{{{{ nowhere.output | default({default}) }}}}"))
            .map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(template.resolve(&Context::new("start")), Ok(default));
    }

    /// Value templates: compiling and resolving never panic; a resolved
    /// template nests no deeper than it and what it reads.
    #[test]
    fn value_templates_resolve_or_fail_cleanly(value in template_value(), context in context()) {
        let _guard = measuring();
        let compiled = ValueTemplate::compile(&value);
        if let Ok(resolved) = compiled.resolve(&context) {
            let read = measure(&Value::Object(context.to_entries())).depth;
            prop_assert!(measure(&resolved).depth <= measure(&value).depth + read);
        }
    }

    /// Conditions: read from any JSON, written back and read again unchanged,
    /// serialized when read from what JSON text may hold, evaluated against any context.
    #[test]
    fn conditions_read_write_back_and_evaluate(value in condition_value(), context in context()) {
        let _guard = measuring();
        let condition = Condition::from_value(&value);
        let written = condition.to_value();
        prop_assert!(measure(&written).depth <= measure(&value).depth.max(2));
        // A condition read from what JSON text may hold (127 levels; deeper
        // values are built in code) writes back to the same condition, and as text.
        if measure(&value).depth <= roomkit_graph::limits::MAX_READ_DEPTH {
            prop_assert_eq!(Condition::from_value(&written), condition.clone());
            let text = serde_json::to_string(&condition).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            let back: Condition = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            prop_assert_eq!(back, condition.clone());
        }
        let _ = condition.evaluate(&context);
        if let Some(problem) = condition.problem() {
            prop_assert!(!problem.contains("Some("), "{problem}");
        }
    }

    /// Retry policies with extreme numbers: read or refused naming the field;
    /// a policy read waits at most its maximum before any attempt.
    #[test]
    fn retry_policies_read_or_refuse_and_back_off_within_bounds(
        config in policy_config(),
        attempts in prop::collection::vec(any::<u32>(), 1..8),
    ) {
        let _guard = measuring();
        match NodePolicy::read(&config) {
            Ok(policy) => {
                prop_assert!((1..=100).contains(&policy.max_attempts));
                let longest = std::time::Duration::from_secs(30 * 24 * 3600);
                for attempt in attempts.into_iter().chain([0, 1, 2, 66, 1100, u32::MAX]) {
                    prop_assert!(policy.backoff(attempt) <= longest, "{policy:?} at {attempt}");
                }
            }
            Err(error) => prop_assert!(
                error.field == "timeout" || error.field.starts_with("retry"),
                "{error}"
            ),
        }
    }
}
