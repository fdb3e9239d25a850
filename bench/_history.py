"""Write a signed project's long history with the flamingock-es this process imports.

    PYTHONPATH=BASELINE python bench/_history.py PROJECT RUNS   # the baseline's own events

A log written by one version is read by the same version in a before/after figure: an older
version cannot read today's events (their schema is newer), and each version computes its
units' checksums its own way. So the events, their encoding, the units' checksums and the
signatures all come from the imported package and the ``bench/_gen.py`` beside it.
Prints the number of events written.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import flamingock_es
from flamingock_es.core.trust import load_signer
from flamingock_es.definition.workflow import load_workflow

sys.path.insert(0, str(Path(flamingock_es.__file__).resolve().parents[1] / "bench"))
import _gen  # the imported version's generator


def main(project: Path, runs: int) -> int:
    units = [(unit.id, unit.checksum)
             for _, unit in load_workflow(project / "flamingock.yaml").units()]
    per_run = len(units) // 2

    def chosen() -> Iterator[list[tuple[str, str]]]:  # run r applies the next half, in turn
        for r in range(runs):
            yield [units[(r * per_run + i) % len(units)] for i in range(per_run)]

    log = project / ".flamingock" / "bench" / "audit.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    signer = load_signer(project / ".flamingock" / "keys" / "runner.key")
    written: int = _gen._write_runs(log, chosen(), None, signer=signer)
    return written


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), int(sys.argv[2])))
