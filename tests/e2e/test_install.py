"""The core installs and runs alone: no Kafka, Couchbase or OpenTelemetry SDK packages.

A real, fresh virtual environment with ``pip install .`` (downloads come from pip's cache
after the first time), then the commands a newcomer types.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("core") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", str(REPO)], check=True, timeout=600)
    return venv / "bin"


def _run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHON"))}
    return subprocess.run([str(bin_dir / "flamingock-es"), *args], cwd=cwd, env=env,
                          text=True, capture_output=True, timeout=120, check=False)


def test_the_core_has_no_optional_dependency(core: Path) -> None:
    found = subprocess.run([str(core / "python"), "-c", (
        "import importlib.util as u; print([m for m in ('confluent_kafka', 'couchbase', "
        "'opentelemetry.sdk', 'tenacity', 'starlette', 'uvicorn') if u.find_spec(m)])")],
        text=True, capture_output=True, check=True).stdout.strip()
    assert found == "[]"


def test_init_and_run_on_the_embedded_default(core: Path, tmp_path: Path) -> None:
    assert _run(core, tmp_path, "init", "demo").returncode == 0
    project = tmp_path / "demo"
    first = _run(core, project, "run")
    assert first.returncode == 0, first.stderr
    assert "SUCCEEDED; applied 2" in first.stderr
    assert "nothing to apply" in _run(core, project, "run").stderr
    assert _run(core, project, "verify").stdout.rstrip().endswith("chain intact")


@pytest.mark.parametrize(("args", "extra"), [
    (("run", "--bus", "kafka://127.0.0.1:9"), "flamingock-es[kafka]"),
    (("state", "--store", "couchbase://127.0.0.1?bucket=b"), "flamingock-es[couchbase]"),
    (("dashboard", "--port", "0"), "flamingock-es[dashboard]"),
])
def test_a_missing_extra_is_named(core: Path, tmp_path: Path, args: tuple[str, ...],
                                  extra: str) -> None:
    _run(core, tmp_path, "init", "demo")
    result = _run(core, tmp_path / "demo", *args)
    assert result.returncode == 2, result.stderr
    assert f"pip install '{extra}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_wheel_builds_without_a_c_compiler_and_holds_the_mapped_folders(
        tmp_path: Path) -> None:
    """``pip wheel .`` with no compiler at hand (``CC`` is a command that fails): pure
    Python, with the read side and the Avro contract mapped in from their top-level folders,
    and no link anywhere."""
    import zipfile

    env = {**os.environ, "CC": "false", "CXX": "false"}
    env.pop("FLAMINGOCK_COMPILE", None)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "-w", str(tmp_path), str(REPO)],
                   check=True, timeout=600, env=env)
    (wheel,) = tmp_path.glob("flamingock_es-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"flamingock_es/projections/worker.py", "flamingock_es/projections/stores/sqlite.py",
            "flamingock_es/schemas/AuditEvent.avsc", "flamingock_es/schemas/ChangeRequest.avsc",
            "flamingock_es/core/codec.py", "flamingock_es/py.typed",
            "flamingock_es/dashboard/dashboard.js"} <= names
    assert not [name for name in names if name.endswith(".so")]
    assert not [name for name in names if name.startswith(("projections/", "schemas/"))]


def test_the_installed_package_reads_its_contract_and_read_side(core: Path,
                                                               tmp_path: Path) -> None:
    found = subprocess.run([str(core / "python"), "-c", (
        "import flamingock_es.projections.worker as w, flamingock_es.core.codec as c; "
        "print(w.__file__.endswith('flamingock_es/projections/worker.py'), "
        "'site-packages' in w.__file__, len(c.writer_schemas('AuditEvent')))")],
        cwd=tmp_path, text=True, capture_output=True, check=True).stdout.split()
    versions = len(list((REPO / "schemas").glob("AuditEvent*.avsc")))  # each writer's schema
    assert found == ["True", "True", str(versions)]
