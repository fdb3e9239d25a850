"""What the evidence costs (issue 21), each figure beside the conditions it was taken in.

A1. Append cost, local bus: a whole ``flamingock-es run`` applying 1,000 no-op units in one
    run on a signed project (a fresh copy each sample, whose namespace a first run of 100
    units, not timed, created), today (the tree in the fold, a C2SP
    checkpoint signed and published at the end of the run) against the code before the tree
    (``--baseline-ref``, main before the h21 merge, exported with ``git archive``). Goal:
    <= 1.1x.
A2. The same on Kafka (``FLAMINGOCK_KAFKA_BOOTSTRAP``; a fresh namespace each sample, its
    topics, the checkpoints topic too, created by the first run). Goal: <= 1.1x.
P1. ``prove`` one unit of a signed ~1 M-event history (1,000 units applied through 1,000
    runs of 500): ``api.prove`` in-process, warm (the proof store on disk caught up), median;
    the first prove (which builds the store from the log) and the whole process are printed
    beside it. Goal: < 50 ms.
P2. ``verify-proof`` of that bundle: ``api.verify_proof`` in-process, median; the whole
    process beside it. Goal: < 10 ms.
P3. The inclusion proof's size at that size: the proof's hashes, raw and as the bundle
    carries them, and the whole bundle without the event. Goal: <= 1 KB plus the event.
H.  A no-op start-up on that history with its snapshot (which keeps the tree's frontier),
    today against the baseline on the same log with its own snapshot. Goal: <= 1.1x
    ("unchanged from today").

A1, A2 and H take their samples in turn, today and before back to back in each round; the
goal is judged on the median of the rounds' ratios (the ratio of the medians is printed
beside it), which a shared machine's drifting load disturbs less.

    eval "$(scripts/services env)"           # a broker for A2 (else A2 is not taken)
    python bench/evidence.py                 # everything, 3 rounds: ~30 min on 2 cores (A2 8,
                                             # the signed history and its snapshots 9)
    python bench/evidence.py --only A1 --rounds 3
    python bench/evidence.py --only P --only H --work /tmp/ev   # again: the history reused
    python bench/evidence.py --quick         # 100 units, ~100,000 events: a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _gen
from _measure import (
    Row,
    Samples,
    environment,
    flamingock_cmd,
    interleaved,
    load,
    paired_ratio,
    run_and_report,
)
from _measure import timed_process as _timed
from startup import check_baseline

REPO = Path(__file__).resolve().parents[1]
BASELINE_REF = "ac6c50f^1"
"""main just before the h21 merge: no tree, no checkpoints, no proofs."""


def export_baseline(ref: str, into: Path) -> Path:
    """``git archive REF`` of this repository, unpacked in ``into`` (a PYTHONPATH for it).

    setup.py maps ``projections/`` and ``schemas/`` into the package, which a PYTHONPATH
    does not: they are linked in, else the installed tree's editable finder would serve
    today's read side to the baseline's package."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    for mapped in ("projections", "schemas"):
        inside = into / "flamingock_es" / mapped
        if (into / mapped).is_dir() and not inside.exists():
            inside.symlink_to(Path("..") / mapped)
    return into


def against_before(samples: dict[str, Samples]) -> tuple[float, str]:
    """Today against before: the median of the rounds' paired ratios (what the goal is judged
    on: each pair ran back to back) and the cell that shows it beside the medians' ratio."""
    paired = paired_ratio(samples["today"], samples["before"])
    medians = samples["today"].median / samples["before"].median
    return paired, f"{paired:.2f}x paired ({medians:.2f}x of medians)"


def signed_project(root: Path, units: int, bus: str | None = None) -> Path:
    """A project of ``units`` no-op units, 100 to a file, signed as ``init`` signs one."""
    config = _gen.signed_project(root, units)
    if bus is not None:
        config.write_text(config.read_text().replace("bus: local:.flamingock", f"bus: {bus}"))
    return config


def fresh_copy(pristine: Path, into: Path, namespace: str) -> Path:
    """A copy of the project ``pristine`` in ``into`` with its own namespace."""
    shutil.copytree(pristine, into)
    for name in ("flamingock.yaml", "trust/trust.yaml"):
        path = into / name
        path.write_text(
            path.read_text()
            .replace("namespace: bench", f"namespace: {namespace}")
            .replace("- bench", f"- {namespace}")
        )
    return into / "flamingock.yaml"


def append_cost(
    work: Path,
    name: str,
    units: int,
    rounds: int,
    baseline: Path,
    bus: str | None,
    where: str,
    verbose: bool,
) -> list[Row]:
    """A run of ``units`` more units on a namespace that exists (a first run, not timed,
    created it and applied the first file's 100): what the appends cost, not the topics'
    creation (on Kafka, seconds; today's namespace has one topic more)."""
    pristine = work / f"{name}-pristine"
    shutil.rmtree(pristine, ignore_errors=True)
    signed_project(pristine, units + 100, bus)
    count = {"today": 0, "before": 0}

    def sample(variant: str, env: dict[str, str]) -> Callable[[], float]:
        def once() -> float:
            count[variant] += 1
            namespace = f"bench-{name.lower()}-{variant}-{uuid.uuid4().hex[:8]}"
            copy = work / f"{name}-{variant}-{count[variant]}"
            config = fresh_copy(pristine, copy, namespace)
            later = sorted((copy / "changes").glob("v*.py"))[1:]
            (copy / "later").mkdir()
            for path in later:
                path.rename(copy / "later" / path.name)
            _timed(flamingock_cmd(config), copy, env)  # creates the namespace
            for path in later:
                (copy / "later" / path.name).rename(path)
            took = _timed(flamingock_cmd(config), copy, env)
            shutil.rmtree(copy, ignore_errors=True)
            return took

        return once

    samples = interleaved(
        rounds,
        {"today": sample("today", {}), "before": sample("before", {"PYTHONPATH": str(baseline)})},
    )
    if verbose:
        for label, got in samples.items():
            print(f"  {name} {label:<6} " + " ".join(f"{s:.3f}" for s in got.values))
    today, before = samples["today"].median, samples["before"].median
    ratio, cell = against_before(samples)
    return [
        Row(
            f"{name}. a run of {units:,} no-op units, signed, {where}: today "
            "(tree + checkpoint) vs before",
            f"{samples['today'].spread()} = {today / units * 1000:.2f} ms/unit",
            f"{samples['before'].spread()} = {before / units * 1000:.2f} ms/unit",
            cell,
            "<= 1.1x",
            ratio <= 1.1,
        )
    ]


def history(work: Path, units: int, runs: int, baseline: Path) -> tuple[Path, Path, int]:
    """A signed project whose log holds ``units`` applied through ``runs`` runs of half of
    them, in two copies: one for today's code, one for the baseline's, each log written by
    its own version (``_history.py``: an older version cannot read today's newer events)
    and each with its own snapshot. Returns both folders and the number of events."""
    today, before = work / "history-today", work / "history-before"
    done = work / "history-events"
    if done.exists():  # --work DIR of an earlier run: its history, as it left it
        print(f"  history: reused from {work}")
        return today, before, int(done.read_text())
    signed_project(today, units)
    shutil.copytree(today, before)  # the same units and key; the logs are written below
    counts = []
    for folder, env in ((today, {}), (before, {"PYTHONPATH": str(baseline)})):
        started = time.perf_counter()
        wrote = subprocess.run(
            [sys.executable, str(REPO / "bench" / "_history.py"), str(folder), str(runs)],
            env={**os.environ, **env}, cwd=tempfile.gettempdir(), capture_output=True,
            text=True, check=True)
        counts.append(int(wrote.stdout.split()[-1]))
        print(f"  history: {counts[-1]:,} signed events written by {folder.name}'s own code in "
              f"{time.perf_counter() - started:.0f} s")
    written = counts[0]
    for folder, env in ((today, {}), (before, {"PYTHONPATH": str(baseline)})):
        took = _timed(
            [
                sys.executable,
                "-m",
                "flamingock_es.cli",
                "snapshot",
                "-q",
                "-c",
                str(folder / "flamingock.yaml"),
            ],
            folder,
            env,
        )
        print(f"  history: {folder.name}'s snapshot written in {took:.1f} s (a whole fold)")
    done.write_text(str(written))
    return today, before, written


def start_up(
    today: Path, before: Path, events: int, rounds: int, baseline: Path, verbose: bool
) -> list[Row]:
    samples = interleaved(
        rounds,
        {
            "today": lambda: _timed(flamingock_cmd(today / "flamingock.yaml"), today),
            "before": lambda: _timed(
                flamingock_cmd(before / "flamingock.yaml"), before, {"PYTHONPATH": str(baseline)}
            ),
        },
    )
    if verbose:
        for label, got in samples.items():
            print(f"  H {label:<6} " + " ".join(f"{s:.3f}" for s in got.values))
    ratio, cell = against_before(samples)
    return [
        Row(
            f"H.  no-op start-up, {events:,} signed events with a snapshot (today's keeps "
            "the frontier) vs before",
            samples["today"].spread(),
            samples["before"].spread(),
            cell,
            "<= 1.1x",
            ratio <= 1.1,
        )
    ]


def _ms(values: list[float]) -> str:
    return (
        f"{statistics.median(values) * 1000:.2f} ms ({min(values) * 1000:.2f}-"
        f"{max(values) * 1000:.2f}, n={len(values)})"
    )


def proofs(project: Path, events: int, unit: str, repeats: int) -> list[Row]:
    """P1-P3 on the history project (today's code)."""
    from flamingock_es import api

    config = project / "flamingock.yaml"
    took = _timed(
        [sys.executable, "-m", "flamingock_es.cli", "checkpoint", "-q", "-c", str(config)], project
    )
    print(
        f"  proofs: a checkpoint of the whole log signed and published in {took:.1f} s "
        "(the tree on disk built from the log: once)"
    )
    shutil.rmtree(project / ".flamingock" / "bench" / "tree", ignore_errors=True)
    started = time.perf_counter()
    bundle = api.prove(config, unit=unit)
    first = time.perf_counter() - started
    warm = []
    for _ in range(repeats):
        started = time.perf_counter()
        bundle = api.prove(config, unit=unit)
        warm.append(time.perf_counter() - started)
    path = project / "proof.json"
    path.write_text(json.dumps(bundle))
    process = _timed(
        [
            sys.executable,
            "-m",
            "flamingock_es.cli",
            "prove",
            unit,
            "-c",
            str(config),
            "-o",
            str(project / "proof2.json"),
        ],
        project,
    )
    checks = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = api.verify_proof(bundle)
        checks.append(time.perf_counter() - started)
    assert result.ok, result
    check_process = _timed(
        [sys.executable, "-m", "flamingock_es.cli", "verify-proof", str(path)], project
    )
    size, raw, carried, whole, event = proof_size(bundle)
    rest = whole - carried - event
    return [
        Row(
            f"P1. prove unit {unit} at {size:,} leaves, api.prove in-process, warm",
            _ms(warm),
            f"first {first * 1000:.0f} ms (builds the tree on disk); process {process:.2f} s",
            "",
            "< 50 ms",
            statistics.median(warm) < 0.050,
        ),
        Row(
            "P2. verify-proof of that bundle, api.verify_proof in-process",
            _ms(checks),
            f"process {check_process:.2f} s",
            "",
            "< 10 ms",
            statistics.median(checks) < 0.010,
        ),
        Row(
            f"P3. inclusion proof at {size:,} leaves ({events:,} events)",
            f"{raw} B raw, {carried} B in the bundle",
            f"bundle {whole:,} B: event {event} B, checkpoint and keys {rest:,} B",
            "",
            "<= 1 KB + event",
            carried <= 1024,
        ),
    ]


def proof_size(bundle: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """Tree size, the proof's hashes raw and as the bundle carries them (base64 in JSON),
    the whole bundle, and the event's bytes in it (base64 too)."""
    size = int(bundle["signed_checkpoint"].split("\n")[1])
    hashes = [h for leaf in bundle["leaves"] for h in leaf["inclusion_proof"]]
    carried = len(json.dumps({"inclusion_proof": hashes}))
    event = sum(len(leaf["record"]) for leaf in bundle["leaves"])
    return size, 32 * len(hashes), carried, len(json.dumps(bundle)), event


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, help="samples per variant (default 5)")
    parser.add_argument("--quick", action="store_true", help="100 units, ~100,000 events")
    parser.add_argument(
        "--baseline-ref",
        default=BASELINE_REF,
        help=f"the code before the tree (default {BASELINE_REF})",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=["A1", "A2", "P", "H"],
        help="run only these figures (repeatable; P is P1-P3)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--work",
        type=Path,
        help="work in DIR and keep it; a history an "
        "earlier run left there is reused (P and H without its ~9 minutes)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every sample")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    units = 100 if args.quick else 1000
    runs = 100 if args.quick else 1000
    only = set(args.only or ["A1", "A2", "P", "H"])
    kafka = os.environ.get("FLAMINGOCK_KAFKA_BOOTSTRAP")

    print("flamingock-es evidence costs" + (" (--quick)" if args.quick else ""))
    print(environment())
    print(
        f"{load()} at the start; a process figure is {rounds} samples a variant, taken in "
        "turn, median (min-max)"
    )
    if args.work is not None:
        args.keep = True
        args.work.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="flamingock-evidence-"))
    baseline = work / "baseline"
    if not baseline.exists():
        export_baseline(args.baseline_ref, baseline)
    check_baseline(baseline)
    short = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", args.baseline_ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"before: {args.baseline_ref} ({short}), exported to {baseline}")
    history_of: list[tuple[Path, Path, int]] = []

    def long_history() -> tuple[Path, Path, int]:
        if not history_of:
            history_of.append(history(work, units, runs, baseline))
        return history_of[0]

    figures: dict[str, Callable[[], list[Row]]] = {
        "A1": lambda: append_cost(
            work, "A1", units, rounds, baseline, None, "local bus (fsync per append)", args.verbose
        ),
        "A2": lambda: append_cost(
            work,
            "A2",
            units,
            rounds,
            baseline,
            f"kafka://{kafka}",
            f"Kafka {kafka} (a transaction per append)",
            args.verbose,
        ),
        "P": lambda: proofs(long_history()[0], long_history()[2], f"noop-{units // 2:05d}", 20),
        "H": lambda: start_up(*long_history(), rounds, baseline, args.verbose),
    }
    if not kafka and "A2" in only:
        print("A2 not taken: set FLAMINGOCK_KAFKA_BOOTSTRAP to a broker")
        only.discard("A2")
    return run_and_report(figures, only, work, args.keep)


if __name__ == "__main__":
    sys.exit(main())
