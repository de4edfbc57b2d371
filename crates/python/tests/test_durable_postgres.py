"""roomkit_graph.durable on PostgreSQL: a server of this test's own
(`initdb` and `pg_ctl` on a free loopback port, stopped by its pid at the
end); skipped only where PostgreSQL's programs are missing."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from roomkit_graph.durable import Runner

#: Every wait of these tests is bounded by this many seconds.
BOUND = 30


def postgres_programs() -> Path | None:
    """The folder of initdb and pg_ctl: ROOMKIT_GRAPH_PG_BIN, Debian's newest, or the PATH."""
    if os.environ.get("ROOMKIT_GRAPH_PG_BIN"):
        return Path(os.environ["ROOMKIT_GRAPH_PG_BIN"])
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if debian:
        return Path(debian[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bin_dir = postgres_programs()
    if bin_dir is None:
        pytest.skip("no PostgreSQL programs (initdb, pg_ctl)")
    # PostgreSQL refuses to run as root: then its programs run as the postgres user.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="roomkit-graph-pg-"))
    data = home / "data"
    if as_user:
        shutil.chown(home, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def run(program: str, *args: str) -> None:
        subprocess.run([*as_user, str(bin_dir / program), *args], check=True, capture_output=True, timeout=BOUND)

    try:
        run("initdb", "--auth=trust", "--username=postgres", "--no-sync", "--encoding=UTF8", "-D", str(data))
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
        run("pg_ctl", "-D", str(data), "-w", "-t", str(BOUND), "-l", str(home / "log"), "-o", options, "start")
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop_server(data)
        shutil.rmtree(home, ignore_errors=True)


def stop_server(data: Path) -> None:
    """Stops the server of `data`, if one started (even when `pg_ctl start`
    then failed): an immediate shutdown of the pid in its postmaster.pid,
    then a wait for it to be gone."""
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGQUIT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.05)


REVIEW = {
    "id": "review",
    "name": "Review",
    "trigger": {"type": "manual"},
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "draft", "type": "draft"},
        {"id": "review", "type": "human", "config": {"actions": ["approve", "reject"]}},
        {"id": "end", "type": "end"},
    ],
    "edges": [
        {"source": "start", "target": "draft"},
        {"source": "draft", "target": "review"},
        {"source": "review", "target": "end"},
    ],
}


class Draft:
    async def execute(self, node, context, engine):
        return {"text": f"about {context.get('trigger.topic')}"}


async def test_a_run_on_postgresql_waits_is_answered_and_completes(postgres_url):
    async with Runner.open(postgres_url, handlers={"draft": Draft()}, connections=4) as runner:
        assert "postgres://..." in repr(runner) and "postgres@" not in repr(runner)
        assert await runner.save_graph(REVIEW) == 1
        run_id = await runner.start("review", {"topic": "storage"})
        seen: list[dict] = []

        async def follow() -> None:
            async for event in runner.transcript(run_id, follow=True):
                seen.append(event)

        follower = asyncio.create_task(follow())
        run = await asyncio.wait_for(runner.wait(run_id), BOUND)
        assert (run.status, run.waiting_on) == ("waiting", ["review"])
        assert run.context["draft"]["output"] == {"text": "about storage"}

        await runner.answer(run_id, {"action": "approve"})
        await asyncio.wait_for(follower, BOUND)
        run = await runner.run(run_id)
        assert run.status == "completed"
        assert [event["seq"] for event in seen] == list(range(1, len(seen) + 1))
        assert seen[-1]["type"] == "run_completed"
        assert [r.run_id for r in await runner.runs(status="completed")] == [run_id]
