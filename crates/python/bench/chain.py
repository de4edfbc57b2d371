"""The chain workloads through whichever `roomkit_graph` this interpreter
imports: ours (distribution roomkit-graph-rs) or roomkit-graph 0.4.0. Both
run this same file, on the same interpreter version, in the same
`scripts/bench python` run, so their figures compare.

Usage: python chain.py chain|chain-py N [REPEAT [SECONDS]]

- chain: start -> N function nodes -> end, node i a `json_transform` of the
  shared chain workload (bench/README.md of the shared folder), trigger
  {"name": "bench"}.
- chain-py: the same graph, node i a `custom` action calling one registered
  `async def f(context, config)` that returns {"i": config["i"]}.

The chain runs at least REPEAT times (default 5) and until SECONDS (default
1) have passed, each run on a fresh engine on the graph built beforehand, so
a fast engine is timed over as long a span of a busy machine as a slow one;
prints N + 2 steps (start and end are steps) over the median run:
    engine=NAME workload=W n=N steps_per_s=X
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from importlib.metadata import packages_distributions, version

TEMPLATE = {
    "prev": "{{input.i | default(-1)}}",
    "msg": "step {{input.i | default(-1)}} of {{trigger.name}}",
}


def engine_name() -> str:
    """Which package this interpreter runs: ours or the reference."""
    if "roomkit-graph-rs" in packages_distributions().get("roomkit_graph", []):
        return "roomkit-graph-rs-python"
    return f"roomkit-graph-py-{version('roomkit-graph')}"


def node_config(workload: str, i: int) -> dict:
    if workload == "chain":
        return {"action": "json_transform", "template": {"i": i, **TEMPLATE}}
    return {"action": "custom", "function": "f", "i": i}


def chain(workload: str, n: int):
    from roomkit_graph import Edge, Graph, ManualTrigger, Node

    g = Graph(id="chain", name="chain", trigger=ManualTrigger())
    g.add_node(Node("start", type="start"))
    prev = "start"
    for i in range(n):
        g.add_node(Node(f"n{i}", type="function", config=node_config(workload, i)))
        g.add_edge(Edge(prev, f"n{i}"))
        prev = f"n{i}"
    g.add_node(Node("end", type="end"))
    g.add_edge(Edge(prev, "end"))
    return g


async def f(context, config):
    return {"i": config["i"]}


async def run_once(graph, n: int, workload: str) -> float:
    from roomkit_graph import WorkflowEngine

    engine = WorkflowEngine(graph)
    started = time.perf_counter()
    ctx = await engine.run(trigger_data={"name": "bench"})
    elapsed = time.perf_counter() - started
    last = ctx.get(f"n{n - 1}.output")
    expected = {"i": n - 1} if workload == "chain-py" else {"i": n - 1, "prev": n - 2}
    if {k: last.get(k) for k in expected} != expected:
        raise SystemExit(f"chain.py: the chain's last output is {last!r}, not {expected!r}")
    return elapsed


def main() -> None:
    usage = "usage: python chain.py chain|chain-py N [REPEAT [SECONDS]]"
    if len(sys.argv) not in (3, 4, 5) or sys.argv[1] not in ("chain", "chain-py"):
        raise SystemExit(usage)
    workload = sys.argv[1]
    try:
        n = int(sys.argv[2])
        repeat = int(sys.argv[3]) if len(sys.argv) >= 4 else 5
        seconds = float(sys.argv[4]) if len(sys.argv) == 5 else 1.0
    except ValueError:
        raise SystemExit(usage) from None
    if n < 2 or repeat < 1 or not seconds >= 0:
        raise SystemExit("chain.py: N must be 2 or more, REPEAT 1 or more and SECONDS 0 or more")
    try:
        from roomkit_graph import WorkflowEngine, graph_registry  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"chain.py: {engine_name()} cannot run a workflow yet: {e}") from None
    graph_registry.register("f", f)
    graph = chain(workload, n)
    times = []
    began = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - began < seconds:
        times.append(asyncio.run(run_once(graph, n, workload)))
    steps_per_s = (n + 2) / statistics.median(times)
    print(f"engine={engine_name()} workload={workload} n={n} steps_per_s={steps_per_s:.0f}")


main()
