"""The Kafka settings as users write them: the properties the project sets itself are refused,
and every client config keeps topic auto-creation off, whatever the options say."""

from __future__ import annotations

import pytest

from flamingock_es.adapters.kafka.config import parse_bus
from flamingock_es.errors import ConfigError

BUS = "kafka://127.0.0.1:19092"


@pytest.mark.parametrize("key", ["transactional.id", "isolation.level", "group.id",
                                 "allow.auto.create.topics"])
def test_a_property_the_project_sets_itself_is_refused_by_name(key: str) -> None:
    with pytest.raises(ConfigError, match=f"'{key}' is set by flamingock-es itself"):
        parse_bus(BUS, {key: "true"})


def test_every_client_config_keeps_topic_auto_creation_off() -> None:
    settings = parse_bus(BUS, {"security.protocol": "PLAINTEXT", "socket.timeout.ms": "5000"})
    for extra in (None, {"transactional.id": "t"}, {"group.id": "g"}):
        conf = settings.config(extra)
        assert conf["allow.auto.create.topics"] is False
        assert conf["socket.timeout.ms"] == "5000"  # the options still pass through
