"""The compiled reader decodes exactly what fastavro decodes, and refuses at least as much."""

from __future__ import annotations

import hashlib
import logging
import random
import sys
import types
from pathlib import Path

import pytest

from flamingock_es.core._speedups import avro_reader
from flamingock_es.core._speedups.compiled import current_source, is_current
from flamingock_es.core.codec import AuditCodec, compiled_reader
from flamingock_es.core.events import RunFinished, RunOutcome
from flamingock_es.core.state import fold
from flamingock_es.errors import DecodeError

from .fakes import event
from .test_codec import PAYLOADS

READER, FASTAVRO = AuditCodec(reader=True), AuditCodec(reader=False)
SOURCE = current_source(avro_reader)  # the compiled module, unless it is stale


def records() -> list[bytes]:
    """Every payload sample, chained, the last one signed."""
    out, prev = [], bytes(32)
    for seq, payload in enumerate(PAYLOADS):
        sign = (lambda message: hashlib.sha512(message).digest()) \
            if seq == len(PAYLOADS) - 1 else None
        sealed, data = FASTAVRO.seal(event(payload, seq=seq, prev_hash=prev,
                                           key_id="k1" if sign else None), sign)
        prev = sealed.hash
        out.append(data)
    return out


def test_both_decoders_give_the_same_events_and_the_same_fold() -> None:
    stored = list(enumerate(records()))

    ours, theirs = list(READER.decode_all(stored)), list(FASTAVRO.decode_all(stored))

    assert ours == theirs
    assert all(r.intact for r in ours)
    assert ours[-1].event.signature is not None
    assert fold(ours) == fold(theirs)


def outcome(codec: AuditCodec, data: bytes) -> tuple[object, ...]:
    try:
        recorded = codec.decode(data, 0)
    except DecodeError:
        return ("refused",)
    return ("read", recorded.event, recorded.intact)


def test_damaged_records_are_refused_wherever_fastavro_refuses_them() -> None:
    """Flipped, cut, inserted and deleted bytes, a few thousand times (seeded). The reader
    decodes a damaged record exactly as fastavro does, or refuses it where fastavro reads a
    negative union or enum index the way Python indexes a list (from the end): a record that
    fastavro could only read as altered (its hash no longer holds, or the damage is in the
    signature after the hash, which the hash does not cover)."""
    rng = random.Random(20261128)
    samples = records()
    stricter = 0
    for _ in range(4000):
        data = bytearray(rng.choice(samples))
        at = rng.randrange(10, len(data))
        in_signature = at >= len(data) - 65  # the signature union and its 64 bytes
        match rng.randrange(4):
            case 0:
                data[at] = rng.randrange(256)
            case 1:
                del data[at:]
            case 2:
                data[at:at] = rng.randbytes(rng.randint(1, 4))
            case _:
                del data[at:at + rng.randint(1, 4)]
        ours, theirs = outcome(READER, bytes(data)), outcome(FASTAVRO, bytes(data))
        if ours != theirs:
            assert ours == ("refused",)
            assert theirs[:1] == ("read",)
            assert theirs[2] is False or in_signature
            stricter += 1
    assert stricter < 40


@pytest.mark.parametrize(("schema", "data", "fastavro_reads"), [
    (["null", "string"], b"\x03", None),  # branch -2: fastavro takes it from the end
    ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, b"\x03", "A"),  # index -2
    ("long", b"\xff" * 10 + b"\x01", -(2**63)),  # 11 bytes: no Avro long is that long
    ("long", b"\xff" * 9 + b"\x7f", -(2**63)),  # 10 bytes, but beyond 64 bits
])
def test_what_only_the_reader_refuses(schema: object, data: bytes,
                                      fastavro_reads: object) -> None:
    import io

    import fastavro

    tree = SOURCE.compile_schema(fastavro.parse_schema(schema), lambda n, f: tuple,
                                 lambda name, symbol: symbol)
    with pytest.raises(ValueError, match=r"out of range|longer than 10 bytes|beyond 64 bits"):
        SOURCE.read(tree, data, 0)
    assert fastavro.schemaless_reader(io.BytesIO(data), schema, None) == fastavro_reads


def test_unsupported_types_are_refused_when_the_tree_is_built() -> None:
    def record(name: str, fields: list[str]) -> object:
        return tuple

    with pytest.raises(ValueError, match="'map'"):
        SOURCE.compile_schema({"type": "map", "values": "string"}, record, str)
    with pytest.raises(ValueError, match="take no bytes"):
        SOURCE.compile_schema({"type": "array", "items": "null"}, record, str)


# Which path runs ----------------------------------------------------------------------------


def fake_extension(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
                   built_from: str) -> types.ModuleType:
    """A module that looks like a compiled extension beside its source, and a build record
    (in place of the real one, for the test only) that says what it was built from."""
    name = f"flamingock_es.fake_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name.rpartition('.')[2]}.py").write_text(source)
    module = types.ModuleType(name)
    module.__file__ = str(tmp_path / f"{name.rpartition('.')[2]}.cpython-311-x86_64-linux-gnu.so")
    record = types.ModuleType("flamingock_es.core._speedups._compiled")
    record.SOURCES = {name: hashlib.sha256(built_from.encode()).hexdigest()}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "flamingock_es.core._speedups._compiled", record)
    return module


def test_an_extension_built_from_its_source_is_used(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    module = fake_extension(tmp_path, monkeypatch, "X = 1\n", "X = 1\n")
    assert is_current(module)
    assert current_source(module) is module


def test_a_stale_extension_gives_way_to_its_source_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    module = fake_extension(tmp_path, monkeypatch, "X = 2\n", "X = 1\n")
    with caplog.at_level(logging.WARNING):
        assert not is_current(module)
    assert "was not built from" in caplog.text
    assert "pip install -e ." in caplog.text
    assert current_source(module).X == 2


def test_the_pure_python_path_can_be_asked_for(tmp_path: Path) -> None:
    from flamingock_es.definition.settings import resolve_settings
    from flamingock_es.namespace import open_namespace

    settings = resolve_settings(read_file=False, bus=f"local:{tmp_path}",
                                env={"FLAMINGOCK_PURE_PYTHON": "1"})
    assert settings.pure_python
    with open_namespace(settings) as backend:
        assert backend.reader.codec._tree is None
    assert AuditCodec(reader=False)._tree is None
    assert compiled_reader() is avro_reader.COMPILED


def test_a_python_module_is_never_taken_for_an_extension() -> None:
    compiled = not avro_reader.__file__.endswith(".py")
    assert compiled is avro_reader.COMPILED
    assert not is_current(sys.modules[__name__])
    assert current_source(sys.modules[__name__]) is sys.modules[__name__]


def test_a_run_finished_reads_its_tuples_and_enum() -> None:
    payload = RunFinished(outcome=RunOutcome.FAILED, applied=("a",), not_started=("b", "c"))
    _, data = FASTAVRO.seal(event(payload))
    decoded = READER.decode(data).event.payload
    assert decoded == payload
    assert isinstance(decoded, RunFinished)
    assert decoded.outcome is RunOutcome.FAILED
    assert type(decoded.applied) is tuple
