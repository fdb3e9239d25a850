"""How many replicas the namespace's topics get, by cluster size and options (no server).

``test_kafka_cluster.py`` checks the same on a real three-node cluster.
"""

from __future__ import annotations

import pytest

from flamingock_es.adapters.kafka import parse_bus
from flamingock_es.adapters.kafka.admin import replication
from flamingock_es.errors import ConfigError


@pytest.mark.parametrize(("options", "brokers", "expected"), [
    ({}, 1, (1, None)),                                   # one broker: as before
    ({}, 2, (1, None)),
    ({}, 3, (3, 2)),                                      # a cluster: survives one death
    ({}, 5, (3, 2)),
    ({"replication_factor": "1"}, 3, (1, None)),          # explicit options win
    ({"replication_factor": "2"}, 3, (2, None)),
    ({"min_insync_replicas": "1"}, 3, (3, 1)),
    ({"replication_factor": "3", "min_insync_replicas": "3"}, 3, (3, 3)),
])
def test_replication_follows_the_cluster_unless_configured(
        options: dict[str, str], brokers: int, expected: tuple[int, int | None]) -> None:
    assert replication(parse_bus("kafka://127.0.0.1:9092", options), brokers) == expected


def test_an_isr_above_the_chosen_factor_is_refused() -> None:
    settings = parse_bus("kafka://127.0.0.1:9092", {"min_insync_replicas": "2"})
    with pytest.raises(ConfigError, match="min_insync_replicas=2 is greater than"):
        replication(settings, 1)
