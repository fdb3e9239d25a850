"""The public API is pinned: a name added or removed here is a deliberate, reviewed change."""

from __future__ import annotations

import flamingock_es

PUBLIC = [
    "ChangeContext",
    "ChangeUnit",
    "ChecksumDriftError",
    "ConfigError",
    "DecisionRequired",
    "FlamingockError",
    "HistoryError",
    "LockError",
    "LockLostError",
    "LockTimeoutError",
    "ManualInterventionRequired",
    "Progress",
    "Recovery",
    "RunFailed",
    "RunInterrupted",
    "RunResult",
    "Settings",
    "Stage",
    "State",
    "Transient",
    "UnitFailedError",
    "UnitStatus",
    "Workflow",
    "__version__",
    "change_unit",
    "fold",
    "history",
    "load_workflow",
    "mark",
    "open_projection",
    "open_workflow",
    "plan",
    "project",
    "quarantine",
    "read_state",
    "replay",
    "request_changes",
    "resolve_settings",
    "retryable",
    "rollout",
    "rollouts",
    "run",
    "serve",
    "status",
    "undo",
    "verify",
    "vouch",
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


def test_errors_map_to_their_cli_exit_codes() -> None:
    from flamingock_es.cli.status_codes import exit_code

    codes = {name: exit_code(getattr(flamingock_es, name)) for name in PUBLIC
             if name.endswith(("Error", "Required"))}
    assert codes == {"ChecksumDriftError": 6, "ConfigError": 2, "DecisionRequired": 7,
                     "FlamingockError": 1,
                     "HistoryError": 4, "LockError": 3, "LockLostError": 3,
                     "LockTimeoutError": 3, "ManualInterventionRequired": 7,
                     "UnitFailedError": 8}


def test_the_library_carries_no_exit_codes() -> None:
    assert not any(hasattr(getattr(flamingock_es, name), "exit_code") for name in PUBLIC)


def test_retrying_is_decided_by_the_error_type() -> None:
    from flamingock_es.errors import AppendError, StoreError

    assert flamingock_es.retryable(flamingock_es.LockTimeoutError("held"))
    assert flamingock_es.retryable(AppendError("not confirmed"))
    assert flamingock_es.retryable(StoreError("down"))
    assert not flamingock_es.retryable(flamingock_es.ConfigError("typo"))
    assert not flamingock_es.retryable(flamingock_es.ManualInterventionRequired("decide"))


def test_the_version_is_the_package_metadata() -> None:
    from importlib.metadata import version

    assert flamingock_es.__version__ == version("flamingock-es")
