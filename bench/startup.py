"""Start-up with nothing to do, and the fold against bare decoding, side by side.

Prints a table of figures and PASS/MISS against each goal:

S1. No-op start-up, 10,000 applied units, one ``@change_unit`` per Python file: the whole
    process ``flamingock-es run`` on the embedded local bus, against ``alembic upgrade
    head`` with 10,000 applied revisions (one file each, a linear chain, SQLite), measured
    the same way in the same run. Goal: < 0.8 s.
S2. The same 10,000 units, 100 to a file. Goal: < 0.6 s.
F1. The fold (``decode_all`` + ``fold``: each event's hash, the chain, seq, signatures
    collected, unreadable records noted) against a bare ``fastavro.schemaless_reader`` loop
    over the same records of a local log (100,000 events), CPU time. Goal: >= 0.9.
F2. The same over a Kafka audit topic (only with ``FLAMINGOCK_KAFKA_BOOTSTRAP`` set; a
    fresh namespace), wall time including the fetch. Goal: >= 0.9.
H.  With ``--history``: 1,000 units applied through 1,000 runs of 500 (~1M events) against
    the same units applied in 1 run, no-op start-up, both projects signed (a runner writes
    and believes only signed snapshots). Goal: <= 1.2x: the fold starts at the snapshot.

S1 and S2 show every variant, interleaved round by round: the default (the compiled reader
and the unit cache), the unit cache off (``FLAMINGOCK_UNIT_CACHE=off``), pure Python
(``FLAMINGOCK_PURE_PYTHON=1``) and, with ``--baseline DIR`` (an export of an earlier commit:
``git archive COMMIT | tar -x -C DIR``), that version: before and after in one run.

    python bench/startup.py                    # about 4 minutes, most of it the one-off applies
    python bench/startup.py --quick            # 1,000 units: a smoke run
    python bench/startup.py --baseline /tmp/base --rounds 7 -v
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _gen
from _measure import (
    Row,
    alembic_cmd,
    environment,
    flamingock_cmd,
    fold_vs_bare,
    interleaved,
    load,
    run_and_report,
    timed_process,
)

CACHE_OFF = {"FLAMINGOCK_UNIT_CACHE": "off"}
PURE = {"FLAMINGOCK_PURE_PYTHON": "1"}


def variants(baseline: Path | None) -> dict[str, dict[str, str]]:
    """The environment of each variant of a start-up figure."""
    out = {"flamingock-es": {}, "  unit cache off": CACHE_OFF, "  pure Python": PURE}
    if baseline is not None:
        out[f"  baseline {baseline.name}"] = {"PYTHONPATH": str(baseline)}
    return out


def check_baseline(baseline: Path) -> None:
    """The baseline's flamingock_es must be the one a process with its PYTHONPATH imports
    (asked outside the repository, as the timed processes run: ``-c`` puts the working
    directory first on the path)."""
    found = subprocess.run(
        [sys.executable, "-c", "import flamingock_es; print(flamingock_es.__file__)"],
        env={**os.environ, "PYTHONPATH": str(baseline)}, capture_output=True, text=True,
        check=True, cwd=tempfile.gettempdir()).stdout.strip()
    if not found.startswith(str(baseline.resolve())):
        raise SystemExit(f"--baseline {baseline}: a process imports {found} instead")


def start_up(work: Path, name: str, units: int, per_file: int, rounds: int,
             baseline: Path | None, alembic: bool, goal: float, verbose: bool) -> list[Row]:
    root = work / name
    config = _gen.flamingock_project(root, units, per_file=per_file)
    started = time.perf_counter()
    timed_process(flamingock_cmd(config), root)  # the one apply: writes the log, the cache
    applied = time.perf_counter() - started
    runs: dict[str, Callable[[], float]] = {}
    for label, env in variants(baseline).items():
        timed_process(flamingock_cmd(config), root, env)  # warm: __pycache__, page cache
        runs[label] = lambda env=env: timed_process(flamingock_cmd(config), root, env)
    if alembic:
        ini, _ = _gen.alembic_project(work / f"{name}-alembic", units)
        timed_process(alembic_cmd(ini), ini.parent)  # the one upgrade: all applied
        runs["alembic"] = lambda: timed_process(alembic_cmd(ini), ini.parent)
    samples = interleaved(rounds, runs)
    if verbose:
        for label, got in samples.items():
            print(f"  {name} {label.strip():<20} " + " ".join(f"{s:.3f}" for s in got.values))
    files = (units + per_file - 1) // per_file
    ours = samples["flamingock-es"]
    other = samples.get("alembic")
    rows = [Row(f"{name}. {units:,} applied units ({files:,} files x {per_file}), no-op "
                "start-up", ours.spread(), other.spread() if other else "-",
                f"{ours.median / other.median:.2f}" if other else "-", f"< {goal} s",
                ours.median < goal)]
    for label, got in samples.items():
        if label not in ("flamingock-es", "alembic"):
            rows.append(Row(f"    {label.strip()}", got.spread(), "-",
                            f"{got.median / ours.median:.2f}x", "-", None))
    rows.append(Row(f"    (the one fresh apply, for reference: {2 * units + 4:,} events)",
                    f"{applied:.1f} s", "-", "-", "-", None))
    return rows


def fold_local(work: Path, events: int, repeats: int) -> list[Row]:
    from flamingock_es.adapters.local import LocalEventLog
    from flamingock_es.core.codec import compiled_reader

    path = work / "fold" / "audit.log"
    path.parent.mkdir(parents=True)
    written = _gen.audit_log(path, events)
    rows = []
    for label, reader in (("F1. fold vs bare fastavro, local log", None),
                          ("    pure Python (fastavro decoder)", False)):
        if reader is False and not compiled_reader():
            continue  # the default is the pure path already
        ours, bare = fold_vs_bare(lambda: LocalEventLog(path).read(), written, repeats,
                                  reader=reader)
        ratio = ours / bare
        rows.append(Row(f"{label}, {written:,} events", f"{ours:,.0f} ev/s",
                        f"{bare:,.0f} ev/s", f"{ratio:.2f}",
                        "ratio >= 0.9" if reader is None else "-",
                        ratio >= 0.9 if reader is None else None))
    return rows


def fold_kafka(events: int, rounds: int) -> list[Row]:
    import statistics

    import kafka_replay

    from flamingock_es.core.codec import compiled_reader

    rates = kafka_replay.measure(events, rounds, pure_too=compiled_reader())
    bare = statistics.median(rates["bare"])
    rows = []
    for key, label in (("ours", "F2. fold vs bare fastavro, Kafka"),
                       ("pure", "    pure Python (fastavro decoder)")):
        if key not in rates:
            continue
        ours = statistics.median(rates[key])
        ratio = ours / bare
        spread = f"{min(rates[key]) / bare:.2f}-{max(rates[key]) / bare:.2f}"
        rows.append(Row(f"{label}, {events:,} events", f"{ours:,.0f} ev/s",
                        f"{bare:,.0f} ev/s", f"{ratio:.2f} ({spread})",
                        "ratio >= 0.9" if key == "ours" else "-",
                        ratio >= 0.9 if key == "ours" else None))
    return rows


def history(work: Path, units: int, runs: int, rounds: int, verbose: bool) -> list[Row]:
    """The no-op start-up after a long history against after one run, same units."""
    from flamingock_es.definition.workflow import load_workflow

    one = work / "history-1"
    config = _gen.signed_project(one, units)  # snapshots are written and believed signed
    timed_process(flamingock_cmd(config), one)
    long = work / "history-long"  # the same units, its own key, a history and no run yet
    workflow = load_workflow(_gen.signed_project(long, units))
    checksums = [(unit.id, unit.checksum) for _, unit in workflow.units()]
    log = long / ".flamingock" / "bench" / "audit.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    written = _gen.history_log(log, checksums, runs, units // 2,
                               signer=_gen.runner_signer(long))
    print(f"  history: {written:,} events written in {time.perf_counter() - started:.0f} s")
    # A runner leaves a snapshot after every run that appended; the last of the 1,000 did.
    took = timed_process([sys.executable, "-m", "flamingock_es.cli", "snapshot", "-q", "-c",
                          str(long / "flamingock.yaml")], long)
    print(f"  history: the last run's snapshot written in {took:.1f} s (a whole fold)")
    samples = interleaved(rounds, {
        "long": lambda: timed_process(flamingock_cmd(long / "flamingock.yaml"), long),
        "one": lambda: timed_process(flamingock_cmd(config), one)})
    if verbose:
        for label, got in samples.items():
            print(f"  history {label:<5} " + " ".join(f"{s:.3f}" for s in got.values))
    ratio = samples["long"].median / samples["one"].median
    return [Row(f"H.  {units:,} units through {runs:,} runs ({written:,} signed events, a "
                "snapshot) vs 1 run",
                samples["long"].spread(), samples["one"].spread(), f"{ratio:.1f}",
                "ratio <= 1.2 (snapshots)", ratio <= 1.2)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, help="samples per variant (default 5)")
    parser.add_argument("--quick", action="store_true", help="1,000 units, 10,000 events")
    parser.add_argument("--units", type=int, help="applied units for S1 and S2 (10,000)")
    parser.add_argument("--events", type=int, help="events for F1 and F2 (100,000)")
    parser.add_argument("--baseline", type=Path, help="also time the flamingock-es in DIR")
    parser.add_argument("--no-alembic", action="store_true", help="skip Alembic in S1")
    parser.add_argument("--history", action="store_true", help="also H. (~1M events)")
    parser.add_argument("--only", action="append", choices=["S1", "S2", "F1", "F2", "H"],
                        help="run only these figures (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every sample")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    units = args.units or (1000 if args.quick else 10_000)
    events = args.events or (10_000 if args.quick else 100_000)
    only = set(args.only or ["S1", "S2", "F1", "F2"] + (["H"] if args.history else []))
    if args.baseline is not None:
        check_baseline(args.baseline)
    kafka = os.environ.get("FLAMINGOCK_KAFKA_BOOTSTRAP")

    print("flamingock-es start-up and fold" + (" (--quick)" if args.quick else ""))
    print(environment())
    print(f"{load()} at the start; every process figure is {rounds} samples a variant, taken "
          "in turn, median (min-max)")
    work = Path(tempfile.mkdtemp(prefix="flamingock-startup-"))
    figures: dict[str, Callable[[], list[Row]]] = {
        "S1": lambda: start_up(work, "S1", units, 1, rounds, args.baseline,
                               not args.no_alembic, 0.8, args.verbose),
        "S2": lambda: start_up(work, "S2", units, 100, rounds, args.baseline, False, 0.6,
                               args.verbose),
        "F1": lambda: fold_local(work, events, rounds),
        "F2": lambda: fold_kafka(events, rounds),
        "H": lambda: history(work, 1000, 1000, rounds, args.verbose),
    }
    if not kafka and "F2" in only:
        print("F2 skipped: set FLAMINGOCK_KAFKA_BOOTSTRAP to a broker")
        only.discard("F2")
    return run_and_report(figures, only, work, args.keep)

if __name__ == "__main__":
    sys.exit(main())
