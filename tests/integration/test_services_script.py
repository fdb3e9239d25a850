"""``scripts/services`` never loses a process it started.

Each test uses a private services dir and its own ports, so the suite's services are not
touched; the builds and jars come from the cache that ``scripts/services up`` filled.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services"


def _services(state: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SERVICES), *args], cwd=REPO, text=True, capture_output=True,
                          timeout=180, check=False,
                          env={**os.environ, "FLAMINGOCK_SERVICES_DIR": str(state), **env})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _processes_under(state: Path) -> list[str]:
    """Command lines of live processes that mention ``state`` (our services' paths)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(state) in cmdline and proc.name != str(os.getpid()):
            found.append(cmdline)
    return found


def test_a_started_process_is_recorded_and_stopped(tmp_path: Path) -> None:
    started = _services(tmp_path, "start", "gocaves")
    assert started.returncode == 0, started.stderr
    pid, start_time = (tmp_path / "gocaves" / "pid").read_text().split()
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert stat[19] == start_time  # pid and start time name the process
    stopped = _services(tmp_path, "stop", "gocaves")
    assert stopped.returncode == 0, stopped.stderr
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert not (tmp_path / "gocaves" / "pid").exists()


def test_a_start_that_times_out_stops_what_it_started(tmp_path: Path) -> None:
    failed = _services(tmp_path, "start", "kafka", FLAMINGOCK_SERVICES_TIMEOUT="1",
                       FLAMINGOCK_KAFKA_PORT=str(_free_port()),
                       FLAMINGOCK_KAFKA_CONTROLLER_PORT=str(_free_port()))
    assert failed.returncode != 0
    assert "did not answer within 1s; stopped what was started" in failed.stderr, failed.stderr
    assert _processes_under(tmp_path) == []  # no orphan for a later 'up' to duplicate
    assert not (tmp_path / "kafka" / "node-1" / "pid").exists()
    assert _services(tmp_path, "down").returncode == 0
