"""``couchbase-document``: upsert, patch or delete Couchbase documents, by key.

```yaml
template: couchbase-document
apply:
  action: patch                      # upsert | patch | delete
  key_range: {prefix: "user::", start: 1, end: 500}   # or keys: [user::1, user::2]
  set: {"prefs.theme": "dark"}       # sub-document upserts (dotted paths)
  remove: ["legacyTheme"]            # sub-document removes
rollback:
  action: patch
  key_range: {prefix: "user::", start: 1, end: 500}
  remove: ["prefs.theme"]
```

Only key-value and sub-document operations are used, so the template works on any cluster,
including ones without the query service. That is also why there is no "every key with this
prefix": KV cannot enumerate keys. A block names its documents honestly instead, with
``key`` (one), ``keys`` (a list) or ``key_range`` (a prefix and an inclusive numeric range,
optionally zero-padded to ``width``). Documents in the list that do not exist fail the step
unless ``missing: skip``.

Fencing: each document is read first (its CAS and its ``flamingock`` extended attribute,
invisible to the application's reads), the lock is checked, and the write is made with that
CAS, carrying the fencing token and the idempotency key in the same attribute, so it lands on
exactly what was checked. A document whose attribute names a newer generation of the same
lock was written by a newer holder: this runner lost the lock, and it stops
(``LockLostError``) without writing it. A document changed between the read and the write is
read again. A delete keeps no metadata (the document is gone).

A step that could not connect, or whose bucket never became ready, wrote nothing: it fails as
not started (no rollback). ``timeout`` (s, default 10) bounds each operation and the opening
of the bucket; a bucket that did not open in time (a busy node, or a bucket that does not
exist: the server answers both the same way) is tried once more on a new connection first.

Connection: ``url``/``user``/``password``/``bucket`` in the block, else the workflow's
``settings`` (``couchbase_url``, ``couchbase_user``, ``couchbase_password``,
``couchbase_bucket``), else ``FLAMINGOCK_COUCHBASE_URL/USER/PASSWORD/BUCKET``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ...core.changes import ChangeContext
from ...errors import ConfigError, LockLostError, StepNotStarted
from .base import Template, TemplateParams, register

__all__ = ["XATTR", "CouchbaseDocument", "CouchbaseDocumentParams", "KeyRange"]

XATTR = "flamingock"
"""The extended attribute of every document the template writes: the fencing token (lock,
generation, run, unit), the namespace, the idempotency key and the action."""
_CAS_TRIES = 5
_OPEN_TRIES = 2
_SPECS = 15
"""Sub-document specs per operation: the server takes 16, one is the metadata."""


class KeyRange(TemplateParams):
    """Keys ``prefix + n`` for ``n`` from ``start`` to ``end`` inclusive."""

    prefix: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    width: int = 0
    """Zero-pad ``n`` to this many digits (``user::007``)."""

    @model_validator(mode="after")
    def _ordered(self) -> KeyRange:
        if self.end < self.start:
            raise ValueError("key_range.end must be >= key_range.start")
        if self.end - self.start >= 1_000_000:
            raise ValueError("key_range covers more than a million keys")
        return self

    def keys(self) -> Iterator[str]:
        for n in range(self.start, self.end + 1):
            yield f"{self.prefix}{n:0{self.width}d}"


class CouchbaseDocumentParams(TemplateParams):
    """One block: what to do, to which documents, and where they live."""

    action: Literal["upsert", "patch", "delete"]
    key: str | None = None
    keys: list[str] | None = None
    key_range: KeyRange | None = None
    document: dict[str, Any] | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)
    missing: Literal["fail", "skip"] = "fail"
    url: str | None = None
    user: str | None = None
    password: str | None = None
    bucket: str | None = None
    scope: str = "_default"
    collection: str = "_default"
    timeout: float = 10.0

    @model_validator(mode="after")
    def _consistent(self) -> CouchbaseDocumentParams:
        targets = [t for t in (self.key, self.keys, self.key_range) if t is not None]
        if len(targets) != 1:
            raise ValueError("give exactly one of key, keys or key_range")
        if self.action == "upsert" and self.document is None:
            raise ValueError("action upsert needs a document")
        if self.action == "patch" and not (self.set or self.remove):
            raise ValueError("action patch needs set and/or remove")
        return self

    def targets(self) -> list[str]:
        if self.key is not None:
            return [self.key]
        if self.keys is not None:
            return list(self.keys)
        assert self.key_range is not None
        return list(self.key_range.keys())


@register
class CouchbaseDocument(Template):
    """Writes documents with KV and sub-document operations."""

    name = "couchbase-document"
    Params = CouchbaseDocumentParams
    secret_fields: ClassVar[frozenset[str]] = frozenset({"password"})

    def apply(self, params: CouchbaseDocumentParams, ctx: ChangeContext) -> None:
        _run(params, ctx)

    def rollback(self, params: CouchbaseDocumentParams, ctx: ChangeContext) -> None:
        _run(params, ctx)


def _setting(params: CouchbaseDocumentParams, ctx: ChangeContext, name: str) -> str | None:
    value = getattr(params, name)
    if value is None:  # the settings block, over the FLAMINGOCK_COUCHBASE_* defaults
        value = ctx.settings.get(f"couchbase_{name}")
    return None if value is None else str(value)


def _run(params: CouchbaseDocumentParams, ctx: ChangeContext) -> None:
    from couchbase.exceptions import CouchbaseException, DocumentNotFoundException

    conn = {n: _setting(params, ctx, n) for n in ("url", "user", "password", "bucket")}
    absent = [n for n, v in conn.items() if not v]
    if absent:
        raise ConfigError(
            f"{ctx.unit_id}: couchbase-document needs {', '.join(absent)}: set them in the "
            "block, in settings (couchbase_url, ...) or as FLAMINGOCK_COUCHBASE_* variables")
    cluster, bucket = _open(conn, params, ctx)
    try:
        col = bucket.scope(params.scope).collection(params.collection)
        done = skipped = 0
        for key in params.targets():
            try:
                _one(col, key, params, ctx)
                done += 1
            except DocumentNotFoundException:
                if params.missing == "fail":
                    raise RuntimeError(
                        f"{ctx.unit_id}: document {key!r} does not exist (use missing: skip "
                        "to pass over absent documents)") from None
                skipped += 1
        ctx.log.info("%s: %s on %d document(s), %d absent skipped", ctx.unit_id,
                     params.action, done, skipped)
    except CouchbaseException as exc:
        raise RuntimeError(f"{ctx.unit_id}: Couchbase {params.action} failed: "
                           f"{type(exc).__name__}: {_said(exc)}") from exc
    finally:
        cluster.close()


def _open(conn: Mapping[str, str | None], params: CouchbaseDocumentParams,
          ctx: ChangeContext) -> tuple[Any, Any]:
    """The cluster and the bucket, ready. A bucket that did not open in time (a busy or
    restarting node, as well as a bucket that does not exist) is tried once more on a new
    connection: nothing was written yet, so only the second failure fails the step, as not
    started."""
    from couchbase.auth import PasswordAuthenticator
    from couchbase.cluster import Cluster
    from couchbase.exceptions import CouchbaseException, UnAmbiguousTimeoutException
    from couchbase.options import ClusterOptions, ClusterTimeoutOptions

    timeouts = ClusterTimeoutOptions(kv_timeout=timedelta(seconds=params.timeout),
                                     bootstrap_timeout=timedelta(seconds=params.timeout))
    attempt = 0
    while True:
        attempt += 1
        try:
            cluster = Cluster(str(conn["url"]), ClusterOptions(
                PasswordAuthenticator(str(conn["user"]), str(conn["password"])),
                timeout_options=timeouts))
        except CouchbaseException as exc:  # refused, unresolvable, bad credentials
            raise StepNotStarted(f"{ctx.unit_id}: cannot connect to Couchbase ({_said(exc)}); "
                                 "no document was written") from exc
        try:
            bucket = cluster.bucket(str(conn["bucket"]))
            cluster.wait_until_ready(timedelta(seconds=params.timeout + 5))
            return cluster, bucket
        except CouchbaseException as exc:
            cluster.close()
            if isinstance(exc, UnAmbiguousTimeoutException) and attempt < _OPEN_TRIES:
                ctx.log.warning("%s: Couchbase bucket %r did not open in time (a busy node, or "
                                "no such bucket); trying once more on a new connection",
                                ctx.unit_id, conn["bucket"])
                continue
            raise StepNotStarted(f"{ctx.unit_id}: Couchbase bucket {conn['bucket']!r} is not "
                                 f"ready ({_said(exc)}); no document was written") from exc


def _said(exc: Exception) -> str:
    return str(exc).split(", context=")[0]


def _one(col: Any, key: str, params: CouchbaseDocumentParams, ctx: ChangeContext) -> None:
    """One document: read its metadata (and CAS), refuse a newer lock holder's, write on top
    of exactly what was read; read again when someone wrote in between."""
    from couchbase.exceptions import (
        CasMismatchException,
        DocumentExistsException,
        DocumentNotFoundException,
    )

    for _ in range(_CAS_TRIES):
        ctx.check_lock()  # a holder that lost the lock writes no further document
        try:
            cas, mark, present = _read(col, key, params.remove)
        except DocumentNotFoundException:
            if params.action != "upsert":
                raise
            cas, mark, present = None, None, set()
        _fence(mark, key, ctx)
        try:
            _write(col, key, params, ctx, cas, present)
            return
        except (CasMismatchException, DocumentExistsException):
            continue  # changed (or created) since it was read: decide again on what is there
    raise RuntimeError(f"{ctx.unit_id}: document {key!r} changed under every one of "
                       f"{_CAS_TRIES} tries to write it; it was left as it is")


def _read(col: Any, key: str, paths: list[str]) -> tuple[int, dict[str, Any] | None, set[str]]:
    """The document's CAS, its ``flamingock`` metadata, and which of ``paths`` it has."""
    import couchbase.subdocument as sd

    found = col.lookup_in(key, [sd.get(XATTR, xattr=True)])
    mark = found.content_as[dict](0) if found.exists(0) else None
    present: set[str] = set()
    for start in range(0, len(paths), _SPECS):
        chunk = paths[start:start + _SPECS]
        more = col.lookup_in(key, [sd.exists(p) for p in chunk])
        present |= {p for i, p in enumerate(chunk) if more.exists(i)}
    return found.cas, mark, present


def _fence(mark: dict[str, Any] | None, key: str, ctx: ChangeContext) -> None:
    """Refuse to write over a document a newer holder of the same lock wrote: this runner
    lost the lock, whatever it believes."""
    token = ctx.fencing
    if token is None or mark is None or mark.get("lock") != token.lock:
        return
    newer = mark.get("generation")
    if isinstance(newer, int) and newer > token.generation:
        raise LockLostError(
            f"{ctx.unit_id}: document {key!r} was written by a newer holder of the lock "
            f"{token.lock} (generation {newer}, run {mark.get('run_id')}) than this run "
            f"(generation {token.generation}): this runner lost the lock; the document was "
            "left as it is. Rerun to continue.")


def _write(col: Any, key: str, params: CouchbaseDocumentParams, ctx: ChangeContext,
           cas: int | None, present: set[str]) -> None:
    import couchbase.subdocument as sd
    from couchbase.options import MutateInOptions, RemoveOptions
    from couchbase.subdocument import StoreSemantics

    if params.action == "delete":  # a deleted document keeps no metadata of its own
        col.remove(key, RemoveOptions(cas=cas))
        return
    mark = sd.upsert(XATTR, _mark(params, ctx), xattr=True, create_parents=True)
    if params.action == "upsert":
        specs: list[Any] = [mark, sd.replace("", params.document)]
        options = MutateInOptions(store_semantics=StoreSemantics.INSERT) if cas is None \
            else MutateInOptions(cas=cas)
        col.mutate_in(key, specs, options)
        return
    # Removing a field that is already gone is done, not failed: a rollback must be
    # repeatable, and may meet documents the apply never reached.
    changes = [sd.upsert(p, v, create_parents=True) for p, v in params.set.items()]
    changes += [sd.remove(p) for p in params.remove if p in present]
    for start in range(0, max(len(changes), 1), _SPECS):  # chained: each on the last's CAS
        result = col.mutate_in(key, [mark, *changes[start:start + _SPECS]],
                               MutateInOptions(cas=cas))
        cas = result.cas


def _mark(params: CouchbaseDocumentParams, ctx: ChangeContext) -> dict[str, Any]:
    """What the document's metadata says of the write: who, under which lock generation."""
    token = ctx.fencing.as_dict() if ctx.fencing is not None else {"run_id": ctx.run_id,
                                                                    "unit_id": ctx.unit_id}
    return {**token, "namespace": ctx.namespace, "idempotency_key": ctx.idempotency_key,
            "action": params.action}


def describe(params: Mapping[str, Any]) -> str:
    """A one-line summary of a block for plans: ``patch 500 document(s)``."""
    model = CouchbaseDocumentParams.model_validate(dict(params), strict=False)
    return f"{model.action} {len(model.targets())} document(s)"
