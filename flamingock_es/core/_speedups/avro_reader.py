"""A schema-driven Avro binary reader that builds typed objects directly, made to be compiled.

fastavro reads a record into dicts through a file object, one Python-level ``read()`` per
field, and the codec then turns those dicts into events: most of a replay's time. This
reader walks a tree of :class:`Node` compiled once from the writer schema, over a ``bytes``
object and an index, and makes each record's object as its :class:`Construction` says; arrays
come back as tuples and enums as the members the codec names. Compiled with
mypyc (``setup.py``) it decodes an audit event several times faster than fastavro; run as
plain Python it is slower than fastavro, so :mod:`flamingock_es.core.codec` uses it only when it
is compiled (:data:`COMPILED`).

It reads only what the writer wrote, by the writer schema: no schema resolution (older writer
schemas go through fastavro). Anything that does not decode exactly (a truncated body, a
union branch or enum index out of range, a negative length, invalid UTF-8, an overlong
varint, a time out of range) raises :class:`ValueError`, :class:`IndexError` or
:class:`OverflowError`; the caller names the record.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = ["COMPILED", "Construction", "Enum", "Node", "Record", "compile_schema", "read"]

COMPILED: Final = not __file__.endswith(".py")
"""True when this module is the mypyc-compiled extension, not its source."""

# Node kinds: small ints, so that the reader's dispatch is a chain of integer compares.
NULL: Final = 0
BOOLEAN: Final = 1
INT: Final = 2  # Avro int and long: both are zigzag varints
FLOAT: Final = 3
DOUBLE: Final = 4
BYTES: Final = 5
STRING: Final = 6
FIXED: Final = 7
ENUM: Final = 8
ARRAY: Final = 9
UNION: Final = 10
RECORD: Final = 11
TIMESTAMP_MICROS: Final = 12

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DOUBLE: Final = struct.Struct("<d")
_FLOAT: Final = struct.Struct("<f")
_PRIMITIVES: Final = {"null": NULL, "boolean": BOOLEAN, "int": INT, "long": INT,
                      "float": FLOAT, "double": DOUBLE, "bytes": BYTES, "string": STRING}


class Construction:
    """How a record's object is made: created bare (``cls.__new__``), then one setter per
    schema field, in schema order, then the setters of the fields the schema does not have,
    with their defaults (setters: a slot's ``__set__``, say)."""

    cls: type
    setters: list[Callable[[Any, Any], Any]]
    defaults: list[tuple[Callable[[Any, Any], Any], Any]]
    shared: bool
    """Records with the same bytes may be one object: for an immutable record that comes
    back in every event (the actor of a run)."""

    def __init__(self, cls: type, setters: list[Callable[[Any, Any], Any]],
                 defaults: list[tuple[Callable[[Any, Any], Any], Any]],
                 shared: bool = False) -> None:
        self.cls = cls
        self.setters = setters
        self.defaults = defaults
        self.shared = shared


class Node:
    """One schema node: its kind and what reading it needs."""

    kind: int
    size: int
    """A fixed's size."""
    children: list[Node]
    """A record's fields, a union's branches, an array's item (one)."""
    make: Construction | None
    """A record's construction."""
    made: dict[bytes, Any] | None
    """A shared record's objects, by their bytes."""
    symbols: list[Any]
    """An enum's members, by index."""

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.size = 0
        self.children = []
        self.make = None
        self.made = None
        self.symbols = []


Record = Callable[[str, list[str]], Construction]
"""Given a record's full name and its field names in schema order, how to make it."""
Enum = Callable[[str, str], Any]
"""Given an enum's full name and one of its symbols, the value to read it as."""


def compile_schema(schema: Any, record: Record, enum: Enum) -> Node:
    """The node tree of a parsed writer schema (fastavro's ``parse_schema``: full names).

    Raises :class:`ValueError` on a type this reader does not know (a map, a logical type
    other than ``timestamp-micros``), :class:`KeyError` or :class:`TypeError` where ``record``
    or ``enum`` does: the caller then keeps fastavro for that schema.
    """
    return _compile(schema, record, enum, {})


def _compile(schema: Any, record: Record, enum: Enum, named: dict[str, Node]) -> Node:
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return Node(_PRIMITIVES[schema])
        if schema in named:
            return named[schema]
        raise ValueError(f"unknown named type {schema!r}")
    if isinstance(schema, list):
        union = Node(UNION)
        union.children = [_compile(branch, record, enum, named) for branch in schema]
        return union
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical is not None:
        if logical == "timestamp-micros" and kind == "long":
            return Node(TIMESTAMP_MICROS)
        raise ValueError(f"logical type {logical!r} is not supported")
    if kind == "record":
        name = schema["name"]
        node = named[name] = Node(RECORD)  # before the fields: they may refer to it
        node.make = make = record(name, [f["name"] for f in schema["fields"]])
        if len(make.setters) != len(schema["fields"]):
            raise ValueError(f"{name}: {len(make.setters)} setters for "
                             f"{len(schema['fields'])} fields")
        node.made = {} if make.shared else None
        node.children = [_compile(f["type"], record, enum, named) for f in schema["fields"]]
        return node
    if kind == "enum":
        node = named[schema["name"]] = Node(ENUM)
        node.symbols = [enum(schema["name"], symbol) for symbol in schema["symbols"]]
        return node
    if kind == "fixed":
        node = named[schema["name"]] = Node(FIXED)
        node.size = int(schema["size"])
        return node
    if kind == "array":
        node = Node(ARRAY)
        item = _compile(schema["items"], record, enum, named)
        if item.kind == NULL or (item.kind in (FIXED, RECORD) and not (item.size or item.children)):
            raise ValueError("an array of items that may take no bytes is not supported")
        node.children = [item]
        return node
    if kind in _PRIMITIVES:
        return Node(_PRIMITIVES[kind])
    raise ValueError(f"Avro type {kind!r} is not supported")


def read(node: Node, data: bytes, start: int) -> tuple[Any, int]:
    """The value that ``node`` reads from ``data`` at ``start``, and where it ended."""
    cursor = _Cursor(data, start)
    value = cursor.value(node)
    return value, cursor.pos


class _Cursor:
    data: bytes
    pos: int
    end: int

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data)

    def value(self, node: Node) -> Any:
        kind = node.kind
        if kind == STRING:
            return self.take(self.length()).decode("utf-8")
        if kind == INT:
            return self.long()
        if kind == UNION:
            branch = self.long()
            if branch < 0 or branch >= len(node.children):
                raise ValueError(f"union branch {branch} out of range")
            return self.value(node.children[branch])
        if kind == RECORD:
            return self.record(node)
        if kind == NULL:
            return None
        if kind == FIXED:
            return self.take(node.size)
        if kind == TIMESTAMP_MICROS:
            return _EPOCH + timedelta(microseconds=self.long())
        if kind == DOUBLE:
            return _DOUBLE.unpack(self.take(8))[0]
        if kind == BOOLEAN:
            return self.take(1)[0] != 0
        if kind == ENUM:
            index = self.long()
            if index < 0 or index >= len(node.symbols):
                raise ValueError(f"enum index {index} out of range")
            return node.symbols[index]
        if kind == ARRAY:
            return tuple(self.items(node.children[0]))
        if kind == BYTES:
            return self.take(self.length())
        if kind == FLOAT:
            return _FLOAT.unpack(self.take(4))[0]
        raise ValueError(f"unknown node kind {kind}")

    def record(self, node: Node) -> Any:
        make = node.make
        assert make is not None
        start = self.pos
        values = [self.value(child) for child in node.children]
        made = node.made
        if made is not None:
            raw = self.data[start:self.pos]
            found = made.get(raw)
            if found is not None:
                return found
        obj: Any = object.__new__(make.cls)
        setters = make.setters
        for i in range(len(setters)):
            setters[i](obj, values[i])
        for setter, default in make.defaults:
            setter(obj, default)
        if made is not None:
            if len(made) >= 1024:  # a few actors a log, in practice; never without bound
                made.clear()
            made[self.data[start:self.pos]] = obj
        return obj

    def items(self, item: Node) -> list[Any]:
        out: list[Any] = []
        while True:
            count = self.long()
            if count == 0:
                return out
            if count < 0:  # a block that also gives its size in bytes: not needed here
                count = -count
                self.long()
            if count > self.end - self.pos:  # every item takes a byte at least (_compile)
                raise ValueError(f"an array block of {count} items in fewer bytes")
            for _ in range(count):
                out.append(self.value(item))

    def long(self) -> int:
        data, pos = self.data, self.pos
        byte = data[pos]
        pos += 1
        n = byte & 0x7F
        shift = 7
        while byte & 0x80:
            if shift > 63:
                raise ValueError("a varint longer than 10 bytes")
            byte = data[pos]
            pos += 1
            n |= (byte & 0x7F) << shift
            shift += 7
        if n >> 64:
            raise ValueError("a varint beyond 64 bits")
        self.pos = pos
        return (n >> 1) ^ -(n & 1)

    def length(self) -> int:
        n = self.long()
        if n < 0:
            raise ValueError(f"negative length {n}")
        return n

    def take(self, n: int) -> bytes:
        start = self.pos
        stop = start + n
        if stop > self.end:
            raise ValueError(f"{stop - self.end} byte(s) past the end")
        self.pos = stop
        return self.data[start:stop]
