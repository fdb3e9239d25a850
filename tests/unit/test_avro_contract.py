"""The published Avro contract (docs/avro.md): canonical forms and CRC-64-AVRO fingerprints
in schemas/ match the schemas, by the spec's rules and Apache Avro's own CRC, not fastavro."""

from __future__ import annotations

import json
from typing import Any

import avro.schema
import pytest

from flamingock_es.core.codec import fingerprint, load_schema

from ..avro_reader import NAMES, SCHEMAS, canonical_form, crc64_avro

PUBLISHED = json.loads((SCHEMAS / "fingerprints.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_the_published_canonical_form_is_the_specs(name: str) -> None:
    schema = json.loads((SCHEMAS / f"{name}.avsc").read_text())
    published = (SCHEMAS / f"{name}.canonical.json").read_bytes()

    assert published == canonical_form(schema).encode()
    assert PUBLISHED[name]["canonical_form"] == f"{name}.canonical.json"
    assert PUBLISHED[name]["schema"] == f"{name}.avsc"


@pytest.mark.parametrize("name", NAMES)
def test_the_published_fingerprints_are_avros_crc_of_that_form(name: str) -> None:
    canonical = (SCHEMAS / f"{name}.canonical.json").read_text()
    crc = crc64_avro(canonical)
    entry = PUBLISHED[name]

    assert entry["crc64_avro"] == f"0x{int.from_bytes(crc, 'little'):016x}"
    assert entry["single_object_header"] == "c301" + crc.hex()
    assert entry["java_long"] == int.from_bytes(crc, "little", signed=True)
    assert fingerprint(load_schema(name)).hex() == entry["single_object_header"]  # the codec


def test_every_schema_is_published() -> None:
    written = sorted(path.name.removesuffix(".avsc") for path in SCHEMAS.glob("*.avsc"))
    assert written == sorted(NAMES) == sorted(PUBLISHED)


@pytest.mark.parametrize("name", NAMES)
def test_avros_python_canonical_form_differs_only_by_its_known_mistakes(name: str) -> None:
    """avro 1.12 (Python) writes a timestamp-micros long as {"type":"long"} against
    [PRIMITIVES], and repeats a named type's definition where Java writes its name, so its
    Schema.fingerprint() differs from Java's; docs/avro.md warns about such libraries."""
    theirs = avro.schema.parse((SCHEMAS / f"{name}.avsc").read_text()).canonical_form
    repaired = json.dumps(_defined_once(json.loads(theirs), set()), separators=(",", ":"))
    assert repaired == (SCHEMAS / f"{name}.canonical.json").read_text()


def _defined_once(schema: Any, seen: set[str]) -> Any:
    if isinstance(schema, list):
        return [_defined_once(branch, seen) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    if set(schema) == {"type"} and isinstance(schema["type"], str):
        return schema["type"]  # [PRIMITIVES]
    if "name" in schema and schema["type"] in ("record", "enum", "fixed"):
        if schema["name"] in seen:
            return schema["name"]
        seen.add(schema["name"])
    return {key: (_defined_once(value, seen) if key in ("type", "items", "values") else
                  [{**f, "type": _defined_once(f["type"], seen)} for f in value]
                  if key == "fields" else value)
            for key, value in schema.items()}
