"""Signed notes, checkpoints and cosignatures, against the C2SP specifications' own examples."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flamingock_es.core.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Checkpoint,
    CosignatureSigner,
    Note,
    NoteError,
    NoteSigner,
    Signature,
    Verifier,
    cosignature_message,
    key_id,
    open_checkpoint,
    open_note,
    sign_note,
    verify_cosignature,
)

DASH = "\u2014"

# -- the specifications' and Go's examples ---------------------------------------------------------

# c2sp.org/signed-note@v1.0.0, "Verifier keys", "Example".
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n"
    "\n"
    f"{DASH} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXs"
    "YjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

# The package documentation of golang.org/x/mod/sumdb/note (v0.43.0, "Example"): a private key
# (the seed after the type byte) and the exact note Go's note.Sign makes with it. Ed25519 is
# deterministic, so the same key must give the same bytes here.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n"
    f"{DASH} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfq"
    "dngotpRZb6KE6RyyBwJnAM=\n"
)
GO_SECOND_LINE = (  # the doc's doubly-signed note adds this line, by a key it does not give
    f"{DASH} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGw"
    "nWLox33WWd1RvMc+QQ=\n"
)

# c2sp.org/tlog-checkpoint@v1.0.0 and c2sp.org/tlog-cosignature@v1.0.1: the example checkpoint,
# signed by its log and cosigned by a witness; and the cosigned message of "Ed25519 signed
# message" (whose timestamp is the one inside the witness's line).
SPEC_CHECKPOINT = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
SPEC_COSIGNED = (
    SPEC_CHECKPOINT + "\n"
    f"{DASH} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
    "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    f"{DASH} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlr"
    "DJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
SPEC_COSIGNED_MESSAGE = "cosignature/v1\ntime 1679315147\n" + SPEC_CHECKPOINT


def _go_signer() -> NoteSigner:
    name, _, seed = GO_SKEY.removeprefix("PRIVATE+KEY+").split("+", 2)
    raw = base64.b64decode(seed)
    assert raw[0] == ALG_ED25519
    return NoteSigner(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))


def test_spec_example_vkey_verifies_the_spec_example_note() -> None:
    verifier = Verifier.from_vkey(SPEC_VKEY)
    assert (verifier.name, verifier.alg) == ("example.com/foo", ALG_ED25519)
    assert verifier.key_id.hex() == "530d903a"
    assert verifier.vkey() == SPEC_VKEY
    opened = open_note(SPEC_NOTE, [verifier])
    assert opened.text == "This is an example message.\n"
    assert [v.verifier for v in opened.verified] == [verifier]
    assert opened.verified[0].timestamp is None
    with pytest.raises(NoteError, match="bad"):
        open_note(SPEC_NOTE.replace("example message", "example massage"), [verifier])


def test_go_documentation_key_signs_the_same_bytes_as_go() -> None:
    signer = _go_signer()
    assert signer.vkey == GO_VKEY
    assert sign_note(GO_TEXT, [signer]) == GO_NOTE
    assert open_note(GO_NOTE, [Verifier.from_vkey(GO_VKEY)]).text == GO_TEXT
    doubly = GO_NOTE + GO_SECOND_LINE  # EnochRoot is unknown here: ignored, not refused
    opened = open_note(doubly, [Verifier.from_vkey(GO_VKEY)])
    assert [s.name for s in opened.unknown] == ["EnochRoot"]


def test_spec_checkpoint_and_cosignature_example() -> None:
    note = Note.parse(SPEC_COSIGNED)
    assert note.text == SPEC_CHECKPOINT
    assert str(note) == SPEC_COSIGNED
    checkpoint = Checkpoint.parse(note.text)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.body() == SPEC_CHECKPOINT
    log, witness = note.signatures
    assert (log.name, len(log.signature)) == ("example.com/behind-the-sofa", 64)
    # tlog-cosignature "Format": key ID, then timestamped_signature (u64 BE time || 64 bytes)
    assert witness.name == "witness.example.com/w1"
    assert len(witness.signature) == 8 + 64
    assert int.from_bytes(witness.signature[:8], "big") == 1679315147
    assert cosignature_message(SPEC_CHECKPOINT, 1679315147) == SPEC_COSIGNED_MESSAGE.encode()


# -- checkpoints -----------------------------------------------------------------------------------


def test_checkpoint_body_is_exactly_the_spec_text() -> None:
    root = hashlib.sha256(b"root").digest()
    checkpoint = Checkpoint("example.org/log", 7, root)
    b64 = base64.b64encode(root).decode()
    assert checkpoint.body() == f"example.org/log\n7\n{b64}\n"
    assert Checkpoint.parse(checkpoint.body()) == checkpoint
    extended = Checkpoint("example.org/log", 0, root, ("ext one", "two"))
    assert extended.body() == f"example.org/log\n0\n{b64}\next one\ntwo\n"
    assert Checkpoint.parse(extended.body()) == extended


ROOT64 = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize("body", [
    "",
    "\n",
    "origin\n7\n",  # two lines
    f"origin\n7\n{ROOT64}",  # no final newline
    f"\n7\n{ROOT64}\n",  # empty origin
    f"origin\n\n{ROOT64}\n",
    f"origin\n07\n{ROOT64}\n",  # leading zero
    f"origin\n+7\n{ROOT64}\n",
    f"origin\n-7\n{ROOT64}\n",
    f"origin\n 7\n{ROOT64}\n",
    f"origin\n7 \n{ROOT64}\n",
    f"origin\n1_0\n{ROOT64}\n",
    f"origin\n\u0661\n{ROOT64}\n",  # an Arabic-Indic digit: int() takes it, the spec does not
    f"origin\n{2**63}\n{ROOT64}\n",
    f"origin\n0x10\n{ROOT64}\n",
    "origin\n7\nAAAA\n",  # not 32 bytes
    f"origin\n7\n{ROOT64[:-1]}\n",  # unpadded
    f"origin\n7\n{ROOT64[:-2]}B=\n",  # non-canonical: spare bits set
    f"origin\n7\n{ROOT64.replace('A', '-')}\n",  # URL-safe alphabet
    f"origin\n7\n{ROOT64}\n\n",  # an empty extension line
    f"origin\n7\n{ROOT64}\next\n\nmore\n",
    f"origin\r\n7\n{ROOT64}\n",
    f"ori\tgin\n7\n{ROOT64}\n",
])
def test_checkpoint_parse_refuses_anything_malformed(body: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(body)


@pytest.mark.parametrize(("origin", "size", "root", "extensions"), [
    ("", 1, bytes(32), ()),
    ("a\nb", 1, bytes(32), ()),
    ("o", -1, bytes(32), ()),
    ("o", 2**63, bytes(32), ()),
    ("o", True, bytes(32), ()),
    ("o", 1, bytes(31), ()),
    ("o", 1, bytes(32), ("",)),
    ("o", 1, bytes(32), ("a\nb",)),
])
def test_checkpoint_refuses_bad_fields(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    with pytest.raises(NoteError):
        Checkpoint(origin, size, root, extensions)


# -- keys ------------------------------------------------------------------------------------------


def test_key_id_is_the_spec_hash_and_depends_on_the_type() -> None:
    key = Ed25519PrivateKey.generate()
    signer = NoteSigner("example.org/log", key)
    public = signer.verifier.public_key
    want = hashlib.sha256(b"example.org/log\n\x01" + public).digest()[:4]
    assert signer.verifier.key_id == key_id("example.org/log", ALG_ED25519, public) == want
    witness = CosignatureSigner("example.org/log", key)
    assert witness.verifier.key_id == hashlib.sha256(b"example.org/log\n\x04" + public).digest()[:4]
    assert witness.verifier.key_id != signer.verifier.key_id
    assert signer.vkey == f"example.org/log+{want.hex()}+" + base64.b64encode(
        b"\x01" + public
    ).decode()
    assert Verifier.from_vkey(witness.vkey).alg == ALG_COSIGNATURE_V1


@pytest.mark.parametrize("vkey", [
    "",
    "example.com/foo",
    "example.com/foo+530d903a",
    "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong key ID
    "example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # not lowercase
    "example.com/foo+530d903+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "example.com/fo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # another name
    "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U",  # short key
    "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k!",
    "+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "exa mple+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
])
def test_vkey_refuses_anything_malformed(vkey: str) -> None:
    with pytest.raises(NoteError):
        Verifier.from_vkey(vkey)


def test_vkey_of_an_unsupported_type_is_refused() -> None:
    public = bytes(32)
    ecdsa = f"x+{key_id('x', 0x02, public).hex()}+" + base64.b64encode(b"\x02" + public).decode()
    with pytest.raises(NoteError, match="not supported"):
        Verifier.from_vkey(ecdsa)


@pytest.mark.parametrize(
    "name", ["", "a b", "a+b", "a\u00a0b", "a\u2003b", "a\u3000b", "a\tb", "a\nb", "a\udc80b"]
)
def test_key_names_refuse_spaces_and_plus(name: str) -> None:
    with pytest.raises(NoteError, match="key name"):
        NoteSigner(name, Ed25519PrivateKey.generate())


# -- signing and opening notes ---------------------------------------------------------------------


def _signer(name: str = "example.org/log") -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.generate())


def test_sign_and_open_with_several_signatures() -> None:
    one, two, three = _signer("a.example/log"), _signer("b.example/log"), _signer("c.example")
    note = sign_note("hello\n\nworld\n", [one, two, three])
    assert note.startswith("hello\n\nworld\n\n" + DASH + " a.example/log ")
    opened = open_note(note, [one.verifier, three.verifier])
    assert opened.text == "hello\n\nworld\n"  # the text may hold blank lines
    assert [v.verifier.name for v in opened.verified] == ["a.example/log", "c.example"]
    assert [s.name for s in opened.unknown] == ["b.example/log"]
    assert open_note(note.encode(), [two.verifier]).text == "hello\n\nworld\n"


def test_a_text_ending_in_a_blank_line_round_trips() -> None:
    signer = _signer()
    assert open_note(sign_note("a\n\n", [signer]), [signer.verifier]).text == "a\n\n"


def test_unknown_keys_are_ignored_even_sharing_a_name_or_a_key_id() -> None:
    signer, other = _signer("example.org/log"), _signer("example.org/log")  # same name
    note = sign_note("text\n", [signer])
    with pytest.raises(NoteError, match="known key"):
        open_note(note, [other.verifier])
    # a key ID like the known one under another name is another key too
    line = Note.parse(note).signatures[0]
    renamed = str(Note("text\n", (Signature("impostor.example", line.key_id, line.signature),)))
    with pytest.raises(NoteError, match="known key"):
        open_note(renamed, [signer.verifier])
    both = sign_note("text\n", [other, signer])
    assert len(open_note(both, [signer.verifier]).unknown) == 1


def test_a_bad_signature_from_a_known_key_rejects_the_whole_note() -> None:
    signer, good = _signer("a.example"), _signer("b.example")
    note = Note.parse(sign_note("text\n", [signer, good]))
    forged = Signature(signer.name, signer.verifier.key_id, bytes(64))
    tampered = str(Note(note.text, (forged, note.signatures[1])))
    with pytest.raises(NoteError, match="bad"):
        open_note(tampered, [signer.verifier, good.verifier])
    short = str(Note(note.text, (Signature(signer.name, signer.verifier.key_id, b"x"),)))
    with pytest.raises(NoteError, match="bad"):
        open_note(short, [signer.verifier])
    with pytest.raises(NoteError, match="bad"):  # another text under the same signature
        open_note(str(Note("other\n", note.signatures)), [signer.verifier])


def test_a_signature_by_another_key_is_refused() -> None:
    with pytest.raises(NoteError, match="known key"):
        open_note(sign_note("text\n", [_signer()]), [_signer().verifier])


GOOD = sign_note("text\n", [NoteSigner("k", Ed25519PrivateKey.from_private_bytes(bytes(32)))])
GOOD_LINE = GOOD.split("\n\n")[1]


@pytest.mark.parametrize("message", [
    "",
    "text\n",
    "text\n\n",  # no signature
    "text\n" + GOOD_LINE,  # no blank line
    "text\n\n" + GOOD_LINE[:-1],  # no final newline
    "text\n\n" + GOOD_LINE.replace(DASH, "-"),
    "text\n\n" + GOOD_LINE.replace(DASH, "--"),
    "text\n\n" + GOOD_LINE.replace(DASH + " ", DASH),
    "text\n\n" + GOOD_LINE.replace(" ", "  ", 2),
    "text\n\n" + GOOD_LINE.replace("\n", " \n"),
    "text\n\n" + GOOD_LINE.replace("\n", "\r\n"),
    "text\n\n" + GOOD_LINE + "\n",  # a blank line after the signatures
    "text\n\n" + GOOD_LINE + "trailing\n",
    "te\x01xt\n\n" + GOOD_LINE,  # a control character
    "te\txt\n\n" + GOOD_LINE,
    "text\n\n" + DASH + " k AAAA\n",  # a signature of only 3 bytes
    "text\n\n" + DASH + " k AAAAAA==\n",  # 4 bytes: a key ID and nothing signed
    "text\n\n" + DASH + " k !!!!\n",
    "text\n\n" + DASH + " k\n",
    "text\n\n" + DASH + "  AAAAAAAA\n",
    "text\n\n" + DASH + " k+1 AAAAAAAA\n",
    "text\n\n" + GOOD_LINE * 101,
])
def test_malformed_notes_are_refused(message: str) -> None:
    verifier = Verifier.from_vkey(NoteSigner(
        "k", Ed25519PrivateKey.from_private_bytes(bytes(32))).vkey)
    assert open_note(GOOD, [verifier]).text == "text\n"
    with pytest.raises(NoteError):
        open_note(message, [verifier])


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        Note.parse(b"caf\xe9\n\n" + GOOD_LINE.encode())
    with pytest.raises(NoteError, match="UTF-8"):
        Note.parse("caf\udce9\n\n" + GOOD_LINE)


def test_up_to_100_signatures_are_accepted() -> None:
    signers = [_signer(f"s{i}.example") for i in range(100)]
    note = sign_note("many\n", signers)
    assert len(open_note(note, [signers[99].verifier]).unknown) == 99


def test_signing_refuses_a_text_that_cannot_be_a_note() -> None:
    for text in ("no newline", "tab\there\n", ""):
        with pytest.raises(NoteError):
            sign_note(text, [_signer()])
    with pytest.raises(NoteError, match="at least one"):
        sign_note("text\n", [])


class _CollidingId(Verifier):
    """Keys whose IDs collide (a 32-bit key ID can): known together, they are ambiguous."""

    @property
    def key_id(self) -> bytes:
        return b"\x00\x00\x00\x00"


def test_two_known_keys_with_one_name_and_key_id_are_refused() -> None:
    one = _CollidingId("k", ALG_ED25519, _signer().verifier.public_key)
    two = _CollidingId("k", ALG_ED25519, _signer().verifier.public_key)
    with pytest.raises(NoteError, match="two keys"):
        open_note(GOOD, [one, two])


def test_open_checkpoint_parses_and_checks_the_origin() -> None:
    signer = _signer("example.org/log")
    checkpoint = Checkpoint("example.org/log", 3, bytes(32))
    note = sign_note(checkpoint.body(), [signer])
    assert open_checkpoint(note, [signer.verifier]) == checkpoint
    assert open_checkpoint(note, [signer.verifier], origin="example.org/log") == checkpoint
    with pytest.raises(NoteError, match=r"not .example\.org/other."):
        open_checkpoint(note, [signer.verifier], origin="example.org/other")
    with pytest.raises(NoteError, match="three"):
        open_checkpoint(sign_note("not a checkpoint\n", [signer]), [signer.verifier])


# -- cosignatures ----------------------------------------------------------------------------------


def _cosigned(timestamp: int = 1_700_000_000) -> tuple[str, NoteSigner, CosignatureSigner]:
    log = _signer("example.org/log")
    witness = CosignatureSigner("witness.example/w1", Ed25519PrivateKey.generate())
    checkpoint = Checkpoint("example.org/log", 42, hashlib.sha256(b"42").digest(), ("ext",))
    note = Note.parse(sign_note(checkpoint.body(), [log]))
    return str(note.with_signatures([witness.cosign(checkpoint, timestamp)])), log, witness


def test_a_cosignature_verifies_and_gives_its_time() -> None:
    note, log, witness = _cosigned()
    assert verify_cosignature(note, witness.vkey) == 1_700_000_000
    assert verify_cosignature(note, witness.verifier) == 1_700_000_000
    opened = open_note(note, [log.verifier, witness.verifier])
    assert [v.timestamp for v in opened.verified] == [None, 1_700_000_000]
    line = Note.parse(note).signatures[1]
    assert line.key_id == witness.verifier.key_id
    assert line.signature[:8] == (1_700_000_000).to_bytes(8, "big")
    assert len(line.signature) == 72


def test_the_cosigned_message_includes_extension_lines() -> None:
    witness = CosignatureSigner("w", Ed25519PrivateKey.generate())
    plain = Checkpoint("o", 1, bytes(32))
    extended = Checkpoint("o", 1, bytes(32), ("ext",))
    line = witness.cosign(extended, 5)
    note = str(Note(extended.body(), (line,)))
    assert verify_cosignature(note, witness.verifier) == 5
    with pytest.raises(NoteError, match="bad"):
        verify_cosignature(str(Note(plain.body(), (line,))), witness.verifier)


def test_a_tampered_cosignature_is_refused() -> None:
    note, _, witness = _cosigned()
    parsed = Note.parse(note)
    log_line, line = parsed.signatures
    stamp = (1_700_000_001).to_bytes(8, "big")
    later = Signature(line.name, line.key_id, stamp + line.signature[8:])
    for bad in (later, Signature(line.name, line.key_id, line.signature[:-1])):
        with pytest.raises(NoteError, match="bad"):
            verify_cosignature(str(Note(parsed.text, (log_line, bad))), witness.verifier)
    other = Checkpoint("example.org/log", 43, hashlib.sha256(b"42").digest(), ("ext",))
    with pytest.raises(NoteError, match="bad"):
        verify_cosignature(str(Note(other.body(), parsed.signatures)), witness.verifier)
    huge = Signature(line.name, line.key_id, (2**63).to_bytes(8, "big") + line.signature[8:])
    with pytest.raises(NoteError, match="bad"):
        verify_cosignature(str(Note(parsed.text, (huge,))), witness.verifier)


def test_a_cosignature_needs_a_cosigner_key_and_a_checkpoint() -> None:
    note, log, witness = _cosigned()
    with pytest.raises(NoteError, match="0x04"):
        verify_cosignature(note, log.verifier)
    # the same key as a plain note key has another key ID: the cosignature line is not its
    plain = Verifier(witness.name, ALG_ED25519, witness.verifier.public_key)
    with pytest.raises(NoteError, match="known key"):
        open_note(str(Note(Note.parse(note).text, Note.parse(note).signatures[1:])), [plain])
    stranger = CosignatureSigner("witness.example/w1", Ed25519PrivateKey.generate())
    with pytest.raises(NoteError, match="known key"):
        verify_cosignature(note, stranger.verifier)
    key = Ed25519PrivateKey.generate()
    cosigner = CosignatureSigner("w", key)
    stamped = (7).to_bytes(8, "big") + key.sign(cosignature_message("just text\n", 7))
    line = Signature("w", cosigner.verifier.key_id, stamped)
    assert open_note(str(Note("just text\n", (line,))), [cosigner.verifier]).verified
    with pytest.raises(NoteError, match="three"):
        verify_cosignature(str(Note("just text\n", (line,))), cosigner.verifier)


def test_cosignature_timestamps_are_bounded() -> None:
    for bad in (-1, 2**63, True):
        with pytest.raises(NoteError, match="timestamp"):
            cosignature_message(SPEC_CHECKPOINT, bad)
    assert cosignature_message(SPEC_CHECKPOINT, 0).startswith(b"cosignature/v1\ntime 0\n")
