"""``flamingock-es dashboard`` watched in headless Chromium during a real rollout.

Ten tenants on the embedded bus, two units each; ``fail-TENANT`` makes u2 fail (u1 is then
compensated), ``hold-TENANT`` parks u1 until ``release-TENANT`` exists. One process runs
``project --all-tenants`` beside the rollout; the dashboard reads only what it projects. The
page is opened while a tenant is held (the rollout is running), then, with no reload, it must
show the rollout finished, the failed tenant compensated, and a tenant's history on a click.
Screenshots of both moments are saved for CI as artefacts.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from .browser import Browser, artifacts
from .conftest import Project

pytestmark = pytest.mark.e2e

TENANTS = [f"t{i}" for i in range(1, 11)]
FAILS, HELD = "t3", "t6"
REASON = "release 7 (CHG-1234)"

UNITS = '''\
import time
from pathlib import Path

from flamingock_es import change_unit


def _tenant(ctx):
    return ctx.settings["tenant"]["id"]


def undo(ctx):
    pass


@change_unit(id="add-tier-field", order=1, author="ana", rollback=undo)
def u1(ctx):
    tenant = _tenant(ctx)
    if Path(f"hold-{tenant}").exists():
        deadline = time.monotonic() + 60
        while not Path(f"release-{tenant}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)


@change_unit(id="enable-checkout", order=2, author="bruno", rollback=undo,
             parameters={"url": "https://${tenant.id}.flags.example", "api_token": "t0ps3cret"})
def u2(ctx):
    if Path(f"fail-{_tenant(ctx)}").exists():
        raise RuntimeError(f"flag service refused {_tenant(ctx)}")
'''


@pytest.fixture
def shop(project: Project) -> Project:
    project.write("flamingock.yaml", f"""\
namespace: shop
tenants: [{", ".join(TENANTS)}]
stages:
  - name: main
    units: [changes]
""")
    project.write("changes/units.py", UNITS)
    (project.path / "changes" / "__init__.py").unlink(missing_ok=True)
    return project


@pytest.fixture
def started(shop: Project) -> Iterator[list[subprocess.Popen[str]]]:
    """The processes a test starts, ended (and reaped) whatever happens."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def _url(dashboard: subprocess.Popen[str]) -> str:
    assert dashboard.stdout is not None
    line = dashboard.stdout.readline()
    found = re.search(r"on (http://127\.0\.0\.1:(\d+)/)", line)
    assert found, f"the dashboard did not print its URL: {line!r}"
    assert found.group(2) != "0"
    return found.group(1)


def _save(browser: Browser, name: str) -> None:
    print(f"screenshot: {browser.screenshot(artifacts() / name)}")


def _grid(browser: Browser) -> dict[str, dict[str, str]]:
    cells: dict[str, dict[str, str]] = browser.evaluate("""Object.fromEntries(
      [...document.querySelectorAll('#grid tr[data-tenant]')].map(r => [r.dataset.tenant,
        Object.fromEntries([...r.querySelectorAll('td.cell')].map(
          c => [c.dataset.unit, c.classList.contains('running') ? 'RUNNING'
                                                                 : c.dataset.status]))]))""")
    return cells


def test_the_dashboard_follows_a_rollout_as_it_runs(shop: Project, browser: Browser,
                                                    started: list[subprocess.Popen[str]]
                                                    ) -> None:
    began = time.monotonic()
    shop.flag(f"fail-{FAILS}", f"hold-{HELD}")
    started.append(projector := shop.spawn("project", "--all-tenants", "-q"))
    started.append(dashboard := shop.spawn("dashboard", "--port", "0", "--poll", "0.5"))
    url = _url(dashboard)
    started.append(rollout := shop.spawn("rollout", "--reason", REASON, "--canary", "1",
                                         "--wave", "3", "--max-failures", "1", "-q"))
    browser.open(url)

    # While tenant t6 is held: the rollout is running, t6's first unit is in progress.
    browser.wait_until(
        "document.querySelector('#rollout-list [data-status=\"RUNNING\"]') && "
        f"document.querySelector('#grid tr[data-tenant=\"{HELD}\"] td.cell.running')",
        what="the running rollout, with t6 in progress")
    during = _grid(browser)
    assert during[HELD]["add-tier-field"] == "RUNNING"
    assert during["t1"] == {"add-tier-field": "APPLIED", "enable-checkout": "APPLIED"}
    assert during["t10"] == {"add-tier-field": "PENDING", "enable-checkout": "PENDING"}
    assert browser.evaluate("!document.getElementById('live').hidden")
    header = browser.evaluate("document.querySelector('#rollout-list .rollout').innerText")
    assert REASON in header
    assert "e2e-user" in header
    assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    _save(browser, "dashboard-running.png")
    refreshed = int(browser.evaluate("document.body.dataset.refreshed"))

    shop.flag(f"release-{HELD}")
    rollout.communicate(timeout=60)
    assert rollout.returncode == 0  # PARTIAL: one failure, within the budget of 1

    # No reload: the page polls, and shows the end on its own.
    browser.wait_until(
        "document.querySelector('#rollout-list [data-status=\"FINISHED\"]') && "
        "document.querySelectorAll('#grid td.cell[data-status=\"PENDING\"]').length === 0 && "
        "!document.querySelector('#grid td.cell.running')",
        what="the finished rollout with every tenant's result")
    assert int(browser.evaluate("document.body.dataset.refreshed")) > refreshed
    after = _grid(browser)
    # enable-checkout failed, then both were compensated (each has a rollback)
    assert after[FAILS] == {"add-tier-field": "ROLLED_BACK", "enable-checkout": "ROLLED_BACK"}
    assert all(after[t] == {"add-tier-field": "APPLIED", "enable-checkout": "APPLIED"}
               for t in TENANTS if t != FAILS)
    article = browser.evaluate("document.querySelector('#rollout-list .rollout').innerText")
    assert "10 tenant(s): ROLLED_BACK 1, SUCCEEDED 9" in article
    assert "PARTIAL" in article
    assert "1 failed of 4 allowed" in article  # a budget of 1 in each of the four waves
    assert f"{FAILS} (wave 1): ROLLED_BACK" in article
    waves = browser.evaluate("[...document.querySelectorAll('.waves tr[data-wave]')]"
                             ".map(r => r.innerText.replace(/\\s+/g, ' ').trim())")
    assert len(waves) == 4
    assert waves[0].startswith("canary 1 SUCCEEDED 1")

    # A click on a tenant: its units, its history, who asked, who applied, verification.
    browser.evaluate(f"document.querySelector('#grid tr[data-tenant=\"{FAILS}\"] th').click()")
    browser.wait_until("document.querySelectorAll('#tenant-body table.history tr[data-unit]')"
                       ".length === 2", what="t3's history")
    assert browser.evaluate("document.getElementById('tenant-title').textContent") == \
        f"Tenant {FAILS}"
    history = browser.evaluate(
        "[...document.querySelectorAll('#tenant-body table.history tr[data-unit]')].map("
        "r => [...r.cells].map(c => c.innerText))")
    assert [(row[1], row[2]) for row in history] == [
        ("add-tier-field", "ROLLED_BACK"), ("enable-checkout", "ROLLED_BACK (failed in this run)")]
    assert all("rollout" in row[3] and REASON in row[3] for row in history)
    assert all(row[4].startswith("e2e-user") for row in history)
    body = browser.evaluate("document.getElementById('tenant-body').innerText")
    assert "intact" in body
    assert f"flag service refused {FAILS}" in body
    assert "t0ps3cret" not in body
    assert "***" in body
    assert browser.evaluate("location.hash") == f"#tenant={FAILS}"
    assert browser.errors() == []
    assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), \
        "nothing spills past the window's width"
    _save(browser, "dashboard-finished.png")

    for process in (dashboard, projector):
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
        assert process.returncode == 0, (out, err)
    assert "stopped" in out + err or projector.returncode == 0
    print(f"the dashboard test took {time.monotonic() - began:.1f} s")


def test_the_dashboard_needs_a_token_beyond_loopback(shop: Project) -> None:
    refused = shop.cli("dashboard", "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 2
    assert "--token" in refused.stderr
    assert "FLAMINGOCK_DASHBOARD_TOKEN" in refused.stderr
    helped = shop.cli("dashboard", "--help")
    assert helped.returncode == 0
    text = " ".join(helped.stdout.split())
    assert "never the log" in text
    assert "binds to 127.0.0.1 unless --host" in text
    assert "--port PORT the port (default 8765; 0: a free one, printed)" in text
