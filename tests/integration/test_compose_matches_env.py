"""docker-compose.yml and scripts/services must describe the same services.

No server needed: this reads docker-compose.yml and the output of
``scripts/services env`` (which works while the services are down).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    services = data["services"]
    assert isinstance(services, dict)
    return services


@pytest.fixture(scope="module")
def services_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # An empty services dir: the values 'env' gives when nothing runs, i.e. the
    # configured defaults, whatever the developer's own services are doing.
    state = tmp_path_factory.mktemp("services-state")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path_factory.mktemp("home")),
        "FLAMINGOCK_SERVICES_DIR": str(state),
    }
    out = subprocess.run(
        ["bash", str(SERVICES), "env"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    result = {}
    for line in out.splitlines():
        words = shlex.split(line)
        assert words[0] == "export", line
        key, _, value = words[1].partition("=")
        result[key] = value
    return result


def _host_ports(service: dict[str, Any]) -> set[int]:
    """Host ports a compose service publishes on 127.0.0.1 (ranges expanded)."""
    ports: set[int] = set()
    for spec in service.get("ports", []):
        host_ip, host, _container = str(spec).rsplit(":", 2)
        assert host_ip == "127.0.0.1", f"{spec}: bind host ports to 127.0.0.1 only"
        first, _, last = host.partition("-")
        ports.update(range(int(first), int(last or first) + 1))
    return ports


SWITCHED = frozenset({"group.coordinator.rebalance.protocols"})
"""Broker settings scripts/services writes only when asked (--classic-groups): the compose
file runs the default broker."""


def _services_script_settings() -> dict[str, str]:
    """key=value lines of the broker config that scripts/services writes."""
    text = SERVICES.read_text()
    return dict(re.findall(r"^([a-z][a-z0-9.]*)=([^\s$]+)$", text, flags=re.MULTILINE))


NOT_COMPOSED = frozenset({"FLAMINGOCK_WITNESS_URL"})
"""Services scripts/services builds that docker-compose.yml does not run: litewitness has no
published image, and a witness run beside the log it cosigns proves little (docker-compose.yml
says so where the witness would be)."""


def test_env_prints_all_variables(services_env: dict[str, str]) -> None:
    assert set(services_env) == {
        "FLAMINGOCK_KAFKA_BOOTSTRAP",
        "FLAMINGOCK_COUCHBASE_URL",
        "FLAMINGOCK_COUCHBASE_USER",
        "FLAMINGOCK_COUCHBASE_PASSWORD",
        "FLAMINGOCK_COUCHBASE_BUCKET",
        "FLAMINGOCK_JAEGER_OTLP",
        "FLAMINGOCK_JAEGER_QUERY",
        *NOT_COMPOSED,
    }


def test_compose_says_why_the_witness_is_not_there() -> None:
    assert "litewitness" in (REPO / "docker-compose.yml").read_text()


def test_kafka_matches(compose: dict[str, Any], services_env: dict[str, str]) -> None:
    kafka = compose["kafka"]
    host, _, port = services_env["FLAMINGOCK_KAFKA_BOOTSTRAP"].rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) in _host_ports(kafka)
    environment = kafka["environment"]
    assert environment["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://127.0.0.1:{port}"
    assert f":{port}" in environment["KAFKA_LISTENERS"]


def test_kafka_group_settings_match(compose: dict[str, Any]) -> None:
    environment = compose["kafka"]["environment"]
    settings = _services_script_settings()
    keys = [k for k in settings if k.startswith(("group.", "transaction.state.", "offsets."))
            and k not in SWITCHED]
    assert "group.consumer.session.timeout.ms" in keys
    assert "group.consumer.heartbeat.interval.ms" in keys
    for key in [*keys, "auto.create.topics.enable", "num.partitions", "min.insync.replicas"]:
        env_name = "KAFKA_" + key.upper().replace(".", "_")
        assert str(environment.get(env_name)) == settings[key], env_name


def test_couchbase_matches(compose: dict[str, Any], services_env: dict[str, str]) -> None:
    url = urlsplit(services_env["FLAMINGOCK_COUCHBASE_URL"])
    assert url.scheme == "couchbase"
    assert url.hostname == "127.0.0.1"
    # No port in the URL: the SDK uses the standard ones, which compose publishes.
    assert url.port is None
    assert {8091, 11210} <= _host_ports(compose["couchbase"])

    init = compose["couchbase-init"]["environment"]
    assert init["CB_USER"] == services_env["FLAMINGOCK_COUCHBASE_USER"]
    assert init["CB_PASSWORD"] == services_env["FLAMINGOCK_COUCHBASE_PASSWORD"]
    assert init["CB_BUCKET"] == services_env["FLAMINGOCK_COUCHBASE_BUCKET"]


def test_jaeger_otlp_and_ui_published(compose: dict[str, Any],
                                      services_env: dict[str, str]) -> None:
    jaeger = compose["jaeger"]
    assert str(jaeger["environment"]["COLLECTOR_OTLP_ENABLED"]) == "true"
    ports = {urlsplit(services_env[name]).port
             for name in ("FLAMINGOCK_JAEGER_OTLP", "FLAMINGOCK_JAEGER_QUERY")}
    assert ports == {4318, 16686}
    assert ports <= _host_ports(jaeger)
