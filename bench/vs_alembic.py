"""flamingock-es against Alembic, and the fold rate against plain fastavro (issue #3, item 11).

Prints a table of figures and PASS/MISS against each goal:

1. N no-op units (one ``@change_unit`` per Python file, embedded local bus) against N no-op
   Alembic revisions (one file each, a linear ``down_revision`` chain, SQLite file), each
   measured as a whole CLI process: (a) a fresh apply, (b) the no-op rerun. Goal: ratio <= 1.
2. The no-op rerun with 10,000 applied units (100 Python files of 100 units). Goal: < 1.5 s.
3. Fold rate: ``fold(AuditCodec().decode_all(LocalEventLog(path).read()))`` against a plain
   loop over the same records with ``fastavro.schemaless_reader``. Goal: ratio >= 0.9.

Everything happens in a temporary directory. Run ``python bench/vs_alembic.py`` (about 70
seconds) or ``python bench/vs_alembic.py --quick`` (a smoke run, well under a minute).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
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
    finish,
    flamingock_cmd,
    fold_vs_bare,
    load,
    timed_process,
)


def median_of(rounds: int, measure: Callable[[], float],
              before: Callable[[], None] | None = None) -> tuple[float, list[float]]:
    samples = []
    for _ in range(rounds):
        if before is not None:
            before()
        samples.append(measure())
    return statistics.median(samples), samples


def remove(path: Path) -> Callable[[], None]:
    def clean() -> None:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return clean


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3f} s"


def bench_vs_alembic(work: Path, units: int, rounds: int, verbose: bool) -> list[Row]:
    flam_dir, alem_dir = work / "flamingock", work / "alembic"
    config = _gen.flamingock_project(flam_dir, units, per_file=1)
    ini, db = _gen.alembic_project(alem_dir, units)
    state_dir = flam_dir / ".flamingock"
    f_cmd, a_cmd = flamingock_cmd(config), alembic_cmd(ini)

    # One untimed apply each: compiles __pycache__ for both and warms the page cache.
    for clean, cmd, cwd in ((remove(state_dir), f_cmd, flam_dir), (remove(db), a_cmd, alem_dir)):
        clean()
        timed_process(cmd, cwd)

    f_fresh, f_all = median_of(rounds, lambda: timed_process(f_cmd, flam_dir),
                               remove(state_dir))
    a_fresh, a_all = median_of(rounds, lambda: timed_process(a_cmd, alem_dir), remove(db))
    # Everything is applied now (the last fresh round): the no-op rerun.
    f_rerun, f_rall = median_of(rounds, lambda: timed_process(f_cmd, flam_dir))
    a_rerun, a_rall = median_of(rounds, lambda: timed_process(a_cmd, alem_dir))
    if verbose:
        for name, samples in (("flamingock fresh", f_all), ("alembic fresh", a_all),
                              ("flamingock rerun", f_rall), ("alembic rerun", a_rall)):
            print(f"  {name:<17} " + " ".join(f"{s:.3f}" for s in samples))
    rows = []
    for label, f, a in (("fresh apply", f_fresh, a_fresh), ("no-op rerun", f_rerun, a_rerun)):
        ratio = f / a
        rows.append(Row(f"1{'a' if label == 'fresh apply' else 'b'}. {units:,} units, {label}",
                        fmt_s(f), fmt_s(a), f"{ratio:.2f}", "ratio <= 1.0", ratio <= 1.0))
    return rows


def bench_big_rerun(work: Path, units: int, per_file: int, rounds: int,
                    verbose: bool) -> list[Row]:
    root = work / "big"
    config = _gen.flamingock_project(root, units, per_file=per_file)
    cmd = flamingock_cmd(config)
    started = time.perf_counter()
    timed_process(cmd, root)  # the one apply
    applied = time.perf_counter() - started
    rerun, samples = median_of(rounds, lambda: timed_process(cmd, root))
    if verbose:
        print(f"  big apply {applied:.3f}; reruns " + " ".join(f"{s:.3f}" for s in samples))
    files = (units + per_file - 1) // per_file
    return [
        Row(f"2.  {units:,} applied units ({files:,} .py files x {per_file}), no-op rerun",
            fmt_s(rerun), "-", "-", "< 1.5 s", rerun < 1.5),
        Row(f"    (their one fresh apply, for reference: {2 * units + 4:,} events)",
            fmt_s(applied), "-", "-", "-", None),
    ]


def bench_fold(work: Path, events: int, repeats: int) -> list[Row]:
    from flamingock_es.adapters.local import LocalEventLog

    path = work / "fold" / "audit.log"
    path.parent.mkdir(parents=True)
    written = _gen.audit_log(path, events)
    ours, plain = fold_vs_bare(lambda: LocalEventLog(path).read(), written, repeats)
    ratio = ours / plain
    return [Row(f"3.  fold {written:,} events: decode_all+fold vs schemaless_reader loop",
                f"{ours:,.0f} ev/s", f"{plain:,.0f} ev/s", f"{ratio:.2f}",
                "ratio >= 0.9", ratio >= 0.9)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, help="timed rounds per process measurement "
                        "(median reported; default 5, --quick 2)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run with smaller numbers (100 / 1,000 units, 10,000 events)")
    parser.add_argument("--units", type=int, help="units and revisions for 1. (default 1,000)")
    parser.add_argument("--big", type=int, help="applied units for 2. (default 10,000)")
    parser.add_argument("--per-file", type=int, default=100,
                        help="units per Python file for 2. (default 100)")
    parser.add_argument("--events", type=int, help="audit events for 3. (default 100,000)")
    parser.add_argument("--only", choices=["1", "2", "3"], action="append",
                        help="run only these benchmarks (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every sample")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    units = args.units or (100 if args.quick else 1000)
    big = args.big or (1000 if args.quick else 10_000)
    events = args.events or (10_000 if args.quick else 100_000)
    only = set(args.only or ["1", "2", "3"])

    print("flamingock-es vs alembic" + (" (--quick: smaller numbers)" if args.quick else ""))
    print(environment())
    print(load())
    work = Path(tempfile.mkdtemp(prefix="flamingock-bench-"))
    fs = subprocess.run(["df", "-T", str(work)], capture_output=True, text=True).stdout
    fs_type = fs.splitlines()[-1].split()[1] if fs.count("\n") >= 2 else "?"
    print(f"work dir {work} ({fs_type}); {rounds} rounds per process figure, median; "
          "one untimed warm-up apply each")
    print()
    rows: list[Row] = []
    try:
        if "1" in only:
            rows += bench_vs_alembic(work, units, rounds, args.verbose)
        if "2" in only:
            rows += bench_big_rerun(work, big, args.per_file, rounds, args.verbose)
        if "3" in only:
            rows += bench_fold(work, events, 3)
    finally:
        status = finish(rows, work, args.keep, end="")
    return status


if __name__ == "__main__":
    sys.exit(main())
