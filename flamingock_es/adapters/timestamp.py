"""Trusted time: RFC 3161 time-stamp tokens for a SHA-256 digest.

A time-stamping authority (TSA) signs "this digest existed at this time" with a certificate
whose extended key usage is timeStamping. Anyone who trusts the TSA's CA checks the token with
their own tools, without trusting us::

    openssl ts -verify -digest <hex digest> -in token.tsr -CAfile tsa-ca.pem

so a token over, say, a checkpoint's hash dates that checkpoint for an outsider.

:func:`request_timestamp` asks a TSA for a token and checks it at once (a token that does not
verify is worthless, and better found out while the TSA can still be asked again);
:func:`verify_timestamp` checks a kept token later. Both return a :class:`Timestamp`: the
token's bytes (the whole DER ``TimeStampResp``, what ``openssl ts -verify -in`` reads) and its
``genTime``.

The message imprint is the digest itself, so that an outsider passes the same hex digest to
``openssl ts -verify -digest``. ``rfc3161-client`` (the PyPI package) decodes and verifies the
answer; its request builder hashes the data it is given and cannot take a digest, so the
request, a few fixed DER fields, is encoded here.
"""

from __future__ import annotations

import datetime as dt
import secrets
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from cryptography import x509

from ..errors import (
    ConfigError,
    MissingExtraError,
    TimestampError,
    TimestampInvalidError,
    TsaRefusedError,
    TsaUnreachableError,
)

try:
    import rfc3161_client
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise MissingExtraError("RFC 3161 time-stamps", "timestamp", "rfc3161-client") from exc

__all__ = [
    "SHA256_OID",
    "Rfc3161Timestamper",
    "Timestamp",
    "TimestampError",
    "TimestampInvalidError",
    "TsaRefusedError",
    "TsaUnreachableError",
    "load_certificates",
    "request_timestamp",
    "timestamp_request",
    "verify_timestamp",
]

SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
"""id-sha256: the only message imprint algorithm asked for and accepted here."""

_QUERY_TYPE = "application/timestamp-query"  # RFC 3161, section 3.4
_REPLY_TYPE = "application/timestamp-reply"
_MAX_REPLY = 256 * 1024  # a token with its certificate chain is a few KiB


@dataclass(frozen=True)
class Timestamp:
    """A verified token. ``token`` is the DER ``TimeStampResp`` as the TSA sent it (keep it as
    is: ``openssl ts -verify -in`` reads it); ``gen_time`` is when the TSA says it signed, in
    UTC; ``serial_number`` is the TSA's number for the token, unique per TSA."""

    token: bytes
    digest: bytes
    gen_time: dt.datetime
    serial_number: int
    policy: str


def load_certificates(path: Path) -> list[x509.Certificate]:
    """The PEM certificates in ``path`` (a TSA's CA, and any intermediates), for the ``roots``
    and ``intermediates`` of :func:`request_timestamp` and :func:`verify_timestamp`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the TSA certificates at {path}: {exc}") from exc
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(f"{path} holds no PEM certificate ({exc}): give the TSA's CA "
                          "certificate, '-----BEGIN CERTIFICATE-----' and all") from exc
    return certificates


def timestamp_request(digest: bytes, nonce: int) -> bytes:
    """The DER ``TimeStampReq`` (RFC 3161, section 2.4.1) for a SHA-256 ``digest``: version 1,
    the digest as message imprint, ``nonce``, and certReq TRUE so that the token carries the
    TSA's certificate and only the CA is needed to check it."""
    _check_digest(digest)
    if nonce <= 0:
        raise ValueError("the nonce must be a positive integer")
    algorithm = _der(0x30, _der(0x06, _oid(SHA256_OID.dotted_string)) + _der(0x05, b""))
    imprint = _der(0x30, algorithm + _der(0x04, digest))
    return _der(0x30, _integer(1) + imprint + _integer(nonce) + _der(0x01, b"\xff"))


def request_timestamp(tsa_url: str, digest: bytes, roots: Sequence[x509.Certificate], *,
                      intermediates: Sequence[x509.Certificate] = (),
                      timeout: float = 10.0) -> Timestamp:
    """Ask the TSA at ``tsa_url`` for a token over the SHA-256 ``digest`` and return it once it
    verifies against ``roots`` (the TSA's CA certificates) with this request's nonce.

    Raises :class:`TsaUnreachableError`, :class:`TsaRefusedError` or
    :class:`TimestampInvalidError`; nothing is returned that an outsider would refuse.
    """
    nonce = secrets.randbits(63) | 1
    body = timestamp_request(digest, nonce)
    if not tsa_url.startswith(("http://", "https://")):
        raise ConfigError(f"the TSA URL must be http:// or https://, not {tsa_url!r}")
    request = urllib.request.Request(tsa_url, data=body, method="POST",
                                     headers={"Content-Type": _QUERY_TYPE,
                                              "Accept": _REPLY_TYPE})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            token = answer.read(_MAX_REPLY + 1)
            kind = answer.headers.get_content_type()
    except urllib.error.HTTPError as refusal:
        said = refusal.read(2000).decode("utf-8", "replace").strip() or "no reason given"
        refusal.close()
        raise TsaRefusedError(
            f"the TSA at {tsa_url} answered {refusal.code} ({said[:300]}) and issued no token: "
            "check the URL (it takes a POST of application/timestamp-query) or ask its operator",
            refusal.code) from refusal
    except (urllib.error.URLError, HTTPException, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        why = (f"no answer within {timeout:g} s" if isinstance(reason, TimeoutError)
               else str(reason) or type(reason).__name__)
        raise TsaUnreachableError(
            f"the TSA at {tsa_url} is unreachable ({why}): check the URL and the network, "
            "then ask again") from exc
    if len(token) > _MAX_REPLY:
        raise TimestampInvalidError(
            f"the TSA at {tsa_url} answered more than {_MAX_REPLY} bytes: not a time-stamp "
            "reply (is the URL the TSA's?)")
    if kind != _REPLY_TYPE:
        raise TimestampInvalidError(
            f"the TSA at {tsa_url} answered {kind!r}, not {_REPLY_TYPE}: is the URL the TSA's?")
    return _verified(token, digest, roots, intermediates, nonce, source=f"the TSA at {tsa_url}")


def verify_timestamp(token: bytes, digest: bytes, roots: Sequence[x509.Certificate], *,
                     intermediates: Sequence[x509.Certificate] = ()) -> Timestamp:
    """Check a kept ``token`` (a DER ``TimeStampResp``): granted, over the SHA-256 ``digest``,
    signed by a timeStamping certificate that ``roots`` vouch for (at the token's genTime).
    Raises :class:`TimestampInvalidError` saying which of these fails."""
    return _verified(token, digest, roots, intermediates, None, source="the token")


def _verified(token: bytes, digest: bytes, roots: Sequence[x509.Certificate],
              intermediates: Sequence[x509.Certificate], nonce: int | None,
              source: str) -> Timestamp:
    _check_digest(digest)
    if not roots:
        raise ConfigError("no CA certificate to check time-stamp tokens with: give the TSA's "
                          "CA (load_certificates(path))")
    try:
        response = rfc3161_client.decode_timestamp_response(token)
    except ValueError as exc:
        raise TimestampInvalidError(f"{source} is not an RFC 3161 TimeStampResp ({exc})") \
            from exc
    pki_status = response.status
    if pki_status not in (rfc3161_client.PKIStatus.GRANTED,
                          rfc3161_client.PKIStatus.GRANTED_WITH_MODS):
        text = "; ".join(response.status_string) or "no status text"
        raise TsaRefusedError(
            f"{source} holds no token: PKIStatus {_status_name(pki_status)} ({text}); the "
            "TSA refused the request", 200, pki_status)
    info = response.tst_info
    if info.message_imprint.hash_algorithm != SHA256_OID:
        raise TimestampInvalidError(
            f"{source} is over a {info.message_imprint.hash_algorithm.dotted_string} imprint, "
            "not SHA-256: it cannot be for this digest")
    builder = rfc3161_client.VerifierBuilder()
    for root in roots:
        builder = builder.add_root_certificate(root)
    for intermediate in intermediates:
        builder = builder.add_intermediate_certificate(intermediate)
    if nonce is not None:
        builder = builder.nonce(nonce)
    try:
        builder.build().verify(response, digest)
    except rfc3161_client.VerificationError as exc:
        raise TimestampInvalidError(
            f"{source} does not verify ({exc}): it is for another digest, or not signed by a "
            "time-stamping certificate of the given CA; check the digest and that the CA is "
            "the TSA's") from exc
    gen_time = info.gen_time
    if gen_time.tzinfo is None:  # GeneralizedTime in a token is UTC (RFC 3161, 2.4.2)
        gen_time = gen_time.replace(tzinfo=dt.UTC)
    return Timestamp(token, digest, gen_time, info.serial_number, info.policy.dotted_string)


def _check_digest(digest: bytes) -> None:
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise ValueError("the digest must be 32 raw bytes (a SHA-256 digest, not its hex)")


def _status_name(status: int) -> str:
    try:
        return rfc3161_client.PKIStatus(status).name
    except ValueError:
        return str(status)


# DER, only what a TimeStampReq needs (X.690): definite lengths, positive integers, one OID.

def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _integer(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(arc) for arc in dotted.split("."))
    encoded = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        encoded += bytes(reversed(chunk))
    return bytes(encoded)


class Rfc3161Timestamper:
    """A TSA reached over HTTP, its tokens checked against its CA: the
    :class:`~flamingock_es.core.ports.Timestamper` the composition root builds from a trust
    store's ``timestamp_authority`` entry."""

    def __init__(self, url: str, ca: Path, timeout: float = 10.0) -> None:
        self.url, self.ca, self.timeout = url, ca, timeout
        self._roots: list[x509.Certificate] | None = None

    @property
    def roots(self) -> list[x509.Certificate]:
        if self._roots is None:
            self._roots = load_certificates(self.ca)
        return self._roots

    def timestamp(self, digest: bytes) -> bytes:
        if not self.url:
            raise ConfigError(f"the time-stamping authority of CA {self.ca} has no url to ask")
        return request_timestamp(self.url, digest, self.roots, timeout=self.timeout).token

    def verify(self, token: bytes, digest: bytes) -> dt.datetime:
        return verify_timestamp(token, digest, self.roots).gen_time
