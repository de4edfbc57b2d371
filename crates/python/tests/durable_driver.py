"""A process that starts a durable run and drives it until it is killed.

Usage: python durable_driver.py DATABASE GRAPH_ID LEASE_SECONDS

It opens a runner on DATABASE, starts a run of GRAPH_ID and prints
``started RUN_ID``; its handler for ``work`` nodes prints ``working NODE``
and then never returns, so the run stays this process's (its lease renewed)
until the process is killed. tests/test_durable_processes.py drives it.
"""

import asyncio
import sys

from roomkit_graph.durable import Runner


class Stuck:
    async def execute(self, node, context, engine):
        print("working", node.id, flush=True)
        await asyncio.Event().wait()


async def main(database: str, graph_id: str, lease: float) -> None:
    async with Runner.open(database, handlers={"work": Stuck()}, lease=lease, recover_every=None) as runner:
        run_id = await runner.start(graph_id, {"from": "driver"})
        print("started", run_id, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
