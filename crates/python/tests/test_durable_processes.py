"""A durable run on SQLite across two processes: started in one, followed
live and answered from the other, and taken over by the other when the
process driving it is killed with SIGKILL, or when its loop ends mid-step
(which commits nothing of the step)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pytest

from roomkit_graph.durable import Runner

#: Every wait of this test is bounded by this many seconds.
BOUND = 30

#: Leases short enough for a quick takeover, long enough for a busy driver
#: to renew its own (every third of one). Only this process takes runs over,
#: and only once the driver is killed.
LEASE = 1.0

DRIVER = Path(__file__).with_name("durable_driver.py")

RELEASE = {
    "id": "release",
    "name": "Release",
    "trigger": {"type": "manual"},
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "prepare", "type": "work"},
        {"id": "review", "type": "human", "config": {"prompt": "Release?", "actions": ["approve", "reject"]}},
        {"id": "publish", "type": "function", "config": {"action": "set_context", "values": {"published": True}}},
        {"id": "end", "type": "end"},
    ],
    "edges": [
        {"source": "start", "target": "prepare"},
        {"source": "prepare", "target": "review"},
        {"source": "review", "target": "publish"},
        {"source": "publish", "target": "end"},
    ],
}


class Work:
    """This process's handler: says which process did the work."""

    async def execute(self, node, context, engine):
        return {"by": os.getpid(), "attempt": engine.attempt}


@pytest.mark.parametrize("mode", ["hold", "return"])
async def test_a_run_survives_the_sigkill_of_the_process_driving_it(tmp_path, mode):
    """``hold``: killed mid-step. ``return``: its loop ended mid-step first
    (``asyncio.run`` returned without closing the runner), the process alive."""
    database = tmp_path / "runs.db"
    async with Runner.open(database, handlers={"work": Work()}, lease=LEASE, recover_every=None) as runner:
        await runner.save_graph(RELEASE)
        driver = await asyncio.create_subprocess_exec(
            sys.executable, str(DRIVER), str(database), "release", str(LEASE), mode, stdout=asyncio.subprocess.PIPE
        )
        try:
            await asyncio.wait_for(takeover(runner, driver, database, mode), BOUND)
        finally:
            if driver.returncode is None:
                os.kill(driver.pid, signal.SIGKILL)
                await driver.wait()


def stored(database: Path, run_id: str) -> tuple[str, str, int | None]:
    """The run's status, owner and lease expiry as the SQLite file holds them."""
    with closing(sqlite3.connect(database, timeout=BOUND)) as db:
        return db.execute("SELECT status, owner, lease_until FROM runs WHERE run_id = ?", (run_id,)).fetchone()


async def takeover(runner: Runner, driver: asyncio.subprocess.Process, database: Path, mode: str) -> None:
    # The driver starts the run and is stuck in its step "prepare", holding the run.
    said: dict[str, str] = {}
    while set(said) != {"started", "working"}:
        word, value = (await driver.stdout.readline()).decode().split()
        said[word] = value
    run_id = said["started"]
    assert said["working"] == "prepare"
    assert (await runner.run(run_id)).owner.split("/")[1] == str(driver.pid)

    if mode == "return":
        # The driver's loop cancelled the step's task and closed: that is no
        # failure of "prepare". Nothing is committed; the run stays the
        # driver's, its lease renewed while the process lives.
        assert (await driver.stdout.readline()).decode().split() == ["ended"]
        status, owner, until = stored(database, run_id)
        ended_until = until
        while status == "running" and until == ended_until:
            await asyncio.sleep(0.02)
            status, owner, until = stored(database, run_id)
        assert (status, owner and owner.split("/")[1]) == ("running", str(driver.pid))

    # This process follows the run live, from its first event.
    followed: list[dict] = []
    waiting = asyncio.Event()

    async def follow() -> None:
        async for event in runner.transcript(run_id, follow=True):
            followed.append(event)
            if event["type"] == "node_waiting":
                waiting.set()

    follower = asyncio.create_task(follow())

    # Killed mid-step: nothing of "prepare" was committed, and the lease lapses.
    os.kill(driver.pid, signal.SIGKILL)
    assert await driver.wait() == -signal.SIGKILL

    # This process takes the run over once the lease has lapsed, runs
    # "prepare" again and parks on "review".
    while await runner.recover() == 0:
        await asyncio.sleep(0.05)
    await waiting.wait()
    run = await runner.wait(run_id)
    assert (run.status, run.waiting_on) == ("waiting", ["review"])
    assert run.context["prepare"]["output"] == {"by": os.getpid(), "attempt": 1}

    # Answered here; the follower sees the rest as it is committed.
    await runner.answer(run_id, {"action": "approve"}, by="test")
    await follower
    run = await runner.wait(run_id)
    assert run.status == "completed"
    assert run.context["publish"]["output"] == {"published": True}

    kinds = [(event["type"], event.get("node_id")) for event in followed]
    assert [event["seq"] for event in followed] == list(range(1, len(followed) + 1))
    assert kinds[0] == ("run_started", None) and kinds[-1] == ("run_completed", None)
    # The killed process's step left no trace; the one that took over ran it once.
    assert kinds.count(("node_started", "prepare")) == 1
    assert kinds.index(("node_waiting", "review")) < kinds.index(("answer_received", "review"))
    assert followed[0]["trigger"] == {"from": "driver"}
