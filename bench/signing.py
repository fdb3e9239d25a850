"""What signing costs: ``verify`` of 100,000 signed events, and a no-op start-up with 10,000
applied units, each side by side with the same unsigned.

    python bench/signing.py [--events N] [--units N] [--rounds N]

Every figure is the median of ``--rounds`` runs. The verify figures are in process (the
compliance replay of a local log against a trust store, by default and with
``--every-signature``, against the same replay of the same events unsigned).
The start-up figure is a whole process, as users run it (`flamingock-es run -q` with
nothing pending), signed and trusted against unsigned;
goal: signing costs a no-op start-up no more than 10 %.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _gen import audit_log, flamingock_project

from flamingock_es.audit import replay_records
from flamingock_es.core.reading import LogReader
from flamingock_es.core.trust import TrustStore, generate_key, load_signer
from flamingock_es.definition.trust_config import load_trust
from flamingock_es.namespace import open_backend

TRUST = "signing_key: keys/runner.key\ntrust:\n  - {key: keys/runner.pub, principal: bench, " \
        "write: [bench]}\n"


def signed_log(root: Path, events: int, signed: bool) -> tuple[Path, TrustStore | None, int]:
    """A local log of about ``events`` events appended as a runner appends them, signed or
    not; its directory, the trust store that verifies it, and the events written."""
    where = root / ("signed" if signed else "unsigned")
    (where / "bench").mkdir(parents=True)
    generate_key("runner", where)
    signer = load_signer(where / "runner.key") if signed else None
    written = audit_log(where / "bench" / "audit.log", events, signer=signer, per_step=True)
    trust = load_trust([{"key": "runner.pub", "principal": "bench", "write": ["bench"]}],
                       where) if signed else None
    return where, trust, written


def verify_seconds(where: Path, trust: TrustStore | None, rounds: int,
                   every_signature: bool = False) -> float:
    """Median seconds of a full verify of the log in ``where``."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        with open_backend(f"local:{where}", "bench", reader=LogReader(trust=trust)) as backend:
            report = replay_records(backend.log.read(), backend.reader, rows=False,
                                    every_signature=every_signature)
        samples.append(time.perf_counter() - started)
        assert report.ok, report.findings[:3]
        assert trust is None or report.signatures_checked
    return statistics.median(samples)


def startup_seconds(root: Path, units: int, rounds: int, signed: bool) -> float:
    """Median seconds of a whole no-op `run` process with ``units`` applied units."""
    project = root / ("startup-signed" if signed else "startup-unsigned")
    config = flamingock_project(project, units, per_file=100)
    if signed:
        generate_key("runner", project / "keys")
        config.write_text(config.read_text().replace("stages:", TRUST + "stages:"))
    command = [sys.executable, "-m", "flamingock_es.cli", "run", "-q", "-c", str(config)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(command, cwd=project, env=env, check=True)  # the one fresh apply
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(command, cwd=project, env=env, check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plain_log, _, written = signed_log(root, args.events, signed=False)
        signed_at, trust, _ = signed_log(root, args.events, signed=True)
        unsigned = verify_seconds(plain_log, None, args.rounds)
        signed = verify_seconds(signed_at, trust, args.rounds)
        thorough = verify_seconds(signed_at, trust, args.rounds, every_signature=True)
        plain = startup_seconds(root, args.units, args.rounds, signed=False)
        trusted = startup_seconds(root, args.units, args.rounds, signed=True)
    print(f"{'measurement':<58} {'unsigned':>10} {'signed':>10} {'ratio':>7}")
    print(f"{f'verify of {written:,} events (last + each writer latest)':<58} "
          f"{unsigned:>9.2f}s {signed:>9.2f}s {signed / unsigned:>7.2f}")
    print(f"{f'verify --every-signature of {written:,} events':<58} "
          f"{unsigned:>9.2f}s {thorough:>9.2f}s {thorough / unsigned:>7.2f}")
    print(f"{f'no-op start-up, {args.units:,} applied units, whole process':<58} "
          f"{plain:>9.2f}s {trusted:>9.2f}s {trusted / plain:>7.2f}   goal <= 1.10")


if __name__ == "__main__":
    main()
