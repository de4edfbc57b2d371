"""The bug-triage example (crates/python/examples/bug_triage.py), run as a
user runs it, prints the transcript of each issue's run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bug_triage.py"
RUN = re.compile(r"^  run (\S+) finished; context: (.*)$")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _transcript(stdout: str) -> tuple[list[str], list[str], list[dict]]:
    """The lines with each run's line cut to ``run finished``, its run ids and contexts."""
    lines, runs, contexts = [], [], []
    for line in stdout.splitlines():
        if found := RUN.match(line):
            runs.append(found[1])
            contexts.append(json.loads(found[2]))
            line = "  run finished"
        lines.append(line)
    return lines, runs, contexts


def test_the_example_escalates_the_outage_and_labels_the_typo():
    done = _run()

    assert done.returncode == 0, done.stderr
    lines, runs, contexts = _transcript(done.stdout)
    assert lines == [
        '── issue "123": "Checkout is down for all EU users"',
        "  → start (start)",
        "  ✓ start completed",
        "  → triage (agent)",
        '    💬 triage-agent: {"severity":"critical","title":"Checkout is down for all EU users"}',
        "  ✓ triage completed",
        "  → escalate (notification)",
        "    📣 [slack] Critical bug: Checkout is down for all EU users",
        "  ✓ escalate completed",
        "  → end (end)",
        "  ✓ end completed",
        "  run finished",
        "",
        '── issue "124": "Typo on the pricing page"',
        "  → start (start)",
        "  ✓ start completed",
        "  → triage (agent)",
        '    💬 triage-agent: {"severity":"minor","title":"Typo on the pricing page"}',
        "  ✓ triage completed",
        "  → assign (agent)",
        '    💬 labeler-agent: {"labels":["bug","frontend"],"team":"frontend"}',
        "  ✓ assign completed",
        "  → end (end)",
        "  ✓ end completed",
        "  run finished",
        "",
    ]
    assert len(set(runs)) == 2
    assert contexts[0]["escalate"]["output"] == {
        "channel": "slack",
        "text": "Critical bug: Checkout is down for all EU users",
        "sent": True,
    }
    assert "assign" not in contexts[0] and "escalate" not in contexts[1]
    assert contexts[1]["start"]["output"]["input"]["issue_id"] == "124"


def test_the_example_triages_the_issue_it_is_given():
    done = _run(json.dumps({"issue_id": "125", "title": "Crash on login", "body": "error 500"}))

    assert done.returncode == 0, done.stderr
    lines, _, [context] = _transcript(done.stdout)
    assert '    💬 triage-agent: {"severity":"major","title":"Crash on login"}' in lines
    assert '    💬 labeler-agent: {"labels":["bug","backend"],"team":"backend"}' in lines
    assert context["assign"]["output"]["team"] == "backend"


def test_the_example_refuses_an_issue_that_is_not_json():
    done = _run("{not json")

    assert done.returncode == 1
    assert done.stderr.startswith("the issue must be JSON:")
    assert done.stdout == ""
