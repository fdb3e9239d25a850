"""What the benchmark scripts share: timing a whole process, interleaving the variants of a
figure, the fold against a bare fastavro loop, and the table they print.

Kept apart (like ``_gen.py``) so that each script reads as a list of measurements.
"""

from __future__ import annotations

import gc
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# As users run them: bytecode caching on (both tools import their change files).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


@dataclass
class Row:
    name: str
    flamingock: str
    other: str
    ratio: str
    goal: str
    ok: bool | None


@dataclass
class Samples:
    """The samples of one variant of a figure, in seconds."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self) -> str:
        """``median s (min-max, n)``: what the table prints for a process figure."""
        return (f"{self.median:.3f} s ({min(self.values):.2f}-{max(self.values):.2f}, "
                f"n={len(self.values)})")


def timed_process(argv: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> float:
    """Wall time of one whole process; fails loudly if the process fails."""
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env={**ENV, **(env or {})}, capture_output=True,
                          text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def interleaved(rounds: int, variants: Mapping[str, Callable[[], float]]) -> dict[str, Samples]:
    """``rounds`` samples of each variant, taken in turn (A B C, B C A, ...): a neighbour's
    load on a shared machine falls on every variant alike instead of on one of them."""
    names = list(variants)
    out = {name: Samples() for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            out[name].values.append(variants[name]())
    return out


def flamingock_cmd(config: Path, python: str = sys.executable) -> list[str]:
    return [python, "-m", "flamingock_es.cli", "run", "-q", "-c", str(config)]


def alembic_cmd(ini: Path) -> list[str]:
    return [sys.executable, "-m", "alembic", "-c", str(ini), "upgrade", "head"]


def fold_vs_bare(records: Callable[[], Iterable[tuple[int, bytes]]], expected: int,
                 repeats: int, *, reader: bool | None = None) -> tuple[float, float]:
    """Events per second of the fold (``decode_all`` + ``fold``: hash checked per event,
    chain, seq, signatures collected, unreadable records noted) and of a bare fastavro
    ``schemaless_reader`` loop over the same records; best of ``repeats`` CPU times each,
    taken in turn. ``reader``: the codec's decoder (default: as installed)."""
    import fastavro

    from flamingock_es.core.codec import AuditCodec
    from flamingock_es.core.state import fold

    schema = AuditCodec().schema

    def ours() -> int:
        return fold(AuditCodec(reader=reader).decode_all(records())).events

    def bare() -> int:
        n = 0
        read = fastavro.schemaless_reader
        for _, body in records():
            read(io.BytesIO(body[10:]), schema, None)
            n += 1
        return n

    best = {ours: float("inf"), bare: float("inf")}
    for i in range(repeats):
        for fn in (ours, bare) if i % 2 == 0 else (bare, ours):
            gc.collect()
            started = time.process_time()
            count = fn()
            best[fn] = min(best[fn], time.process_time() - started)
            assert count == expected, (count, expected)
    return expected / best[ours], expected / best[bare]


def environment() -> str:
    import fastavro

    from flamingock_es.core.codec import compiled_reader

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        import alembic
        import sqlalchemy

        others = f"alembic {alembic.__version__}, sqlalchemy {sqlalchemy.__version__}, "
    except ImportError:
        others = ""
    reader = "compiled (mypyc)" if compiled_reader() else "pure Python (fastavro)"
    # Units are Python files: without .pyc files every process compiles each one again.
    bytecode = ("off (PYTHONDONTWRITEBYTECODE: every process compiles each unit file)"
                if sys.dont_write_bytecode else "on (.pyc files kept after the first run)")
    return (f"python {platform.python_version()} ({platform.python_implementation()}), "
            f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}\n"
            f"{others}fastavro {fastavro.__version__}; flamingock-es reader: {reader}; "
            f"bytecode cache: {bytecode}")


def load() -> str:
    """The machine's load averages, for the record: figures from a busy machine are slower."""
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def print_table(rows: list[Row]) -> None:
    headers = ("measurement", "flamingock-es", "other", "ratio", "goal", "")
    cells = [(r.name, r.flamingock, r.other, r.ratio, r.goal,
              "" if r.ok is None else ("PASS" if r.ok else "MISS")) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                     for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    print(line)
    print("-" * len(line))
    for c in cells:
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                        for i, (v, w) in enumerate(zip(c, widths, strict=True))))


def summary(rows: list[Row]) -> str:
    goals = [r for r in rows if r.ok is not None]
    missed = [r for r in goals if not r.ok]
    return (f"summary: {len(goals) - len(missed)}/{len(goals)} goals met"
            + (": MISS " + "; ".join(r.name.split(".", 1)[0] for r in missed) if missed else ""))


def run_figures(figures: Mapping[str, Callable[[], list[Row]]], only: set[str]) -> list[Row]:
    """The rows of each figure named in ``only``, in order; one figure's failure (a broker
    away) is a failed row and spares the rest."""
    rows: list[Row] = []
    for name, figure in figures.items():
        if name in only:
            try:
                rows += figure()
            except Exception as exc:
                print(f"{name} failed: {exc!r}")
                rows.append(Row(f"{name}. failed: {type(exc).__name__}: {exc}", "-", "-", "-",
                                "-", False))
    return rows


def finish(rows: list[Row], work: Path, keep: bool, end: str = " at the end") -> int:
    """Remove ``work`` (unless ``keep``), print the table, the load and the summary; 0."""
    if keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(rows)
    print()
    print(f"{load()}{end}")
    print(summary(rows))
    return 0


def run_and_report(figures: Mapping[str, Callable[[], list[Row]]], only: set[str], work: Path,
                   keep: bool) -> int:
    """:func:`run_figures`, then :func:`finish` whatever happened."""
    rows: list[Row] = []
    try:
        rows = run_figures(figures, only)
    finally:
        status = finish(rows, work, keep)
    return status


def paired_ratio(a: Samples, b: Samples) -> float:
    """The median of the per-round ratios ``a[i] / b[i]``: samples that :func:`interleaved`
    took back to back in one round share the machine's load of that moment, so the ratio
    of a pair cancels what drifts between rounds (a neighbour's build starting, a broker's
    log cleaner) better than the ratio of two medians."""
    return statistics.median(x / y for x, y in zip(a.values, b.values, strict=True))
