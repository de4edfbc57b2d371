"""A process that starts a durable run and drives it until it is killed.

Usage: python durable_driver.py DATABASE GRAPH_ID LEASE_SECONDS MODE

It opens a runner on DATABASE, starts a run of GRAPH_ID and prints
``started RUN_ID``; its handler for ``work`` nodes prints ``working NODE``
and then never returns. With MODE ``hold`` the run stays this process's (its
lease renewed) until the process is killed. With MODE ``return`` the loop
ends as soon as the handler runs (``asyncio.run`` returns without closing
the runner, cancelling the step's task and closing the loop), then it prints
``ended`` and the process lives on, the runner with it, until it is killed.
tests/test_durable_processes.py drives it.
"""

import asyncio
import sys
import threading

from roomkit_graph.durable import Runner

#: The runner, kept after its loop ends in MODE ``return``.
kept = []


class Stuck:
    def __init__(self, working: asyncio.Event) -> None:
        self.working = working

    async def execute(self, node, context, engine):
        print("working", node.id, flush=True)
        self.working.set()
        await asyncio.Event().wait()


async def hold(database: str, graph_id: str, lease: float) -> None:
    working = asyncio.Event()
    async with Runner.open(database, handlers={"work": Stuck(working)}, lease=lease, recover_every=None) as runner:
        run_id = await runner.start(graph_id, {"from": "driver"})
        print("started", run_id, flush=True)
        await asyncio.Event().wait()


async def leave(database: str, graph_id: str, lease: float) -> None:
    working = asyncio.Event()
    runner = await Runner.open(database, handlers={"work": Stuck(working)}, lease=lease, recover_every=None)
    kept.append(runner)
    run_id = await runner.start(graph_id, {"from": "driver"})
    print("started", run_id, flush=True)
    await working.wait()


if __name__ == "__main__":
    database, graph_id, lease, mode = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    if mode == "hold":
        asyncio.run(hold(database, graph_id, lease))
    else:
        asyncio.run(leave(database, graph_id, lease))
        print("ended", flush=True)
        threading.Event().wait()
