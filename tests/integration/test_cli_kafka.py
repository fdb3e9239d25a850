"""The CLI on the real Kafka broker, as a user runs it: a librdkafka option it refuses is a
configuration error that names the option, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..e2e.conftest import WORKFLOW, Project, ok

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


@pytest.mark.parametrize(("block", "words"), [
    ("kafka: {no.such.option: 1}",
     "Kafka option 'no.such.option' is not a librdkafka configuration property"),
    ("kafka: {statistics.interval.ms: soon}",
     "Kafka option 'statistics.interval.ms' has a value librdkafka refuses"),
])
@pytest.mark.parametrize("command", ["run", "plan", "status", "history"])
def test_a_refused_librdkafka_option_is_exit_2_and_named(
        tmp_path: Path, kafka_bootstrap: str, unique_name: str, block: str, words: str,
        command: str) -> None:
    project = Project(tmp_path / "proj")
    project.write("flamingock.yaml", f"{WORKFLOW}{block}\n")
    project.units()

    result = ok(project.cli(command, "--bus", f"kafka://{kafka_bootstrap}", "--namespace",
                            unique_name), 2)

    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert "soon" not in result.stderr  # values are not echoed: they may be secrets
    assert project.effects() == []
