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

Connection: ``url``/``user``/``password``/``bucket`` in the block, else the workflow's
``settings`` (``couchbase_url``, ``couchbase_user``, ``couchbase_password``,
``couchbase_bucket``), else ``FLAMINGOCK_COUCHBASE_URL/USER/PASSWORD/BUCKET``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ...core.changes import ChangeContext
from ...errors import ConfigError
from .base import Template, TemplateParams, register

__all__ = ["CouchbaseDocument", "CouchbaseDocumentParams", "KeyRange"]


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
    from couchbase.auth import PasswordAuthenticator
    from couchbase.cluster import Cluster
    from couchbase.exceptions import CouchbaseException, DocumentNotFoundException
    from couchbase.options import ClusterOptions, ClusterTimeoutOptions

    conn = {n: _setting(params, ctx, n) for n in ("url", "user", "password", "bucket")}
    absent = [n for n, v in conn.items() if not v]
    if absent:
        raise ConfigError(
            f"{ctx.unit_id}: couchbase-document needs {', '.join(absent)}: set them in the "
            "block, in settings (couchbase_url, ...) or as FLAMINGOCK_COUCHBASE_* variables")
    timeouts = ClusterTimeoutOptions(kv_timeout=timedelta(seconds=params.timeout))
    cluster = Cluster(str(conn["url"]), ClusterOptions(
        PasswordAuthenticator(str(conn["user"]), str(conn["password"])),
        timeout_options=timeouts))
    try:
        bucket = cluster.bucket(str(conn["bucket"]))
        cluster.wait_until_ready(timedelta(seconds=params.timeout + 5))
        col = bucket.scope(params.scope).collection(params.collection)
        done = skipped = 0
        for key in params.targets():
            try:
                _one(col, key, params)
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
                           f"{type(exc).__name__}: {str(exc).split(', context=')[0]}") from exc
    finally:
        cluster.close()


def _one(col: Any, key: str, params: CouchbaseDocumentParams) -> None:
    import couchbase.subdocument as sd

    if params.action == "upsert":
        col.upsert(key, params.document)
    elif params.action == "delete":
        col.remove(key)
    else:
        from couchbase.exceptions import PathNotFoundException

        specs: list[Any] = [sd.upsert(p, v, create_parents=True) for p, v in params.set.items()]
        try:
            col.mutate_in(key, specs + [sd.remove(p) for p in params.remove])
        except PathNotFoundException:
            # Removing a field that is already gone is done, not failed: a rollback must be
            # repeatable, and may meet documents the apply never reached.
            if specs:
                col.mutate_in(key, specs)
            for path in params.remove:
                with contextlib.suppress(PathNotFoundException):
                    col.mutate_in(key, [sd.remove(path)])


def describe(params: Mapping[str, Any]) -> str:
    """A one-line summary of a block for plans: ``patch 500 document(s)``."""
    model = CouchbaseDocumentParams.model_validate(dict(params), strict=False)
    return f"{model.action} {len(model.targets())} document(s)"
