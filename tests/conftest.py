"""What every test phase shares: under CI (``CI=true``) a skipped test is a failure.

A suite that skips what it cannot run looks green while testing nothing: a test that needs a
server starts it, or fails saying why. The one way left to skip under CI is on purpose, by a
``FLAMINGOCK_SKIP_*`` variable the skip's reason names (tests/unit/test_graph_render.py).
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

KNOWINGLY = "FLAMINGOCK_SKIP_"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, object, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not (_in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if KNOWINGLY in reason:
        return
    report.outcome = "failed"
    report.longrepr = (
        f"{item.nodeid} was skipped under CI=true, where nothing is skipped "
        f"silently (start what it needs, or fail saying why): {reason}"
    )
