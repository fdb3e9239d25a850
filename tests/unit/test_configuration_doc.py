"""docs/configuration.md names every key the models of the files have, and every variable
the settings read."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from flamingock_es.definition.models import (
    EnvironmentFile,
    StageFile,
    TenantsFile,
    TrustedKeyFile,
    UnitFile,
    WorkflowFile,
)
from flamingock_es.definition.settings import ENVIRONMENT

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _documented() -> set[str]:
    """The keys the page's tables describe: the backticked first cell of each row."""
    return set(re.findall(r"^\| `([^`]+)` \|", DOC.read_text(), re.MULTILINE))


def test_every_key_of_every_model_is_documented() -> None:
    models: list[type[BaseModel]] = [WorkflowFile, StageFile, EnvironmentFile, TrustedKeyFile,
                                    UnitFile, TenantsFile]
    keys = {field.alias or name for model in models for name, field in
            model.model_fields.items()}
    assert keys - _documented() == set()


def test_every_environment_variable_is_documented() -> None:
    text = DOC.read_text()
    assert [v for v in ENVIRONMENT.values() if f"`{v}`" not in text] == []


def test_the_check_would_see_a_missing_key() -> None:
    assert "lock_timeout" in _documented()
    assert "no_such_key" not in _documented()
