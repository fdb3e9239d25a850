"""A client for a transparency-log witness (c2sp.org/tlog-witness ``add-checkpoint``).

A witness is an outsider that remembers the latest checkpoint (tree size and root hash) it
cosigned for a log, and cosigns a new one only if it is consistent with that: the log proves
that its new tree extends the old one (an RFC 6962 consistency proof). A log that shows one
history to one party and another history to someone else cannot get both cosigned by the same
witness, so a cosigned checkpoint is evidence that anyone can check with the witness's public
key, without trusting us.

This module only speaks the protocol: it sends the old size, the proof and the signed
checkpoint, and hands back the cosignature lines, or raises an error that says why the witness
refused. It neither signs nor verifies notes and does no Merkle arithmetic; the caller brings a
signed checkpoint and a proof, and verifies the cosignatures with the witness's verifier key.

The request body, per the spec::

    old <size the witness last cosigned>\\n
    <base64 hash>\\n              (0 to 63 consistency proof lines; none when old is 0)
    \\n
    <signed checkpoint note>

and the answers: 200 with one or more note signature lines (``— <name> <base64>``), 409 with
the size the witness last cosigned (``text/x.tlog.size``), 400 when the old size exceeds the
checkpoint's, 403 when no signature on the checkpoint is from a key the witness trusts for its
origin, 404 for an origin it does not know (litewitness v0.6.1 answers 403 here too), and 422
when the proof does not verify, that is when the checkpoint is not an extension of what the
witness cosigned: a fork.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Sequence
from http.client import HTTPException, HTTPMessage
from typing import IO, NoReturn

from ..errors import (
    WitnessBadRequestError,
    WitnessConflictError,
    WitnessError,
    WitnessForbiddenError,
    WitnessInconsistentError,
    WitnessNotTrustedError,
    WitnessProtocolError,
    WitnessRejectedError,
    WitnessUnknownLogError,
    WitnessUnreachableError,
)

__all__ = [
    "MAX_PROOF_LINES",
    "HttpWitness",
    "WitnessBadRequestError",
    "WitnessConflictError",
    "WitnessError",
    "WitnessForbiddenError",
    "WitnessInconsistentError",
    "WitnessNotTrustedError",
    "WitnessProtocolError",
    "WitnessRejectedError",
    "WitnessUnknownLogError",
    "WitnessUnreachableError",
    "add_checkpoint_body",
    "submit",
]

MAX_PROOF_LINES = 63
"""The spec's limit on consistency proof lines: enough for any tree of up to 2**63 leaves."""

_HASH_SIZE = 32
_SIGNATURE_PREFIX = "\u2014 "  # a note signature line: an em dash, a space, name, base64
_SIZE_CONTENT_TYPE = "text/x.tlog.size"
# Enough for the few cosignature lines a witness sends (litewitness caps requests at 10 KiB);
# an answer that does not fit is not a witness's.
_MAX_ANSWER = 64 * 1024


def add_checkpoint_body(signed_checkpoint: bytes, old_size: int,
                        consistency_proof: Sequence[bytes]) -> bytes:
    """The ``add-checkpoint`` request body, after checking what a witness would refuse anyway
    (so that a programming error is a ``ValueError`` here, not a status code to decode)."""
    if isinstance(old_size, bool) or not isinstance(old_size, int) or old_size < 0:
        raise ValueError(f"old_size must be an integer >= 0, not {old_size!r}")
    if len(consistency_proof) > MAX_PROOF_LINES:
        raise ValueError(f"a consistency proof has at most {MAX_PROOF_LINES} hashes, "
                         f"not {len(consistency_proof)}")
    if old_size == 0 and consistency_proof:
        raise ValueError("old_size 0 takes no consistency proof: the empty tree is a prefix "
                         "of every tree")
    for index, node in enumerate(consistency_proof):
        if not isinstance(node, bytes) or len(node) != _HASH_SIZE:
            raise ValueError(f"consistency proof hash {index} is not {_HASH_SIZE} raw bytes "
                             f"(a SHA-256 digest, not its base64 or hex)")
    if not isinstance(signed_checkpoint, bytes) or b"\n\n" not in signed_checkpoint \
            or not signed_checkpoint.endswith(b"\n"):
        raise ValueError("signed_checkpoint must be a signed note: the checkpoint text, a "
                         "blank line and signature lines, ending in a newline")
    lines = [f"old {old_size}\n".encode()]
    lines += [base64.b64encode(node) + b"\n" for node in consistency_proof]
    return b"".join(lines) + b"\n" + signed_checkpoint


def submit(url: str, signed_checkpoint: bytes, old_size: int,
           consistency_proof: Sequence[bytes], timeout: float = 10.0) -> list[str]:
    """Ask the witness at ``url`` (its submission prefix) to cosign ``signed_checkpoint``.

    ``old_size`` is the size the witness last cosigned for this origin (0 if never: then the
    proof is empty), and ``consistency_proof`` the RFC 6962 proof, as raw 32-byte hashes, that
    the checkpoint's tree extends the tree of that size. Returns the signature lines the
    witness sent, each ``"— <name> <base64>"`` without its newline; append them to the note's
    signatures once they verify with the witness's key (this function does not verify them).

    Raises a :class:`WitnessRejectedError` subclass for each refusal the spec defines,
    :class:`WitnessUnreachableError` when nothing answers within ``timeout`` seconds, and
    :class:`WitnessProtocolError` for an answer that is not a witness's.
    """
    body = add_checkpoint_body(signed_checkpoint, old_size, consistency_proof)
    endpoint = url.rstrip("/") + "/add-checkpoint"
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"the witness URL must be http:// or https://, not {url!r}")
    request = urllib.request.Request(endpoint, data=body, method="POST",
                                     headers={"Content-Type": "text/plain; charset=utf-8"})
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            text = _read(answer, url)
    except urllib.error.HTTPError as refusal:
        _refused(url, refusal, old_size)
    except (urllib.error.URLError, HTTPException, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, TimeoutError):
            why = f"no answer within {timeout:g} s"
        else:
            why = str(reason) or type(reason).__name__
        raise WitnessUnreachableError(
            f"the witness at {url} is unreachable ({why}): nothing was cosigned; check the URL "
            "and that the witness runs, then submit the same checkpoint again", url) from exc
    return _cosignature_lines(text, url)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would arrive as a GET without its body; refuse it instead, so that
    the error names the redirect and the URL can be fixed."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int,
                         msg: str, headers: HTTPMessage,
                         newurl: str) -> urllib.request.Request | None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _read(answer: IO[bytes], url: str) -> str:
    data = answer.read(_MAX_ANSWER + 1)
    if len(data) > _MAX_ANSWER:
        raise WitnessProtocolError(
            f"the witness at {url} answered with more than {_MAX_ANSWER} bytes: not a witness's "
            "answer (is the URL its submission prefix?)", url)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WitnessProtocolError(
            f"the witness at {url} answered with bytes that are not UTF-8 ({exc}): not a "
            "witness's answer (is the URL its submission prefix?)", url) from exc


def _cosignature_lines(text: str, url: str) -> list[str]:
    if not text.endswith("\n"):
        raise WitnessProtocolError(
            f"the witness at {url} answered 200 with {text[:200]!r}, not newline-terminated "
            "signature lines: is the URL its submission prefix?", url)
    lines = text[:-1].split("\n")
    bad = [line for line in lines if not line.startswith(_SIGNATURE_PREFIX)
           or len(line.split(" ")) != 3]
    if bad:
        raise WitnessProtocolError(
            f"the witness at {url} answered 200, but {bad[0][:200]!r} is not a note signature "
            "line ('\u2014 NAME BASE64'): is the URL its submission prefix?", url)
    return lines


def _refused(url: str, refusal: urllib.error.HTTPError, old_size: int) -> NoReturn:
    status = refusal.code
    try:
        body = refusal.read(_MAX_ANSWER).decode("utf-8", "replace")
    except OSError:
        body = ""
    finally:
        refusal.close()
    said = body.strip()[:200] or "no reason given"
    if status == 409:
        size = body.strip()
        if not size.isdigit():
            raise WitnessProtocolError(
                f"the witness at {url} answered 409 Conflict without a tree size "
                f"({said!r}): not a tlog-witness answer", url)
        kind = refusal.headers.get_content_type() if refusal.headers else ""
        note = "" if kind == _SIZE_CONTENT_TYPE else f" (content type {kind!r})"
        raise WitnessConflictError(
            f"the witness at {url} last cosigned size {size} of this log, not {old_size}"
            f"{note}: submit again with old size {size} and a consistency proof from it; "
            f"if the log has fewer than {size} entries, the witness cosigned a history this "
            "log does not have: investigate before anything else", url, body, int(size))
    if status == 422:
        raise WitnessInconsistentError(
            f"the witness at {url} refused the checkpoint as inconsistent with the one it "
            f"cosigned ({said}): the consistency proof does not show that this tree extends "
            "that one. A correct proof for an append-only log always verifies, so either the "
            "proof was computed wrongly or this history forked from what the witness saw",
            url, status, body)
    if status == 404:
        raise WitnessUnknownLogError(
            f"the witness at {url} answered 404 ({said}): either it does not know this log, "
            "and its operator must register the checkpoint's origin and verifier key first, "
            "or the URL is not its submission prefix (the request goes to URL/add-checkpoint)",
            url, status, body)
    if status == 403:
        raise WitnessForbiddenError(
            f"the witness at {url} refused the checkpoint ({said}): no signature on it "
            "verifies with a key it trusts for the origin, or it does not know the origin; "
            "check that the origin and the log's verifier key are registered with the "
            "witness and that the checkpoint is signed with that key", url, status, body)
    if status == 400:
        raise WitnessBadRequestError(
            f"the witness at {url} refused the request as malformed ({said}): the old size "
            "must not exceed the checkpoint's size, and the body must be the old size line, "
            "the proof lines, a blank line and the signed checkpoint", url, status, body)
    if 300 <= status < 400:
        where = refusal.headers.get("Location", "?") if refusal.headers else "?"
        raise WitnessRejectedError(
            f"the witness at {url} redirects to {where} ({status}): a submission is never "
            "redirected, so set the witness URL to its submission prefix", url, status, body)
    raise WitnessRejectedError(
        f"the witness at {url} answered {status} ({said}) and cosigned nothing: retry later, "
        "or ask its operator", url, status, body)


class HttpWitness:
    """A witness reached over HTTP: the :class:`~flamingock_es.core.ports.Cosigner` the
    composition root builds from a trust store's witness entry."""

    def __init__(self, name: str, vkey: str, url: str, timeout: float = 10.0) -> None:
        self.name, self.vkey, self.url, self.timeout = name, vkey, url, timeout

    def cosign(self, note: bytes, old_size: int, proof: Sequence[bytes]) -> list[str]:
        return submit(self.url, note, old_size, proof, timeout=self.timeout)
