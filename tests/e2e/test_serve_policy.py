"""``serve``'s own policy flags on a namespace without a trust store, on the embedded bus:
``--allow`` (who may have requests run) and ``--require-signed`` (which insists on a trust
store).

Without a trust store, who asked is the name the request gives (anyone who can write the
requests channel can give any name): ``--allow`` filters on that name, and no signature can
be checked, so ``--require-signed`` refuses to serve. Each test has a control: the same
requests served without the flag run, so the flag is what refused them. Every side effect is
counted.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from flamingock_es.adapters.local import LocalEventLog

from .conftest import Project, ok

pytestmark = pytest.mark.e2e


def _request(project: Project, by: str, unit: str, request_id: str) -> None:
    ok(project.cli("request", "--requested-by", by, "--reason", f"{by} asks",
                   "--unit", unit, "--id", request_id))


def _serve(project: Project, count: int, *flags: str) -> str:
    """``serve`` until ``count`` requests were handled; what it said it did."""
    served = ok(project.cli("serve", "--max-requests", str(count), *flags))
    (summary,) = [line for line in served.stderr.splitlines() if line.startswith("served ")]
    return summary


def _runs(project: Project) -> dict[str, dict[str, Any]]:
    """The answer (RunFinished payload) of each request, by request id."""
    events = json.loads(ok(project.cli("history", "--json")).stdout)
    return {e["request_id"]: e["payload"] for e in events
            if e["payload"]["type"] == "RunFinished" and e["request_id"]}


def _dead_letters(project: Project) -> list[dict[str, Any]]:
    path = project.path / ".flamingock" / "shop" / "requests.dead.log"
    if not path.exists():
        return []
    return [json.loads(record) for _, record in LocalEventLog(path).read()]


def test_serve_allow_runs_only_the_principals_it_names(project: Project) -> None:
    _request(project, "mallory", "u1", "from-mallory")
    _request(project, "alice", "u1", "from-alice")

    summary = _serve(project, 2, "--allow", "alice", "--allow", "bob")

    assert summary.startswith("served 2 request(s): 1 succeeded, 0 failed, 1 rejected"), summary
    runs = _runs(project)
    assert runs["from-mallory"]["outcome"] == "REJECTED"
    assert "'mallory' is not allowed to request changes here" in \
        runs["from-mallory"]["error"]["message"]
    assert runs["from-mallory"]["applied"] == []
    assert runs["from-alice"]["outcome"] == "SUCCEEDED"
    assert runs["from-alice"]["applied"] == ["u1"]
    assert project.effects() == ["start u1", "apply u1"]  # once, for alice only
    assert _dead_letters(project) == []  # refused by policy, answered: not a dead letter

    # Control: without --allow, mallory's request runs.
    _request(project, "mallory", "u2", "mallory-again")
    assert _serve(project, 1).startswith("served 1 request(s): 1 succeeded"), summary
    assert _runs(project)["mallory-again"]["applied"] == ["u2"]
    assert project.effects() == ["start u1", "apply u1", "start u2", "apply u2"]


def test_serve_require_signed_without_a_trust_store_refuses_to_start(project: Project) -> None:
    """Without a trust store no signature can be checked: any key would pass. So the flag
    refuses to serve at all, and says where the trust store goes; no request is taken."""
    ok(project.cli("run"))  # something in the log, to show that nothing is added to it
    before = project.log.read_bytes()
    project.write("changes/more.py", """
        from flamingock_es import change_unit

        @change_unit(id="u4", order=4, author="ana")
        def u4(ctx):
            with open("effects.txt", "a") as f:
                f.write("apply u4\\n")
    """)
    _request(project, "alice", "u4", "unsigned-1")

    refused = ok(project.cli("serve", "--max-requests", "1", "--require-signed"), 2)

    assert "no trust store to check signatures against" in refused.stderr
    assert "trust:" in refused.stderr
    assert project.log.read_bytes() == before  # no lock, no event: nothing recorded
    assert _dead_letters(project) == []  # the request was not even taken
    assert "apply u4" not in project.effects()

    # Control: served without the flag, the same request runs.
    assert _serve(project, 1).startswith("served 1 request(s): 1 succeeded")
    assert _runs(project)["unsigned-1"]["applied"] == ["u4"]
    assert project.effects().count("apply u4") == 1
