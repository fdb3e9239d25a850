"""RFC 3161 time-stamps from a real TSA (OpenSSL's ``openssl ts -reply``, behind scripts/tsa),
checked by ``rfc3161-client`` and by ``openssl ts -verify`` as an outsider would.

The module starts two TSAs with ``scripts/tsa serve`` on free loopback ports, each with its
own throwaway CA (a state dir under pytest's tmp dir), and stops them at the end. If one
cannot start, every test here fails with its output. Needs openssl on the PATH.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from flamingock_es.adapters.timestamp import (
    SHA256_OID,
    TimestampInvalidError,
    TsaRefusedError,
    TsaUnreachableError,
    load_certificates,
    request_timestamp,
    timestamp_request,
    verify_timestamp,
)

REPO = Path(__file__).resolve().parents[2]
TSA = REPO / "scripts" / "tsa"
START_TIMEOUT = 60


@dataclass(frozen=True)
class _Tsa:
    url: str
    state: Path

    @property
    def ca(self) -> Path:
        return self.state / "ca.pem"

    @property
    def roots(self) -> list[x509.Certificate]:
        return load_certificates(self.ca)


def _start_tsa(state: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([str(TSA), "serve", str(state), "--port", "0"], text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(process.stdout.readline()
                                                          if process.stdout else ""))
    reader.start()
    reader.join(START_TIMEOUT)
    line = first[0].strip() if first else ""
    if not line.startswith("listening on http://127.0.0.1:"):
        process.kill()
        _, err = process.communicate(timeout=10)
        pytest.fail(f"scripts/tsa serve {state} did not start within {START_TIMEOUT}s "
                    f"(said {line!r}):\n{err[-4000:]}", pytrace=False)
    return process, line.removeprefix("listening on ")


@pytest.fixture(scope="module")
def tsas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Tsa, _Tsa]]:
    """Two TSAs with two unrelated CAs: ours, and another one."""
    started: list[subprocess.Popen[str]] = []
    found: list[_Tsa] = []
    try:
        for name in ("tsa", "other-tsa"):
            state = tmp_path_factory.mktemp(name)
            process, url = _start_tsa(state)
            started.append(process)
            found.append(_Tsa(url, state))
        yield found[0], found[1]
    finally:
        for process in started:
            process.terminate()
            try:
                process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate(timeout=10)


def _openssl_verify(tmp_path: Path, token: bytes, digest: bytes,
                    ca: Path) -> subprocess.CompletedProcess[str]:
    """What an outsider runs, with nothing of ours but the token file."""
    path = tmp_path / "token.tsr"
    path.write_bytes(token)
    return subprocess.run(["openssl", "ts", "-verify", "-digest", digest.hex(), "-in", str(path),
                           "-CAfile", str(ca)], capture_output=True, text=True, check=False)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def test_a_token_verifies_with_rfc3161_client_and_with_openssl(
        tsas: tuple[_Tsa, _Tsa], tmp_path: Path) -> None:
    tsa, _ = tsas
    digest = _digest("checkpoint 1")
    before = dt.datetime.now(dt.UTC)
    stamp = request_timestamp(tsa.url, digest, tsa.roots, timeout=10)
    after = dt.datetime.now(dt.UTC)
    assert stamp.digest == digest
    # openssl ts puts whole seconds (accuracy 1 s) in genTime.
    assert before - dt.timedelta(seconds=2) <= stamp.gen_time <= after + dt.timedelta(seconds=2)
    again = verify_timestamp(stamp.token, digest, tsa.roots)
    assert (again.gen_time, again.serial_number) == (stamp.gen_time, stamp.serial_number)
    outsider = _openssl_verify(tmp_path, stamp.token, digest, tsa.ca)
    assert outsider.returncode == 0, outsider.stderr
    assert "Verification: OK" in outsider.stdout


def test_each_token_has_its_own_serial_number(tsas: tuple[_Tsa, _Tsa]) -> None:
    tsa, _ = tsas
    first = request_timestamp(tsa.url, _digest("a"), tsa.roots)
    second = request_timestamp(tsa.url, _digest("a"), tsa.roots)
    assert first.serial_number != second.serial_number
    assert first.token != second.token


def test_a_token_for_another_digest_is_refused_by_both(
        tsas: tuple[_Tsa, _Tsa], tmp_path: Path) -> None:
    tsa, _ = tsas
    stamp = request_timestamp(tsa.url, _digest("checkpoint 2"), tsa.roots)
    other = _digest("checkpoint 2, rewritten")
    with pytest.raises(TimestampInvalidError, match="does not verify"):
        verify_timestamp(stamp.token, other, tsa.roots)
    outsider = _openssl_verify(tmp_path, stamp.token, other, tsa.ca)
    assert outsider.returncode != 0
    assert "message imprint mismatch" in outsider.stderr


def test_a_token_from_another_ca_is_refused_by_both(
        tsas: tuple[_Tsa, _Tsa], tmp_path: Path) -> None:
    tsa, other = tsas
    digest = _digest("checkpoint 3")
    foreign = request_timestamp(other.url, digest, other.roots)  # valid for its own CA
    with pytest.raises(TimestampInvalidError, match="does not verify"):
        verify_timestamp(foreign.token, digest, tsa.roots)
    outsider = _openssl_verify(tmp_path, foreign.token, digest, tsa.ca)
    assert outsider.returncode != 0
    assert "Verification: FAILED" in outsider.stdout
    # And at receipt: a TSA whose CA is not the configured one gives no Timestamp at all.
    with pytest.raises(TimestampInvalidError):
        request_timestamp(other.url, digest, tsa.roots)


def test_the_tsa_certificate_has_the_critical_time_stamping_usage(
        tsas: tuple[_Tsa, _Tsa]) -> None:
    """RFC 3161, section 2.3: the TSA's certificate has exactly one extended key usage,
    id-kp-timeStamping, marked critical; verifiers (rfc3161-client) insist on it."""
    tsa, _ = tsas
    certificate = x509.load_pem_x509_certificate((tsa.state / "tsa.pem").read_bytes())
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert usage.critical
    assert list(usage.value) == [ExtendedKeyUsageOID.TIME_STAMPING]


def test_the_request_is_what_openssl_reads(tmp_path: Path) -> None:
    """The DER TimeStampReq made here, as `openssl ts -query -text` reads it."""
    digest = _digest("request")
    path = tmp_path / "query.tsq"
    path.write_bytes(timestamp_request(digest, 0x0123456789ABCDEF))
    shown = subprocess.run(["openssl", "ts", "-query", "-in", str(path), "-text"],
                           capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "Version: 1" in shown.stdout
    assert "Hash Algorithm: sha256" in shown.stdout
    assert "Nonce: 0x0123456789ABCDEF" in shown.stdout
    assert "Certificate required: yes" in shown.stdout
    dumped = "".join(line.split(" - ", 1)[1].split("   ")[0] for line in shown.stdout.splitlines()
                     if line.startswith("    00"))
    assert bytes.fromhex(dumped.replace("-", " ").replace(" ", "")) == digest
    assert SHA256_OID.dotted_string == "2.16.840.1.101.3.4.2.1"


# A TSA that misbehaves: it replays a token it issued before (another request's nonce), or
# answers with an error. Served from the test, on loopback.

class _Replayer(BaseHTTPRequestHandler):
    token = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/replay":
            status, kind, body = 200, "application/timestamp-reply", self.token
        elif self.path == "/html":
            status, kind, body = 200, "text/html", b"<html>a web page</html>"
        else:
            status, kind, body = 503, "text/plain", b"down for maintenance"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def misbehaving(tsas: tuple[_Tsa, _Tsa]) -> Iterator[str]:
    tsa, _ = tsas
    _Replayer.token = request_timestamp(tsa.url, _digest("replayed"), tsa.roots).token
    server = HTTPServer(("127.0.0.1", 0), _Replayer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_replayed_token_is_refused(tsas: tuple[_Tsa, _Tsa], misbehaving: str) -> None:
    """The token is genuine and over the right digest, but answers another request: its nonce
    is not ours. Kept tokens have no nonce to check, so verify_timestamp accepts it."""
    tsa, _ = tsas
    with pytest.raises(TimestampInvalidError, match="Nonce mismatch"):
        request_timestamp(f"{misbehaving}/replay", _digest("replayed"), tsa.roots)
    assert verify_timestamp(_Replayer.token, _digest("replayed"), tsa.roots).token


def test_a_tsa_error_and_a_non_tsa_answer_are_said_so(
        tsas: tuple[_Tsa, _Tsa], misbehaving: str) -> None:
    tsa, _ = tsas
    with pytest.raises(TsaRefusedError, match="answered 503") as refused:
        request_timestamp(f"{misbehaving}/error", _digest("x"), tsa.roots)
    assert refused.value.status == 503
    with pytest.raises(TimestampInvalidError, match="text/html"):
        request_timestamp(f"{misbehaving}/html", _digest("x"), tsa.roots)


def test_an_unreachable_tsa_is_said_so(tsas: tuple[_Tsa, _Tsa]) -> None:
    tsa, _ = tsas
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TsaUnreachableError, match="unreachable"):
        request_timestamp(f"http://127.0.0.1:{port}", _digest("x"), tsa.roots, timeout=2)


def test_a_digest_must_be_raw_sha256(tsas: tuple[_Tsa, _Tsa]) -> None:
    tsa, _ = tsas
    with pytest.raises(ValueError, match="32 raw bytes"):
        request_timestamp(tsa.url, _digest("x").hex().encode(), tsa.roots)
