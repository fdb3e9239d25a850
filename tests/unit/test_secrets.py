"""Secrets never reach the append-only log, the spans, the reports or ``plan --show``.

Secrets are planted every way a user writes them: literal values under ``db_password``,
``dbPassword``, ``access_token`` and ``private_key``, nested in lists and mappings, values
resolved from ``${VAR}``, request headers (``Authorization``, ``Cookie``), and an error message
that quotes them. A real local HTTP server receives them (so they were really resolved and
sent); then the bytes of the audit log, of every exported span, and of the JSON, CSV and HTML
reports are searched for each one.
"""

from __future__ import annotations

import json
import logging
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flamingock_es import telemetry
from flamingock_es.api import open_workflow, plan, replay, run
from flamingock_es.audit.report.render import render as render_report
from flamingock_es.cli.preview import preview
from flamingock_es.cli.preview import render as render_preview
from flamingock_es.core.secrets import is_secret, redact, scrub, secret_values
from flamingock_es.errors import UnitFailedError

ENV = {"DB_PASS": "env-pw-7f3a19", "API_TOKEN": "env-tok-91ce55", "SESSION_ID": "sess-5b2d08"}
LITERALS = ("lit-pw-aa1122", "lit-pw-camel-bb33", "lit-tok-cc4455", "lit-pk-dd6677",
            "lit-pw-py-ee8899")
SECRETS = (*ENV.values(), *LITERALS)


class Recording(BaseHTTPRequestHandler):
    """Keeps every request's headers and body: proof the secrets were really sent."""

    seen: list[tuple[dict[str, str], bytes]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Recording.seen.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Recording.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    memory = InMemorySpanExporter()
    assert telemetry.configure(memory, force=True)
    yield memory
    telemetry.shutdown()


def _project(path: Path, url: str) -> Path:
    (path / "changes").mkdir(parents=True)
    (path / "flamingock.yaml").write_text(textwrap.dedent(f"""\
        namespace: shop
        bus: local:{path}/bus
        stages:
          - name: main
            units: [changes]
    """))
    (path / "changes" / "a_flag.yaml").write_text(textwrap.dedent(f"""\
        id: flag
        order: 1
        author: ana
        template: http-request
        apply:
          method: PUT
          url: {url}/flags/checkout
          headers: {{Authorization: "Bearer ${{API_TOKEN}}", Cookie: "sid=${{SESSION_ID}}"}}
          json:
            db_password: "${{DB_PASS}}"
            key: "user::42"
            nested: {{dbPassword: {LITERALS[1]}, creds: [{{access_token: {LITERALS[2]}}}]}}
            private_key: {LITERALS[3]}
            settings: {{DB-PASSWORD: {LITERALS[0]}}}
        rollback: {{method: PUT, url: "{url}/flags/checkout", json: {{enabled: false}}}}
    """))
    (path / "changes" / "b_login.py").write_text(textwrap.dedent(f"""\
        import os
        from flamingock_es import change_unit

        @change_unit(id="login", order=2, author="ana",
                     parameters={{"conn": {{"db_password": "{LITERALS[4]}"}}, "user": "app"}})
        def login(ctx):
            raise RuntimeError("login refused for " + ctx.params["conn"]["db_password"]
                               + " / " + os.environ["DB_PASS"] + " (" + ctx.params["user"] + ")")
    """))
    return path / "flamingock.yaml"


def _span_text(spans: tuple[ReadableSpan, ...]) -> str:
    parts = []
    for span in spans:
        parts += [span.name, json.dumps(dict(span.attributes or {}), default=str),
                  span.status.description or ""]
        parts += [f"{e.name} {json.dumps(dict(e.attributes or {}), default=str)}"
                  for e in span.events]
    return "\n".join(parts)


def test_no_secret_reaches_the_log_the_spans_or_the_reports(
        tmp_path: Path, server: str, exporter: InMemorySpanExporter,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    config = _project(tmp_path, server)

    with caplog.at_level(logging.DEBUG, logger="flamingock_es"), \
            pytest.raises(UnitFailedError) as failed:
        run(config, handle_signals=False)

    sent = "\n".join(f"{headers}{body.decode()}" for headers, body in Recording.seen)
    for secret in ENV.values():  # resolved and sent: the target got them
        assert secret in sent
    for secret in LITERALS[:4]:
        assert secret in sent
    # both values the error quoted are scrubbed, and nothing else of the message
    assert "login refused for *** / *** (app)" in str(failed.value)
    log = (tmp_path / "bus" / "shop" / "audit.log").read_bytes()
    assert b"user::42" in log  # a bare key names a document: the audit shows it
    assert b'"db_password": "***"' in log  # even the ${DB_PASS} it was written as
    assert b'"Cookie": "***"' in log
    traceback = caplog.text  # what -v shows: the whole traceback, scrubbed too
    assert "Traceback (most recent call last)" in traceback
    assert "login refused for *** / *** (app)" in traceback
    spans = _span_text(exporter.get_finished_spans())
    assert "login refused for ***" in spans  # the error is in the spans, scrubbed
    report = replay(config)
    outputs = {fmt: render_report(report, fmt) for fmt in ("json", "csv", "html")}
    assert "login refused for ***" in outputs["json"]
    for secret in SECRETS:
        assert secret.encode() not in log, secret
        assert secret not in spans, secret
        assert secret not in traceback, secret
        for fmt, text in outputs.items():
            assert secret not in text, (fmt, secret)


def test_plan_show_hides_resolved_values_under_secret_names_and_headers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FLAGS_HOST", "flags.test")
    config = _project(tmp_path, "http://${FLAGS_HOST}")
    workflow = open_workflow(config)

    shown = [render_preview(preview(f"{p.stage}/{p.unit.id}", p.unit, dict(ENV, FLAGS_HOST=
                                                                          "flags.test")))
             for p in plan(workflow).to_run]

    text = "\n".join(shown)
    assert "url: http://flags.test/flags/checkout" in text  # resolved where not secret
    assert "Cookie: '***'" in text
    assert "db_password: '***'" in text
    assert "key: user::42" in text
    for secret in SECRETS:
        assert secret not in text, secret


@pytest.mark.parametrize("name", [
    "password", "db_password", "dbPassword", "DB-PASSWORD", "X-Db-Password", "passwd",
    "access_token", "accessToken", "refresh-token", "client_secret", "Authorization",
    "Proxy-Authorization", "Cookie", "Set-Cookie", "api_key", "X-Api-Key", "apiKey",
    "private_key", "privateKey", "aws_access_key_id", "credentials", "DB_PASS", "auth",
    "passphrase", "signing_key"])
def test_names_that_say_secret(name: str) -> None:
    assert is_secret(name)


@pytest.mark.parametrize("name", [
    "key", "keys", "key_range", "primary_key", "monkey", "author", "bypass", "passenger",
    "url", "user", "topic", "document", "region"])
def test_names_that_do_not(name: str) -> None:
    assert not is_secret(name)


def test_declared_names_match_whatever_their_case_and_separators() -> None:
    assert redact({"DSN": "x", "other": {"dsn-main": "y"}}, {"dsn", "dsn_main"}) == \
        {"DSN": "***", "other": {"dsn-main": "***"}}


def test_secret_values_come_from_parameters_settings_and_the_environment() -> None:
    values = secret_values({"a": {"token": ["t-123456", {"x": "t-nested"}]}, "b": "plain-v"},
                           {"couchbase_password": "cb-pw-1"},
                           env={"MY_API_KEY": "env-key-1", "HOME": "/root"})
    assert values == {"t-123456", "t-nested", "cb-pw-1", "env-key-1"}
    assert scrub("Bearer tok-abcdef failed", secret_values({"Authorization":
                                                            "Bearer tok-abcdef"})) == \
        "*** failed"
    assert secret_values({"pwd": "12"}) == frozenset()  # too short to search texts for
