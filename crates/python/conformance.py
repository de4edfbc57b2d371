"""Runs conformance cases through the Python API of roomkit_graph.

Usage: python conformance.py CASES_DIR OUT_DIR

Writes OUT_DIR/NAME.json for every CASES_DIR/NAME.json, one record per op,
in the form ../shared/conformance/README.md describes (the records
scripts/conformance writes through the Rust API), so that
../shared/conformance/compare.py can hold the two front ends to the same
expected records. Mocked nodes are answered by a NodeHandler registered for
their type (the other nodes of that type go to its built-in handler, or fail
as a type without one does); the engine's own built-ins answer the rest.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

from roomkit_graph import (
    ConditionError,
    ConditionHandler,
    EndHandler,
    ExecutionError,
    FunctionHandler,
    Graph,
    NodeHandler,
    NodeResult,
    NoValidTransitionError,
    ParallelHandler,
    StartHandler,
    SwitchHandler,
    TemplateError,
    WorkflowEngine,
)
from roomkit_graph.handlers import LogHandler

BUILTIN = {
    "start": StartHandler,
    "end": EndHandler,
    "function": FunctionHandler,
    "condition": ConditionHandler,
    "switch": SwitchHandler,
    "parallel": ParallelHandler,
    "log": LogHandler,
}

# Exception classes by the error kind a record names, most specific first.
KINDS = [
    (NoValidTransitionError, "no_transition"),
    (TemplateError, "template"),
    (ConditionError, "condition"),
    (ExecutionError, "execution"),
    ((ValueError, KeyError, TypeError), "invalid_argument"),
]

# Graph.validate()'s messages and the codes a validation record gives them.
VALIDATION = [
    (r"Graph must have exactly one start node, found \d+: .*", "multiple_starts", None),
    (r"Graph must have exactly one start node", "no_start", None),
    (r"Graph must have at least one end node", "no_end", None),
    (r"Only the start node may be named 'start', not .*", "misnamed_start", "start"),
    (r"Edge source references nonexistent node: (.*)", "dangling_edge_source", 1),
    (r"Edge target references nonexistent node: (.*)", "dangling_edge_target", 1),
    (r"Start node '(.*)' must not have incoming edges", "start_has_incoming", 1),
    (r"End node '(.*)' must not have outgoing edges", "end_has_outgoing", 1),
    (r"Node '(.*)' is not reachable from start", "unreachable", 1),
]


class Mock(NodeHandler):
    """Answers the mocked nodes of one node type from their scripted results:
    the n-th call of a node (from 0, per op) gets results[min(n, len - 1)]."""

    def __init__(self, node_type: str, mocks: dict[str, list[dict]], calls: dict[str, int]) -> None:
        self.mocks = mocks
        self.calls = calls
        self.fallback = BUILTIN[node_type]() if node_type in BUILTIN else None
        self.node_type = node_type

    async def execute(self, node, context, engine):
        results = self.mocks.get(node.id)
        if results is None:
            if self.fallback is None:
                raise ExecutionError(f"No handler registered for node type '{self.node_type}'")
            return await self.fallback.execute(node, context, engine)
        if not results:
            raise ExecutionError(f"node '{node.id}' has an empty mock list")
        call = self.calls.get(node.id, 0)
        self.calls[node.id] = call + 1
        result = results[min(call, len(results) - 1)]
        for payload in result.get("emit", []):
            engine.emit(payload)
        return NodeResult(
            output=result.get("output"),
            status=result.get("status", "completed"),
            error=result.get("error"),
        )


def mock_handlers(graph: Graph, mocks: dict[str, list[dict]]) -> dict[str, NodeHandler]:
    """One Mock per node type that has a mocked node; call counts start at 0."""
    calls: dict[str, int] = {}
    types = {str(graph.nodes[node_id].type) for node_id in mocks if node_id in graph.nodes}
    return {node_type: Mock(node_type, mocks, calls) for node_type in types}


def error_kind(error: BaseException) -> str | None:
    for classes, kind in KINDS:
        if isinstance(error, classes):
            return kind
    return None


def validation_record(graph: Graph) -> dict:
    errors = []
    for message in graph.validate():
        for pattern, code, node in VALIDATION:
            found = re.fullmatch(pattern, message)
            if found:
                errors.append({"code": code, "node": found.group(node) if isinstance(node, int) else node})
                break
        else:
            raise SystemExit(f"validate() gave an unknown message: {message}")
    errors.sort(key=lambda e: (e["code"], e["node"] or ""))
    return {"errors": errors}


def outcome(engine: WorkflowEngine) -> str:
    if engine.current_node_id is None:
        return "completed"
    return "waiting" if engine.waiting else "stopped"


def saved_state(engine: WorkflowEngine) -> tuple[dict, dict]:
    """The engine's saved state as JSON, and as a record shows it (no run id)."""
    state = json.loads(json.dumps(engine.to_dict()))
    shown = {key: value for key, value in state.items() if key != "run_id"}
    return state, shown


async def run_op(graph: Graph, mocks: dict, op: dict, saved: dict | None) -> tuple[dict, dict | None]:
    handlers = mock_handlers(graph, mocks)
    record: dict = {}
    engine = None
    try:
        if op.get("op") == "run":
            engine = WorkflowEngine(graph, handlers=handlers)
            if "stream" in op:
                events = record.setdefault("events", [])
                async for event in engine.stream(op.get("input"), modes=tuple(op["stream"])):
                    events.append(dict(event))
            else:
                await engine.run(trigger_data=op.get("input"))
        elif op.get("op") == "resume":
            if saved is None:
                raise ValueError("resume needs a previous op")
            engine = WorkflowEngine.from_dict(graph, saved, handlers=handlers)
            await engine.resume(op.get("node"), op.get("data"))
            while await engine.step():
                pass
        else:
            raise ValueError(f"unknown op {op.get('op')!r}")
        record.update(outcome=outcome(engine), error_kind=None)
    except Exception as error:  # every failure of a known kind is a record
        kind = error_kind(error)
        if kind is None:
            raise
        record.update(outcome="error", error_kind=kind, error=f"{type(error).__name__}: {error}")
    if engine is None:
        record["state"] = None
        return record, saved
    state, record["state"] = saved_state(engine)
    return record, state


async def run_case(case: dict) -> list[dict]:
    try:
        graph = Graph.from_dict(case["graph"])
    except Exception as error:  # an unreadable graph is a record
        return [{"outcome": "error", "error_kind": "invalid_argument", "state": None, "error": str(error)}]
    if case.get("validate"):
        return [validation_record(graph)]
    mocks = case.get("mocks", {})
    records: list[dict] = []
    saved = None
    for op in case.get("script", []):
        record, saved = await run_op(graph, mocks, op, saved)
        records.append(record)
        if record["outcome"] == "error":
            break
    return records


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: conformance.py CASES_DIR OUT_DIR")
    cases_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    paths = sorted(cases_dir.glob("*.json"))
    if not paths:
        raise SystemExit(f"no *.json case in {cases_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        records = asyncio.run(run_case(json.loads(path.read_text())))
        (out_dir / path.name).write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
