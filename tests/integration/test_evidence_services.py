"""Runners' checkpoints against a real witness (litewitness) and a real TSA (openssl ts): a
run's checkpoint is cosigned and time-stamped, the next one cosigned with a consistency
proof, `verify` enforces the witness policy, an outsider checks the token with `openssl ts
-verify`, and a forked history (a second log under the same origin and key) is refused by
the witness, so `verify` refuses its head."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from flamingock_es.core.note import ALG_ED25519, Verifier
from tests.e2e.conftest import Project, ok

from .test_timestamp import TSA, _start_tsa
from .test_witness import _run, witness  # noqa: F401  (the module's witness fixture)
from .test_witness import _Witness as Witness

ORIGIN_PREFIX = "flamingock-es.test/evidence"


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    state = tmp_path_factory.mktemp("tsa")
    process, url = _start_tsa(state)
    try:
        yield url, state / "ca.pem"
    finally:
        process.terminate()
        process.communicate(timeout=10)  # reaps it and closes its pipes


def _project(path: Path, origin: str, service: Witness, tsa: tuple[str, Path],
             keys_from: Path | None = None) -> Project:
    project = Project(path)
    path.mkdir()
    ok(project.cli("init", "."))
    if keys_from is not None:  # the same runner key: a second history under one identity
        for name in (".flamingock/keys/runner.key", "trust/runner.pub"):
            shutil.copy(keys_from / name, path / name)
    url, ca = tsa
    with (path / "trust" / "trust.yaml").open("a") as out:
        out.write(f"- origin: {origin}\n- witness: {service.vkey}\n  url: {service.url}\n"
                  f"- require_cosignatures: 1\n- timestamp_authority: {url}\n  ca: {ca}\n")
    return project


def _note_vkey(project: Path, origin: str) -> str:
    public = serialization.load_pem_public_key((project / "trust" / "runner.pub").read_bytes())
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Verifier(origin, ALG_ED25519, raw).vkey()


def _more(project: Project, name: str, order: int) -> None:
    (project.path / "changes" / f"u{order:03d}_{name}.yaml").write_text(
        (project.path / "changes" / "u002_hello.yaml").read_text()
        .replace("hello-yaml", name).replace("order: 2", f"order: {order}"))


def test_checkpoints_are_cosigned_time_stamped_and_a_fork_is_refused(
        witness: Witness, tsa: tuple[str, Path], tmp_path: Path) -> None:  # noqa: F811
    origin = f"{ORIGIN_PREFIX}/{tmp_path.name}"
    shop = _project(tmp_path / "shop", origin, witness, tsa)
    _run(witness.env, "witness-add-log", origin, _note_vkey(shop.path, origin))

    ok(shop.cli("run"))
    _more(shop, "more", 3)
    ok(shop.cli("run"))  # cosigned again: with a consistency proof from the first size
    verified = ok(shop.cli("verify")).stdout
    assert "(RFC 3161, checked); cosigned by 1 witness(es)" in verified
    assert verified.rstrip().endswith("chain intact")

    # verify checks the head's token against the trust store's TSA CA: another CA refuses it.
    other = tmp_path / "other-tsa"
    subprocess.run([str(TSA), "init", str(other)], check=True, capture_output=True, timeout=120)
    store = shop.path / "trust" / "trust.yaml"
    pinned = store.read_text()
    store.write_text(pinned.replace(f"ca: {tsa[1]}", f"ca: {other / 'ca.pem'}"))
    refused = ok(shop.cli("verify"), 4).stdout
    assert "carries an RFC 3161 token that does not verify against the trust store's TSA" \
        in refused
    store.write_text(pinned)

    evidence = tmp_path / "evidence.zip"
    ok(shop.cli("evidence", "-o", str(evidence)))
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(evidence).extractall(unpacked)
    tokens = sorted((unpacked / "checkpoints").glob("*.tsr"))
    assert len(tokens) == 2
    for token in tokens:  # as an outsider checks it: OpenSSL's own verifier
        note = token.with_suffix(".note")
        done = subprocess.run(["openssl", "ts", "-verify", "-data", str(note), "-in",
                               str(token), "-CAfile", str(unpacked / "tsa" / "ca.pem")],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert "Verification: OK" in done.stdout
    checked = ok(shop.cli("verify-proof", str(evidence))).stdout
    assert "1 witness cosignature(s)" in checked
    assert "time-stamped" in checked

    # Another history under the same origin and key: the witness saw the first one.
    fork = _project(tmp_path / "fork", origin, witness, tsa, keys_from=shop.path)
    (fork.path / "flamingock.yaml").write_text(
        (fork.path / "flamingock.yaml").read_text().replace("namespace: fork",
                                                            "namespace: shop"))
    (fork.path / "trust" / "trust.yaml").write_text(
        (fork.path / "trust" / "trust.yaml").read_text().replace("- fork", "- shop"))
    _more(fork, "other", 3)
    _more(fork, "and-more", 4)
    ran = ok(fork.cli("run"))
    assert "did not cosign" in ran.stderr  # refused (a fork), the run itself goes on
    refused = ok(fork.cli("verify"), 4).stdout
    assert "has 0 valid witness cosignature(s); the trust policy requires 1" in refused
