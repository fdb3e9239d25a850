"""Signed tree heads in the C2SP formats, so any signed-note tool can check what a runner signed.

Three specifications, each followed to the letter (section names quoted in the code):

* c2sp.org/signed-note (v1.0.0): a text ending in a newline, a blank line, then one or more
  lines ``— <key name> <base64(key ID || signature)>``. A key is named, identified by a 4-byte
  key ID, and shared as a *vkey* ``<name>+<hex key ID>+<base64(type || public key)>``; Go's
  ``golang.org/x/mod/sumdb/note`` reads both.
* c2sp.org/tlog-checkpoint (v1.0.0): the note text of a tree head: origin, decimal size and
  base64 root hash lines, then optional extension lines (``Checkpoint``).
* c2sp.org/tlog-cosignature (v1.0.1, the Ed25519 "cosignature/v1" type 0x04): a witness's
  timestamped signature over a checkpoint, a line in the same note.

Only Ed25519 (type 0x01) note signatures and Ed25519 cosignatures (type 0x04) are supported;
lines from other key types are left alone, as the signed-note spec requires of unknown keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "Checkpoint",
    "CosignatureSigner",
    "Note",
    "NoteError",
    "NoteSigner",
    "OpenedNote",
    "Signature",
    "VerifiedSignature",
    "Verifier",
    "cosignature_message",
    "key_id",
    "open_checkpoint",
    "open_note",
    "sign_note",
    "verify_cosignature",
]

ALG_ED25519 = 0x01
"""signed-note "Signature types": Ed25519 note signatures."""

ALG_COSIGNATURE_V1 = 0x04
"""signed-note "Signature types": timestamped Ed25519 cosignatures (tlog-cosignature)."""

MAX_SIGNATURES = 100
"""signed-note "Format": verifiers SHOULD cap signatures and MUST accept 16; Go caps at 100."""

_DASH = "\u2014 "  # signed-note "Format": em dash (U+2014), space (U+0020)
_MAX_TIMESTAMP = 2**63 - 1  # tlog-cosignature "Format": the timestamp MUST NOT exceed 2^63 - 1
_MAX_SIZE = 2**63 - 1  # the tree size as the Go tools hold it (int64)
_DECIMAL = re.compile(r"0|[1-9][0-9]*")  # no leading zeroes, ASCII digits only
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")  # signed-note "Conventions": fixed-length lowercase hex


class NoteError(ValueError):
    """A note, checkpoint, key or signature that is malformed or does not verify."""


# -- building blocks -------------------------------------------------------------------------------


def _b64decode(text: str, what: str) -> bytes:
    """Standard base64 (RFC 4648 section 4) with padding, nothing outside the alphabet."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what} is not base64") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_name(name: str) -> str:
    """signed-note "Format": key names are non-empty, with no Unicode space and no plus."""
    if (
        not isinstance(name, str)
        or not name
        or "+" in name
        or any(ch.isspace() or ch < " " or "\ud800" <= ch <= "\udfff" for ch in name)
    ):
        raise NoteError(f"{name!r} is not a valid key name")
    return name


def _check_text(text: str) -> bytes:
    """signed-note "Format": UTF-8, no ASCII control character but newline; a note text ends
    in a newline."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise NoteError("a note text ends with a newline")
    if any(ch < " " and ch != "\n" for ch in text):
        raise NoteError("a note holds no control character other than newline")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("a note is valid UTF-8") from None


def key_id(name: str, alg: int, public_key: bytes) -> bytes:
    """The 4-byte key ID: ``SHA-256(name || 0x0A || type || public key)[:4]``.

    signed-note "Signatures" RECOMMENDS it ("Ed25519 signatures": type 0x01), and
    tlog-cosignature "Format" REQUIRES it for Ed25519 cosigners, with type 0x04.
    """
    digest = hashlib.sha256(_check_name(name).encode() + b"\n" + bytes([alg]) + public_key)
    return digest.digest()[:4]


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# -- checkpoints (tlog-checkpoint "Note text") -----------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head as tlog-checkpoint's note text: origin, size, root, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        lines = (self.origin, *self.extensions)
        if not self.origin:
            raise NoteError("a checkpoint's origin is non-empty")
        if any(not line or any(ch < " " for ch in line) for line in lines):
            raise NoteError("checkpoint lines are non-empty, with no control character")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError("a checkpoint's size is an integer")
        if not 0 <= self.size <= _MAX_SIZE:
            raise NoteError(f"a checkpoint's size is in [0, 2^63): {self.size}")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != 32:
            raise NoteError("a checkpoint's root hash is 32 bytes (SHA-256)")
        if not isinstance(self.extensions, tuple):
            raise NoteError("a checkpoint's extensions are a tuple of lines")

    def body(self) -> str:
        """The note text: every line, extension lines included, ends in a newline."""
        lines = [self.origin, str(self.size), _b64(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """The checkpoint whose note text is ``body``; ``NoteError`` for anything else.

        tlog-checkpoint "Note text": at least three non-empty lines; the size is ASCII
        decimal with no leading zero; the root is the base64 of a 32-byte hash. Base64 that
        would re-encode differently is refused too, so a checkpoint has one text only.
        """
        _check_text(body)
        lines = body[:-1].split("\n")
        if len(lines) < 3 or not all(lines):
            raise NoteError("a checkpoint is at least three non-empty lines")
        origin, size, root, *extensions = lines
        if not _DECIMAL.fullmatch(size):
            raise NoteError(f"a checkpoint's size is decimal without leading zeroes: {size!r}")
        root_hash = _b64decode(root, "a checkpoint's root hash")
        if len(root_hash) != 32 or _b64(root_hash) != root:
            raise NoteError("a checkpoint's root hash is the base64 of 32 bytes")
        return cls(origin, int(size), root_hash, tuple(extensions))


# -- keys ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verifier:
    """A public key that may sign notes: a key name, a signature type and the key itself."""

    name: str
    alg: int
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.alg not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise NoteError(f"signature type {self.alg:#04x} is not supported here")
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise NoteError("an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.alg, self.public_key)

    def vkey(self) -> str:
        """signed-note "Verifier keys": ``<name>+<hex key ID>+<base64(type || key)>``."""
        key = _b64(bytes([self.alg]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{key}"

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """The key a vkey names; its key ID must be the one computed from name and key."""
        name, _, rest = vkey.partition("+")
        hex_id, _, key = rest.partition("+")
        if not _KEY_ID_HEX.fullmatch(hex_id) or not key:
            raise NoteError(f"{vkey!r} is not <name>+<8 hex digits>+<base64 key>")
        material = _b64decode(key, "a vkey's key")
        if len(material) < 2:
            raise NoteError("a vkey's key is a type byte and a public key")
        verifier = cls(name, material[0], material[1:])
        if verifier.key_id.hex() != hex_id:
            raise NoteError(f"{vkey!r}: the key ID does not match the name and key")
        return verifier

    def _verify(self, text: bytes, signature: bytes) -> int | None:
        """Whether ``signature`` (the bytes after the key ID) signs ``text``: ``None`` if not;
        else the cosignature's timestamp, or -1 for a plain note signature."""
        public_key = Ed25519PublicKey.from_public_bytes(self.public_key)
        timestamp = -1
        if self.alg == ALG_COSIGNATURE_V1:
            # tlog-cosignature "Format": timestamped_signature = u64 timestamp || 64 bytes
            if len(signature) != 8 + 64:
                return None
            timestamp = int.from_bytes(signature[:8], "big")
            if timestamp > _MAX_TIMESTAMP:
                return None
            text = cosignature_message(text.decode("utf-8"), timestamp)
            signature = signature[8:]
        elif len(signature) != 64:
            return None
        try:
            public_key.verify(signature, text)
        except InvalidSignature:
            return None
        return timestamp


class NoteSigner:
    """An Ed25519 key that signs notes under a key name (signed-note "Ed25519 signatures")."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.verifier = Verifier(name, ALG_ED25519, _raw(private_key.public_key()))

    @property
    def name(self) -> str:
        return self.verifier.name

    @property
    def vkey(self) -> str:
        return self.verifier.vkey()

    def sign(self, text: str) -> Signature:
        """The signature line for ``text``: Ed25519 (RFC 8032) over the note text."""
        return Signature(self.name, self.verifier.key_id, self._key.sign(_check_text(text)))


class CosignatureSigner:
    """A witness's Ed25519 key, cosigning checkpoints (tlog-cosignature, type 0x04).

    tlog-cosignature "Ed25519 signed message": the message does not name the cosigner, so a
    key MUST serve one cosigner name only.
    """

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.verifier = Verifier(name, ALG_COSIGNATURE_V1, _raw(private_key.public_key()))

    @property
    def name(self) -> str:
        return self.verifier.name

    @property
    def vkey(self) -> str:
        return self.verifier.vkey()

    def cosign(self, checkpoint: Checkpoint, timestamp: int) -> Signature:
        """The cosignature line for ``checkpoint`` as of POSIX time ``timestamp``."""
        message = cosignature_message(checkpoint.body(), timestamp)
        stamped = timestamp.to_bytes(8, "big") + self._key.sign(message)
        return Signature(self.name, self.verifier.key_id, stamped)


def cosignature_message(body: str, timestamp: int) -> bytes:
    """What an Ed25519 cosigner signs (tlog-cosignature "Ed25519 signed message").

    The header line ``cosignature/v1``, the line ``time <timestamp>`` and the whole note text
    of the checkpoint, extension lines included.
    """
    if isinstance(timestamp, bool) or not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise NoteError(f"a cosignature's timestamp is in [0, 2^63): {timestamp}")
    return f"cosignature/v1\ntime {timestamp}\n".encode() + _check_text(body)


# -- notes -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """One signature line: the key name, the 4-byte key ID, and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """signed-note "Signatures": ``— <key name> base64(32-bit key ID || signature)``."""
        return f"{_DASH}{self.name} {_b64(self.key_id + self.signature)}\n"

    @classmethod
    def parse_line(cls, line: str) -> Signature:
        """The signature on one line (without its newline); ``NoteError`` if malformed."""
        if not line.startswith(_DASH):
            raise NoteError("a signature line starts with an em dash and a space")
        name, _, encoded = line[len(_DASH) :].partition(" ")
        _check_name(name)
        raw = _b64decode(encoded, "a signature")
        if len(raw) < 5:
            raise NoteError("a signature is a 4-byte key ID and at least one byte")
        return cls(name, raw[:4], raw[4:])


@dataclass(frozen=True)
class Note:
    """A signed note, parsed but not verified: its text and its signature lines."""

    text: str
    signatures: tuple[Signature, ...]

    @classmethod
    def parse(cls, message: str | bytes) -> Note:
        """Split a signed note at its last blank line (signed-note "Format").

        Refuses invalid UTF-8, control characters other than newline, a missing blank line, no
        signature, a malformed signature line, and more than ``MAX_SIGNATURES`` lines.
        """
        if isinstance(message, bytes):
            try:
                message = message.decode("utf-8")
            except UnicodeDecodeError:
                raise NoteError("a note is valid UTF-8") from None
        _check_text(message)
        split = message.rfind("\n\n")
        if split < 0:
            raise NoteError("a signed note has a blank line before its signatures")
        text, block = message[: split + 1], message[split + 2 :]
        lines = block[:-1].split("\n") if block else []
        if not lines:
            raise NoteError("a signed note has at least one signature")
        if len(lines) > MAX_SIGNATURES:
            raise NoteError(f"a note may carry at most {MAX_SIGNATURES} signatures")
        return cls(text, tuple(Signature.parse_line(line) for line in lines))

    def __str__(self) -> str:
        return self.text + "\n" + "".join(signature.line() for signature in self.signatures)

    def with_signatures(self, signatures: Iterable[Signature]) -> Note:
        """The same note with ``signatures`` added after its own (a witness's, say)."""
        return Note(self.text, (*self.signatures, *signatures))


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """``text`` signed by each of ``signers``, as the note's wire text."""
    if not signers:
        raise NoteError("a signed note has at least one signature")
    return str(Note(text, tuple(signer.sign(text) for signer in signers)))


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature that verified: by whom, and for a cosignature, as of when."""

    verifier: Verifier
    timestamp: int | None


@dataclass(frozen=True)
class OpenedNote:
    """A note whose text a trusted key vouches for, and the lines no known key made."""

    text: str
    verified: tuple[VerifiedSignature, ...]
    unknown: tuple[Signature, ...]


def open_note(message: str | bytes, verifiers: Iterable[Verifier]) -> OpenedNote:
    """The note's text, if at least one of ``verifiers`` signed it; else ``NoteError``.

    signed-note "Signatures": a line whose (name, key ID) pair matches no known key is
    ignored, even if it shares one of the two with a known key; a line from a known key
    MUST verify, and any that does not rejects the whole note (the spec's SHOULD, and Go's
    behaviour); a note with no verified signature is rejected.
    """
    note = Note.parse(message)
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_id)
        if known.setdefault(slot, verifier) != verifier:
            raise NoteError(f"two keys are known as {verifier.name}+{verifier.key_id.hex()}")
    text = note.text.encode("utf-8")
    verified: list[VerifiedSignature] = []
    unknown: list[Signature] = []
    for signature in note.signatures:
        match = known.get((signature.name, signature.key_id))
        if match is None:
            unknown.append(signature)
            continue
        timestamp = match._verify(text, signature.signature)
        if timestamp is None:
            raise NoteError(f"the signature by {signature.name}+{signature.key_id.hex()} is bad")
        verified.append(VerifiedSignature(match, None if timestamp < 0 else timestamp))
    if not verified:
        raise NoteError("no signature on the note is by a known key")
    return OpenedNote(note.text, tuple(verified), tuple(unknown))


def open_checkpoint(
    message: str | bytes, verifiers: Iterable[Verifier], origin: str | None = None
) -> Checkpoint:
    """The checkpoint a known key signed (and of ``origin``, when given); else ``NoteError``."""
    checkpoint = Checkpoint.parse(open_note(message, verifiers).text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"the checkpoint is of {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def verify_cosignature(message: str | bytes, witness: Verifier | str) -> int:
    """The timestamp of ``witness``'s valid cosignature on the checkpoint note ``message``.

    ``witness`` is a type 0x04 key (or its vkey). Raises ``NoteError`` if the witness did not
    cosign, its cosignature is bad, or the note text is not a checkpoint. Other lines, the
    log's own signature included, are not checked here: open the note with the log's key too.
    """
    if isinstance(witness, str):
        witness = Verifier.from_vkey(witness)
    if witness.alg != ALG_COSIGNATURE_V1:
        raise NoteError("a cosigner's key has signature type 0x04")
    opened = open_note(message, [witness])
    Checkpoint.parse(opened.text)
    timestamp = opened.verified[0].timestamp
    assert timestamp is not None  # a type 0x04 key verified it
    return timestamp
