"""The public API is pinned: a name added or removed here is a deliberate, reviewed change."""

from __future__ import annotations

import flamingock_es

PUBLIC = [
    "ChangeContext",
    "ChangeUnit",
    "ChecksumDriftError",
    "ConfigError",
    "FlamingockError",
    "LockLostError",
    "LockTimeoutError",
    "ManualInterventionRequired",
    "Progress",
    "Recovery",
    "RunInterrupted",
    "RunResult",
    "Settings",
    "Stage",
    "State",
    "UnitFailedError",
    "UnitStatus",
    "Workflow",
    "__version__",
    "change_unit",
    "fold",
    "history",
    "load_workflow",
    "mark",
    "open_workflow",
    "plan",
    "read_state",
    "replay",
    "resolve_settings",
    "run",
    "status",
    "undo",
    "verify",
    "wait",
]


def test_all_is_pinned_and_sorted() -> None:
    assert sorted(flamingock_es.__all__) == PUBLIC
    assert flamingock_es.__all__ == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in flamingock_es.__all__:
        assert getattr(flamingock_es, name) is not None, name


def test_star_import_gives_exactly_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from flamingock_es import *", namespace)
    assert sorted(set(namespace) - {"__builtins__"}) == PUBLIC


def test_errors_carry_their_cli_exit_codes() -> None:
    codes = {name: getattr(flamingock_es, name).exit_code for name in PUBLIC
             if name.endswith(("Error", "Required"))}
    assert codes == {"ChecksumDriftError": 6, "ConfigError": 2, "FlamingockError": 1,
                     "LockLostError": 3, "LockTimeoutError": 3,
                     "ManualInterventionRequired": 7, "UnitFailedError": 8}


def test_the_version_is_the_package_metadata() -> None:
    from importlib.metadata import version

    assert flamingock_es.__version__ == version("flamingock-es")
