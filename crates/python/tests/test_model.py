"""The graph model: Node, Edge, Condition, the triggers and Graph, their JSON
through the engine's reader and writer, validation, and bad input."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import pytest

from roomkit_graph import (
    Condition,
    ConditionError,
    Edge,
    EventTrigger,
    FunctionRegistry,
    Graph,
    GraphValidationError,
    ManualTrigger,
    Node,
    NodeResult,
    NodeType,
    ScheduledTrigger,
    StepResult,
    Trigger,
    WebhookTrigger,
    graph_registry,
)
from roomkit_graph.edges.condition import ConditionBuilder

# --- JSON round trips through the engine ---

NODE_CONFIGS = {
    "start": {},
    "end": {},
    "agent": {"agent_id": "triage", "prompt": "Triage {{trigger.title}}"},
    "orchestration": {"orchestration_id": "pipeline"},
    "human": {"prompt": "Approve?", "actions": ["approve", "reject"], "timeout": "72h"},
    "notification": {"channel": "slack", "template": "Critical: {{triage.output.summary}}"},
    "function": {"action": "set_context", "values": {"queue": "on-call"}},
    "parallel": {"join": "any"},
    "condition": {"condition": {"type": "field", "path": "trigger.n", "op": "gt", "value": 3}},
    "switch": {"path": "triage.output.kind", "cases": {"bug": "fix"}, "default": "later"},
    "log": {"message": "seen {{trigger.title}}"},
    "webscrape": {"url": "https://example.com", "depth": 2},
}

CONDITIONS = [
    {"type": "field", "path": "a.output.x", "op": "eq", "value": "critical"},
    {"type": "field", "path": "a.output.x", "op": "neq", "value": None},
    {"type": "field", "path": "a.output.x", "op": "in", "value": ["high", "critical"]},
    {"type": "field", "path": "a.output.x", "op": "not_in", "value": [1, 2.5]},
    {"type": "field", "path": "a.output.tags", "op": "contains", "value": "urgent"},
    {"type": "field", "path": "a.output.n", "op": "gt", "value": 1000},
    {"type": "field", "path": "a.output.n", "op": "lt", "value": -0.5},
    {"type": "field", "path": "a.output.email", "op": "exists", "value": None},
    {"type": "otherwise"},
    {"type": "error"},
    {
        "type": "all",
        "conditions": [
            {"type": "any", "conditions": [{"type": "field", "path": "x", "op": "eq", "value": True}]},
            {"type": "not", "conditions": [{"type": "field", "path": "y", "op": "eq", "value": {"k": [1]}}]},
        ],
    },
]


@pytest.mark.parametrize("node_type", sorted(NODE_CONFIGS))
def test_every_node_type_round_trips(node_type):
    data = {"id": "n", "type": node_type, "config": NODE_CONFIGS[node_type], "metadata": {"x": 1}, "parent": "p"}
    if not NODE_CONFIGS[node_type]:
        del data["config"]
    node = Node.from_dict(data)
    assert node.to_dict() == data
    assert Node.from_dict(node.to_dict()) == node
    if node_type in {t.value for t in NodeType}:
        assert node.type is NodeType(node_type)
    else:
        assert node.type == node_type and not isinstance(node.type, NodeType)


@pytest.mark.parametrize("data", CONDITIONS, ids=lambda d: d["type"] + "-" + str(d.get("op", "")))
def test_every_condition_round_trips(data):
    condition = Condition.from_dict(data)
    assert condition.to_dict() == data
    assert Condition.from_dict(condition.to_dict()) == condition
    edge = Edge.from_dict({"source": "a", "target": "b", "condition": data})
    assert edge.to_dict() == {"source": "a", "target": "b", "condition": data}


def test_builder_gives_the_documented_json():
    built = Condition.all_(
        Condition.field("s").equals(1),
        Condition.field("s").not_equals(2),
        Condition.field("s").in_([1]),
        Condition.field("s").not_in([2]),
        Condition.field("s").contains("x"),
        Condition.field("s").gt(1),
        Condition.field("s").lt(2),
        Condition.any_(Condition.field("s").exists(), Condition.not_(Condition.otherwise())),
    )
    ops = [c["op"] for c in built.to_dict()["conditions"][:7]]
    assert ops == ["eq", "neq", "in", "not_in", "contains", "gt", "lt"]
    assert built.to_dict()["conditions"][7] == {
        "type": "any",
        "conditions": [
            {"type": "field", "path": "s", "op": "exists", "value": None},
            {"type": "not", "conditions": [{"type": "otherwise"}]},
        ],
    }
    assert isinstance(Condition.field("s"), ConditionBuilder)


def test_graph_round_trips_every_node_type_and_condition():
    data = {
        "id": "all-kinds",
        "name": "All kinds",
        "trigger": {"type": "scheduled", "schedule": {"cron": "0 9 * * 1"}, "config": {"tz": "UTC"}},
        "nodes": [{"id": t, "type": t, "config": c} if c else {"id": t, "type": t} for t, c in NODE_CONFIGS.items()],
        "edges": [{"source": "start", "target": "agent", "condition": c} for c in CONDITIONS]
        + [{"source": "agent", "target": "end", "metadata": {"label": "done"}}],
        "description": "every kind",
        "version": 3,
        "metadata": {"owner": "ops"},
        "max_steps": 50,
    }
    graph = Graph.from_dict(copy.deepcopy(data))
    assert graph.max_steps == 50
    assert isinstance(graph.trigger, ScheduledTrigger)
    assert graph.to_dict() == data
    assert list(graph.to_dict()) == list(data)
    assert json.loads(json.dumps(graph.to_dict())) == data


def test_triggers_round_trip_through_a_graph():
    for trigger in [
        ManualTrigger(),
        WebhookTrigger(source_type="github", config={"secret": "s"}),
        ScheduledTrigger(schedule={"cron": "*/5 * * * *"}),
        EventTrigger(event="job.completed"),
    ]:
        graph = Graph(id="g", name="G", trigger=trigger)
        restored = Graph.from_dict(graph.to_dict())
        assert restored.trigger == trigger
        assert restored.to_dict() == graph.to_dict()


def test_a_trigger_subclass_is_found_by_its_type():
    class Nightly(Trigger, trigger_type="nightly-test"):
        pass

    trigger = Trigger.from_dict({"type": "nightly-test", "config": {"hour": 2}})
    assert type(trigger) is Nightly
    assert trigger.config == {"hour": 2}
    graph = Graph(id="g", name="G", trigger=trigger)
    assert graph.to_dict()["trigger"] == {"type": "nightly-test", "config": {"hour": 2}}
    assert Graph.from_dict(graph.to_dict()).trigger == trigger


def test_an_unknown_trigger_type_stays_a_plain_trigger():
    trigger = Trigger.from_dict({"type": "carrier-pigeon"})
    assert type(trigger) is Trigger and trigger.type == "carrier-pigeon"


# --- dataclass behaviour ---


def test_frozen_classes_refuse_assignment_like_frozen_dataclasses():
    for obj, field in [
        (Edge("a", "b"), "source"),
        (Condition.otherwise(), "type"),
        (WebhookTrigger(), "source_type"),
        (ManualTrigger(), "config"),
    ]:
        with pytest.raises(dataclasses.FrozenInstanceError, match=f"cannot assign to field '{field}'"):
            setattr(obj, field, "x")
        with pytest.raises(AttributeError):
            delattr(obj, field)


def test_equality_hash_and_repr():
    assert Edge("a", "b") == Edge("a", "b", None, {})
    assert Edge("a", "b") != Edge("a", "c")
    assert Edge("a", "b") != ("a", "b", None, {})
    c1, c2 = Condition.field("x").in_((1, 2)), Condition("field", "x", "in", (1, 2))
    assert c1 == c2 and hash(c1) == hash(c2)
    assert {c1: 1}[c2] == 1
    assert WebhookTrigger() != ManualTrigger()
    with pytest.raises(TypeError):
        hash(Node("a", "agent"))
    with pytest.raises(TypeError):
        hash(Graph("g", "G", ManualTrigger()))
    assert repr(Edge("a", "b")) == "Edge(source='a', target='b', condition=None, metadata={})"
    assert repr(EventTrigger(event="e")) == "EventTrigger(type='event', config={}, event='e')"
    assert repr(Node("n", "log")) == (
        "Node(id='n', type=<NodeType.LOG: 'log'>, config={}, metadata={}, parent=None)"
    )


def test_copies_pickles_and_patterns_work_as_with_dataclasses():
    graph = Graph.from_dict(
        {
            "id": "g",
            "name": "G",
            "trigger": {"type": "webhook", "source_type": "github"},
            "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end", "config": {"k": [1]}}],
            "edges": [{"source": "start", "target": "end", "condition": {"type": "otherwise"}}],
        }
    )
    for copied in [copy.deepcopy(graph), pickle.loads(pickle.dumps(graph))]:
        assert copied == graph and copied is not graph
        copied.nodes["end"].config["k"].append(2)
        assert graph.nodes["end"].config == {"k": [1]}
    assert copy.copy(graph).nodes is graph.nodes
    for value in [Condition.field("x").in_([1]), WebhookTrigger(source_type="s"), NodeResult(output={"a": 1})]:
        assert pickle.loads(pickle.dumps(value)) == value
    match Edge("a", "b"):
        case Edge(source, target):
            assert (source, target) == ("a", "b")


def test_positional_fields_in_the_reference_order():
    node = Node("n", "agent", {"a": 1}, {"m": 2}, "p")
    assert (node.id, node.config, node.metadata, node.parent) == ("n", {"a": 1}, {"m": 2}, "p")
    edge = Edge("a", "b", Condition.otherwise(), {"m": 1})
    assert edge.condition.type == "otherwise" and edge.metadata == {"m": 1}
    assert WebhookTrigger("ignored", {"c": 1}, "github").type == "webhook"
    assert WebhookTrigger("ignored", {"c": 1}, "github").source_type == "github"
    graph = Graph("g", "G", ManualTrigger(), "about", 2)
    assert (graph.description, graph.version, graph.nodes, graph.edges) == ("about", 2, {}, [])
    assert NodeResult() == NodeResult(None, "completed", None, {})
    assert StepResult("n", NodeResult()).advanced is True


def test_defaults_are_not_shared():
    a, b = Node("a", "log"), Node("b", "log")
    a.config["x"] = 1
    assert b.config == {}
    g1, g2 = Graph("1", "1", ManualTrigger()), Graph("2", "2", ManualTrigger())
    g1.add_node(Node("start", "start"))
    assert g2.nodes == {} and g2.edges == []


def test_node_type_is_a_str_enum_of_the_engine_types():
    assert [t.value for t in NodeType] == [
        "start", "end", "agent", "orchestration", "human", "notification",
        "function", "parallel", "condition", "switch", "log",
    ]
    assert NodeType.SWITCH == "switch" and isinstance(NodeType.SWITCH, str)


# --- validation ---


def graph_of(nodes, edges):
    graph = Graph(id="g", name="G", trigger=ManualTrigger())
    graph.add_nodes(*[Node(i, type=t, parent=p) for i, t, p in nodes])
    graph.add_edges(*[Edge(s, t) for s, t in edges])
    return graph


def test_validate_words_every_mistake_as_roomkit_graph_does():
    graph = graph_of(
        [("s1", "start", None), ("s2", "start", None), ("start", "agent", None), ("e2", "end", None), ("e1", "end", None)],
        [("e1", "s1"), ("ghost", "s1"), ("s1", "nowhere"), ("e2", "start"), ("s2", "e2")],
    )
    assert graph.validate() == [
        "Graph must have exactly one start node, found 2: s1, s2",
        "Only the start node may be named 'start', not agent node 'start'",
        "Edge source references nonexistent node: ghost",
        "Edge target references nonexistent node: nowhere",
        "Start node 's1' must not have incoming edges",
        "End node 'e2' must not have outgoing edges",
        "End node 'e1' must not have outgoing edges",
    ]
    with pytest.raises(GraphValidationError) as raised:
        graph.validate_or_raise()
    assert str(raised.value) == "; ".join(graph.validate())


def test_validate_reports_unreachable_nodes_only_when_nothing_else_is_wrong():
    assert graph_of([], []).validate() == [
        "Graph must have exactly one start node",
        "Graph must have at least one end node",
    ]
    nodes = [("start", "start", None), ("par", "parallel", None), ("kid", "log", "par"), ("lost", "log", None), ("end", "end", None)]
    assert graph_of(nodes, [("start", "par"), ("par", "end")]).validate() == [
        "Node 'lost' is not reachable from start"
    ]
    assert graph_of(nodes, [("start", "par"), ("par", "end"), ("end", "lost")]).validate() == [
        "End node 'end' must not have outgoing edges"
    ]


def test_validate_accepts_what_only_the_engine_refuses_and_check_reports_it():
    graph = Graph.from_dict(
        {
            "id": "g",
            "name": "G",
            "trigger": {"type": "manual"},
            "nodes": [
                {"id": "start", "type": "start"},
                {"id": "wait", "type": "function", "config": {"action": "delay", "duration": "soon"}},
                {"id": "end", "type": "end"},
            ],
            "edges": [
                {"source": "start", "target": "wait"},
                {"source": "wait", "target": "end", "condition": {"type": "field", "path": "x", "op": "like"}},
            ],
        }
    )
    assert graph.validate() == []
    found = graph.check()
    assert {(f["code"], f["node"], f["field"]) for f in found} == {
        ("invalid_duration", "wait", "duration"),
        ("malformed_condition", "wait", "edges[1].condition"),
    }
    assert all(isinstance(f["message"], str) and f["message"] for f in found)


def test_validate_ignores_config_the_engine_could_not_read():
    graph = graph_of([("start", "start", None), ("end", "end", None)], [("start", "end")])
    graph.nodes["start"].config = {"when": {1, 2}}
    assert graph.validate() == []
    with pytest.raises(TypeError, match="set"):
        graph.to_dict()


# --- conditions ---


def test_evaluate_dict_walks_the_dict_and_compares_as_the_engine_does():
    data = {"a": {"n": 1500, "tags": ["urgent"], "flag": True, "none": None}, "b.c": 1}
    assert Condition.field("a.n").equals(1500.0).evaluate_dict(data) is True
    assert Condition.field("a.n").gt(1000).evaluate_dict(data) is True
    assert Condition.field("a.tags").contains("urgent").evaluate_dict(data) is True
    assert Condition.field("a.flag").equals(1).evaluate_dict(data) is False
    assert Condition.field("a.none").exists().evaluate_dict(data) is True
    assert Condition.field("a.missing").exists().evaluate_dict(data) is False
    assert Condition.field("a.missing").not_equals(1).evaluate_dict(data) is False
    assert Condition.field("b.c").exists().evaluate_dict(data) is False
    assert Condition.any_().evaluate_dict({}) is False and Condition.all_().evaluate_dict({}) is True
    assert Condition("xor").evaluate_dict(data) is False


def test_condition_errors_name_the_problem():
    with pytest.raises(ConditionError, match="Unknown condition operator: 'gte'"):
        Condition("field", "a.n", "gte", 1).evaluate_dict({"a": {"n": 2}})
    with pytest.raises(ConditionError, match="op"):
        Condition("field", "a.n").evaluate_dict({"a": {"n": 2}})
    with pytest.raises(TypeError, match="Condition objects"):
        Condition.all_("not a condition").to_dict()
    with pytest.raises(TypeError, match="dict"):
        Condition.from_dict("otherwise")


def test_evaluate_reads_paths_through_the_context():
    from roomkit_graph import WorkflowContext

    context = WorkflowContext()
    context.set("start", {"input": {"title": "DB down"}})
    context.set("triage", {"severity": "critical"})
    assert Condition.field("trigger.title").equals("DB down").evaluate(context) is True
    assert Condition.field("steps.triage.severity").equals("critical").evaluate(context) is True
    assert Condition.field("triage.output.missing").exists().evaluate(context) is False


if not hasattr(__import__("roomkit_graph"), "WorkflowContext"):
    test_evaluate_reads_paths_through_the_context = pytest.mark.skip(reason="no WorkflowContext yet")(
        test_evaluate_reads_paths_through_the_context
    )


# --- bad input ---


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ({"id": "g", "trigger": {"type": "manual"}}, GraphValidationError, "name"),
        ({"id": "g", "name": "G", "trigger": {"type": "manual"}, "nodes": {}}, GraphValidationError, "sequence"),
        ({"id": "g", "name": "G", "trigger": {"type": "manual"}, "nodes": [{"id": "a"}]}, GraphValidationError, "type"),
        ({"id": "g", "name": "G", "trigger": {"type": "manual"}, "nodes": [{"id": 1, "type": "end"}]},
         GraphValidationError, "string"),
        ({"id": "g", "name": "G", "trigger": {"type": "manual"}, "version": -1}, GraphValidationError, "-1"),
        ({"id": "g", "name": "G", "trigger": {"type": "event"}}, GraphValidationError, "event"),
        ({"id": "g", "name": "G", "trigger": {"type": "manual"}, "edges": [{"source": "a"}]},
         GraphValidationError, "target"),
        ({"id": "g", "name": "G", "trigger": {"type": "manual"}, "nodes": [{"id": "a", "type": "end", "bad": 1}]},
         GraphValidationError, "bad"),
        ({"id": "g", "name": "G", "trigger": {"type": "manual"},
          "nodes": [{"id": "a", "type": "start"}, {"id": "a", "type": "end"}]}, ValueError, "Duplicate node id: a"),
        ({"id": "g", "name": "G", "trigger": {"type": "manual"}, "metadata": {"s": {1}}}, TypeError, "set"),
        ({"id": "g", "name": "G", "trigger": {"type": "manual"}, "metadata": {"n": float("nan")}}, ValueError, "finite"),
        ([], TypeError, "dict"),
    ],
)
def test_bad_graph_data_gives_a_precise_error(data, error, match):
    with pytest.raises(error, match=match):
        Graph.from_dict(data)


def test_deep_nesting_is_refused_not_a_crash():
    deep: dict = {}
    for _ in range(10_000):
        deep = {"d": deep}
    with pytest.raises(ValueError, match="deeper"):
        Graph.from_dict({"id": "g", "name": "G", "trigger": {"type": "manual"}, "metadata": deep})
    condition = Condition.otherwise()
    with pytest.raises(ValueError, match="more than 40 levels"):
        for _ in range(10_000):
            condition = Condition.not_(condition)
    assert condition.to_dict()["type"] == "not"
    nested = {"type": "otherwise"}
    for _ in range(60):
        nested = {"type": "not", "conditions": [nested]}
    with pytest.raises(ConditionError, match="nested more than"):
        Condition.from_dict(nested)


def test_wrong_types_in_a_graph_name_the_field():
    graph = Graph("g", "G", ManualTrigger())
    graph.add_node(Node("start", "start", config=["not", "a", "dict"]))
    with pytest.raises(TypeError, match="node 'start': its config must be a dict"):
        graph.to_dict()
    graph = Graph("g", "G", ManualTrigger(), version="2")
    with pytest.raises(TypeError, match="version must be an int"):
        graph.to_dict()
    graph = Graph("g", "G", ManualTrigger(), max_steps=-3)
    with pytest.raises(TypeError, match="max_steps must be a whole number, not -3"):
        graph.to_dict()
    graph = Graph("g", "G", ManualTrigger(), edges=["start->end"])
    with pytest.raises(TypeError, match=r"graph.edges\[0\] is not an Edge"):
        graph.validate()
    graph = Graph("g", "G", ManualTrigger(), nodes={"a": "start"})
    with pytest.raises(TypeError, match=r"graph.nodes\['a'\] is not a Node"):
        graph.validate()
    graph = Graph("g", "G", ManualTrigger())
    graph.add_edge(Edge("start", "end", condition="always"))
    with pytest.raises(TypeError, match="its condition must be a Condition"):
        graph.to_dict()
    with pytest.raises(ValueError, match="Duplicate node id: start"):
        graph.add_nodes(Node("start", "start"), Node("start", "end"))


# --- registry ---


def test_function_registry_holds_functions_by_name():
    registry = FunctionRegistry()

    @registry.function("triple")
    def triple(context, config):
        return {"value": 3 * config["x"]}

    registry.register("noop", len)
    assert registry.get("triple") is triple
    assert registry.has("noop") and not registry.has("nope")
    assert registry.list_functions() == ["triple", "noop"]
    with pytest.raises(KeyError):
        registry.get("nope")
    assert registry._functions == {"triple": triple, "noop": len}


def test_graph_registry_entries_can_be_patched(monkeypatch):
    monkeypatch.setitem(graph_registry._functions, "patched", print)
    assert graph_registry.get("patched") is print
    assert isinstance(graph_registry, FunctionRegistry)


async def test_a_graph_with_a_trigger_subclass_runs():
    from roomkit_graph import WorkflowEngine

    class Hourly(Trigger, trigger_type="hourly-test"):
        pass

    graph = Graph("g", "G", Hourly(type="hourly-test", config={"minute": 5}))
    graph.add_nodes(Node("start", "start"), Node("end", "end"))
    graph.add_edge(Edge("start", "end"))
    engine = WorkflowEngine(graph)
    await engine.run({"n": 1})
    assert engine.current_node_id is None
    assert engine.context.get("trigger.n") == 1
