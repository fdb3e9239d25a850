"""A second Avro implementation for the contract tests: Apache Avro's own Python package
(``avro``), and the spec's Parsing Canonical Form written out here from the spec's rules,
independently of fastavro (which the project's codec uses).

https://avro.apache.org/docs/1.11.1/specification/#parsing-canonical-form-for-schemas
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import avro.io
import avro.schema

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
NAMES = ("AuditEvent", "AuditEvent.v3", "AuditEvent.v2", "AuditEvent.v1", "ChangeRequest",
         "ChangeRequest.v1")
MAGIC = b"\xc3\x01"

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes",
                         "string"})


def canonical_form(schema: Any) -> str:
    """The Parsing Canonical Form of a parsed JSON schema, by the spec's rules: [PRIMITIVES]
    (a primitive, logical types included, becomes its name), [FULLNAMES], [STRIP] (only
    type, name, fields, symbols, items, values, size), [ORDER] (in that order), [STRINGS],
    [INTEGERS] and [WHITESPACE] (compact JSON, no escapes)."""
    return json.dumps(_normal(schema, ""), separators=(",", ":"), ensure_ascii=False)


def _fullname(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _normal(schema: Any, namespace: str) -> Any:
    if isinstance(schema, str):
        return schema if schema in _PRIMITIVES else _fullname(schema, namespace)
    if isinstance(schema, list):
        return [_normal(branch, namespace) for branch in schema]
    kind = schema["type"]
    if not isinstance(kind, str):
        return _normal(kind, namespace)
    if kind in _PRIMITIVES:
        return kind  # drops logicalType and every other attribute
    if kind in ("record", "error", "enum", "fixed"):
        name = _fullname(schema["name"], schema.get("namespace", namespace))
        inner = name.rpartition(".")[0]
        out: dict[str, Any] = {"name": name, "type": kind}
        if kind in ("record", "error"):
            out["fields"] = [{"name": f["name"], "type": _normal(f["type"], inner)}
                             for f in schema["fields"]]
        elif kind == "enum":
            out["symbols"] = list(schema["symbols"])
        else:
            out["size"] = int(schema["size"])
        return out
    if kind == "array":
        return {"type": "array", "items": _normal(schema["items"], namespace)}
    if kind == "map":
        return {"type": "map", "values": _normal(schema["values"], namespace)}
    return _fullname(kind, namespace)  # a reference written as {"type": "Name"}


def crc64_avro(canonical: str) -> bytes:
    """Apache Avro's own CRC-64-AVRO of a canonical form, little-endian, as a single-object
    header carries it. (Its ``Schema.fingerprint`` would first compute avro's canonical form,
    which mishandles logical types: see docs/avro.md.)"""
    return avro.schema._crc_64_fingerprint(canonical.encode())  # type: ignore[attr-defined]


def writer_schemas() -> dict[bytes, tuple[str, avro.schema.Schema]]:
    """Every published writer schema by its single-object header."""
    out = {}
    for name in NAMES:
        text = (SCHEMAS / f"{name}.avsc").read_text()
        header = MAGIC + crc64_avro(canonical_form(json.loads(text)))
        out[header] = (name, avro.schema.parse(text))
    return out


def decode(record: bytes, writers: dict[bytes, tuple[str, avro.schema.Schema]]
           ) -> tuple[str, dict[str, Any]]:
    """A single-object-encoded record decoded with avro's DatumReader and BinaryDecoder: the
    writer schema's name and the datum. Every byte of the body must be read."""
    header, body = record[:10], record[10:]
    if header not in writers:
        raise AssertionError(f"unknown writer schema header {header.hex()}")
    name, schema = writers[header]
    stream = io.BytesIO(body)
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(stream))
    assert stream.tell() == len(body), f"{name}: {len(body) - stream.tell()} byte(s) left"
    return name, datum
