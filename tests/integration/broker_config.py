"""What the running brokers were started with: the tests that need a broker set up a certain
way (classic groups only, topics auto-created) check it first, and fail at once otherwise."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]


def broker_values(bootstrap: str, key: str) -> dict[str, str]:
    """Each broker's value of ``key``, by broker id."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "allow.auto.create.topics": False})
    values = {}
    for broker in admin.list_topics(timeout=10).brokers:
        resource = ConfigResource("broker", str(broker))
        values[str(broker)] = str(
            admin.describe_configs([resource])[resource].result(timeout=10)[key].value)
    return values
