"""The published JSON Schemas are the models that check the files, as committed."""

from __future__ import annotations

import json
from pathlib import Path

from flamingock_es.definition.models import SCHEMA_FILES, schema_texts

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_the_committed_schemas_are_the_models_current_ones() -> None:
    stale = [name for name, text in schema_texts().items()
             if not (SCHEMAS / name).exists() or (SCHEMAS / name).read_text() != text]
    assert stale == [], f"run scripts/schemas: {', '.join(stale)} no longer match the models"


def test_the_schemas_forbid_unknown_keys_and_name_the_required_ones() -> None:
    workflow = json.loads((SCHEMAS / SCHEMA_FILES[0]).read_text())
    unit = json.loads((SCHEMAS / SCHEMA_FILES[1]).read_text())
    assert workflow["additionalProperties"] is False
    assert workflow["required"] == ["namespace"]
    assert workflow["properties"]["lock_timeout"]["type"] == "number"
    one = unit["$defs"]["UnitFile"]
    assert one["additionalProperties"] is False
    assert set(one["required"]) == {"id", "order", "author", "template", "apply"}
    assert one["properties"]["accept_drift"]["type"] == "boolean"
    assert {"$ref": "#/$defs/UnitFile"} in unit["anyOf"]  # a unit, or a list of them
