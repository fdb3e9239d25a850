"""Fixtures for tests that talk to the real services started by ``scripts/services``.

The services are found through the environment, as printed by ``scripts/services env``.
A missing or unreachable service is a test *failure*, never a skip: a suite that
silently skips its integration tests looks green while testing nothing.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from .netns import Isolated, missing_prerequisite

HOW_TO_START = 'run scripts/services up and eval "$(scripts/services env)"'

KAFKA_BOOTSTRAP_VAR = "FLAMINGOCK_KAFKA_BOOTSTRAP"
COUCHBASE_VARS = (
    "FLAMINGOCK_COUCHBASE_URL",
    "FLAMINGOCK_COUCHBASE_USER",
    "FLAMINGOCK_COUCHBASE_PASSWORD",
    "FLAMINGOCK_COUCHBASE_BUCKET",
)
COUCHBASE_KV_PORT = 11210


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kafka: needs the Kafka broker started by scripts/services")
    config.addinivalue_line(
        "markers", "couchbase: needs the Couchbase-protocol server started by scripts/services"
    )
    config.addinivalue_line("markers", "jaeger: needs Jaeger (scripts/services up --with jaeger)")
    config.addinivalue_line("markers", "tenants(n): how many tenants a rollout fixture gives")
    config.addinivalue_line(
        "markers", "secure: needs the SASL_SSL listener and ACLs (scripts/services up --secure)")
    config.addinivalue_line(
        "markers", "cluster: needs the 3-node Kafka cluster (scripts/services up --brokers 3); "
        "selected only by -m cluster, as scripts/test does in its cluster phase")
    config.addinivalue_line(
        "markers", "classic: needs a broker that serves classic consumer groups only "
        "(scripts/services up --classic-groups) and auto-creates topics "
        "(FLAMINGOCK_KAFKA_AUTO_CREATE=true); selected only by -m classic, as scripts/test "
        "does in its classic phase")
    config.addinivalue_line(
        "markers", "drill: a rollout over a few hundred tenants on the 3-node cluster, with a "
        "worker and the coordinator killed; selected only by -m drill (not in CI: about 12 "
        "minutes)")


SPECIAL_BROKERS = {
    "cluster": "they run with -m cluster against 'scripts/services up --brokers 3'",
    "classic": "they run with -m classic against 'FLAMINGOCK_KAFKA_AUTO_CREATE=true "
               "scripts/services up --classic-groups'",
    "drill": "the few-hundred-tenant drill runs with -m drill against 'scripts/services up "
             "--brokers 3' (about 12 minutes, so not in CI)",
}
"""Markers of tests that need a broker other than the single one the rest use: each runs
only when ``-m`` names it (scripts/test has a phase for each); their deselection is
reported, never silent."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    named = config.option.markexpr or ""
    for marker in SPECIAL_BROKERS:
        if marker in named:
            continue
        special = [item for item in items if item.get_closest_marker(marker)]
        if special:
            config.hook.pytest_deselected(items=special)
            items[:] = [item for item in items if not item.get_closest_marker(marker)]
            config.stash.setdefault(_DESELECTED, {})[marker] = len(special)


_DESELECTED = pytest.StashKey[dict[str, int]]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for marker, count in terminalreporter.config.stash.get(_DESELECTED, {}).items():
        terminalreporter.write_line(
            f"{count} {marker} test(s) not selected: {SPECIAL_BROKERS[marker]} (scripts/test's "
            f"{marker} phase does).", yellow=True)


@dataclass(frozen=True)
class CouchbaseEnv:
    url: str
    user: str
    password: str
    bucket: str


def _host_ports(addresses: str, default_port: int) -> list[tuple[str, int]]:
    """``"h1:p1,h2"`` -> ``[("h1", p1), ("h2", default_port)]``."""
    result = []
    for item in addresses.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            host, port = item, str(default_port)
        result.append((host.strip("[]"), int(port)))
    return result


def _first_reachable(addresses: list[tuple[str, int]], timeout: float = 2.0) -> str | None:
    """Return None if one address accepts a TCP connection, else the last error."""
    error = "no address given"
    for host, port in addresses:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return None
        except OSError as exc:
            error = f"{host}:{port}: {exc}"
    return error


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of the test Kafka broker; fails if it is not reachable."""
    bootstrap = os.environ.get(KAFKA_BOOTSTRAP_VAR, "").strip()
    if not bootstrap:
        pytest.fail(f"{KAFKA_BOOTSTRAP_VAR} is not set: {HOW_TO_START}", pytrace=False)
    error = _first_reachable(_host_ports(bootstrap, 9092))
    if error is not None:
        pytest.fail(
            f"Kafka at {KAFKA_BOOTSTRAP_VAR}={bootstrap} is unreachable ({error}): {HOW_TO_START}",
            pytrace=False,
        )
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.list_topics(timeout=10)
    except Exception as exc:
        pytest.fail(
            f"Kafka at {bootstrap} does not answer a metadata request ({exc}): {HOW_TO_START}",
            pytrace=False,
        )
    return bootstrap


@pytest.fixture(scope="session")
def group_session_timeout(kafka_bootstrap: str) -> float:
    """Seconds after which the broker evicts a silent KIP-848 group member: its own
    ``group.consumer.session.timeout.ms`` (scripts/services sets it), asked of the broker, so
    that the tests wait for the broker they run against, not for a number of their own."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    broker = min(admin.list_topics(timeout=10).brokers)
    resource = ConfigResource("broker", str(broker))
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    return int(configs["group.consumer.session.timeout.ms"].value) / 1000


@pytest.fixture
def isolated(kafka_bootstrap: str) -> Iterator[Isolated]:
    """A network namespace whose processes reach the broker only through a link the test
    can cut (``isolated.cut()``) and heal: a real partition of one process (``netns.py``).
    Run a command in it with ``isolated.command(argv)``."""
    why = missing_prerequisite()
    if why is not None:
        pytest.fail(f"cannot partition a process from the broker: {why}", pytrace=False)
    ports = sorted({port for _, port in _host_ports(kafka_bootstrap, 9092)})
    namespace = Isolated(ports).start()
    try:
        yield namespace
    finally:
        namespace.close()


@pytest.fixture(scope="session")
def couchbase_env() -> CouchbaseEnv:
    """Connection settings of the test Couchbase server; fails if it is not reachable."""
    missing = [name for name in COUCHBASE_VARS if not os.environ.get(name, "").strip()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not set: {HOW_TO_START}", pytrace=False)
    env = CouchbaseEnv(*(os.environ[name].strip() for name in COUCHBASE_VARS))
    parts = urlsplit(env.url)
    if parts.scheme not in ("couchbase", "couchbases"):
        pytest.fail(f"FLAMINGOCK_COUCHBASE_URL={env.url} is not a couchbase:// URL", pytrace=False)
    error = _first_reachable(_host_ports(parts.netloc, COUCHBASE_KV_PORT))
    if error is not None:
        pytest.fail(
            f"Couchbase at FLAMINGOCK_COUCHBASE_URL={env.url} is unreachable ({error}): "
            f"{HOW_TO_START}",
            pytrace=False,
        )
    return env


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A topic/group/document name unique to this test run, so tests can be re-run."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")[:80]
    return f"it-{safe}-{uuid.uuid4().hex[:12]}"


def _env_or_fail(name: str, how: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"{name} is not set: {how}", pytrace=False)
    return value


@pytest.fixture(scope="session")
def jaeger_query() -> str:
    """Base URL of Jaeger's query API; fails if Jaeger does not answer."""
    how = ('run scripts/services up --with jaeger and eval "$(scripts/services env)"')
    url = _env_or_fail("FLAMINGOCK_JAEGER_QUERY", how)
    _env_or_fail("FLAMINGOCK_JAEGER_OTLP", how)
    try:
        with urllib.request.urlopen(f"{url}/api/services", timeout=5) as answer:
            answer.read()
    except OSError as exc:
        pytest.fail(f"Jaeger's query API at {url} does not answer ({exc}): {how}", pytrace=False)
    return url


@dataclass(frozen=True)
class SecureKafka:
    """The SASL_SSL listener of ``scripts/services up --secure`` and its principals."""

    bootstrap: str
    ca: str
    passwords: dict[str, str]

    def options(self, principal: str) -> dict[str, str]:
        """The ``kafka:`` options (librdkafka properties) of ``principal``."""
        return {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": principal, "sasl.password": self.passwords[principal],
                "ssl.ca.location": self.ca}


SECURE_PRINCIPALS = ("admin", "runner", "requester", "projector", "auditor")


@pytest.fixture(scope="session")
def secure_kafka() -> SecureKafka:
    """The secure listener; fails if it is not configured or does not answer."""
    how = 'run scripts/services up --secure and eval "$(scripts/services env)"'
    secure = SecureKafka(
        _env_or_fail("FLAMINGOCK_KAFKA_SECURE_BOOTSTRAP", how),
        _env_or_fail("FLAMINGOCK_KAFKA_CA", how),
        {who: _env_or_fail(f"FLAMINGOCK_KAFKA_{who.upper()}_PASSWORD", how)
         for who in SECURE_PRINCIPALS})
    error = _first_reachable(_host_ports(secure.bootstrap, 9093))
    if error is not None:
        pytest.fail(f"the secure listener {secure.bootstrap} is unreachable ({error}): {how}",
                    pytrace=False)
    return secure
