"""``CouchbaseProjectionStore``: projected documents in a Couchbase collection, by key only.

Only key-value and sub-document operations are used, so it works on every deployment (and on
gocaves, which has no query service). The ``couchbase`` SDK is imported when a store is
opened, never at module import: the CLI's start-up time matters.

Transient errors (timeouts, temporary failures, a node going away) are retried with tenacity,
bounded and with exponential backoff, and each retry is logged. What still fails becomes a
:class:`~projections.stores.base.StoreUnavailable`; a lost CAS becomes a
:class:`~projections.stores.base.VersionConflict`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from ...errors import ConfigError, StoreError
from .base import Document, StoreUnavailable, Version, VersionConflict, Versioned, dig

__all__ = ["DEFAULT_COLLECTION", "DEFAULT_SCOPE", "CouchbaseProjectionStore",
           "CouchbaseSettings"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_OURS = {"bucket", "scope", "collection", "user", "password", "timeout"}
DEFAULT_SCOPE, DEFAULT_COLLECTION = "flamingock", "audit"
"""Where the documents go unless the URL says otherwise: their own keyspace, not
``_default`` beside the application's data."""
_SUBDOC_UNREADABLE = 0x84
"""The sub-document status (memcached's "internal error") that gocaves, Couchbase's mock
server, gives every path of a document the SDK sent it snappy-compressed (any compressible
document past the SDK's 32-byte threshold): its sub-document engine cannot read those. A
Couchbase server reads them; only this status makes :meth:`CouchbaseProjectionStore.lookup`
read the whole document instead."""
_TRANSIENT = (
    "AmbiguousTimeoutException", "UnAmbiguousTimeoutException", "TimeoutException",
    "TemporaryFailException", "ServiceUnavailableException", "RequestCanceledException",
    "DocumentLockedException", "DurabilitySyncWriteInProgressException",
    "InternalServerFailureException", "RateLimitedException",
)


@dataclass(frozen=True)
class CouchbaseSettings:
    """Where the documents go and how to reach the cluster."""

    connection_string: str
    bucket: str
    user: str
    password: str = field(repr=False)
    scope: str = DEFAULT_SCOPE
    collection: str = DEFAULT_COLLECTION
    timeout: float = 5.0
    """Per-operation KV timeout, seconds."""

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, str] | None = None,
                 defaults: Mapping[str, str] | None = None) -> CouchbaseSettings:
        """``couchbase[s]://HOSTS?bucket=B&scope=S&collection=C``; credentials from
        ``options``, else ``defaults`` (the settings' connections: ``couchbase_user``,
        ``couchbase_password``, ``couchbase_bucket``, from ``FLAMINGOCK_COUCHBASE_*``). Query
        parameters that are not ours (``ssl``, ``certpath``, ...) pass through to the SDK.
        """
        env = defaults or {}
        opts = dict(options or {})
        parts = urlsplit(url)
        if parts.scheme not in ("couchbase", "couchbases"):
            raise ConfigError(f"not a Couchbase URL: {url!r} (use couchbase://HOST?bucket=...)")
        query = dict(parse_qsl(parts.query))
        ours = {k: query.pop(k) for k in list(query) if k in _OURS}
        merged = {**ours, **opts}
        bucket = merged.get("bucket") or env.get("couchbase_bucket")
        user = merged.get("user") or env.get("couchbase_user")
        password = merged.get("password") or env.get("couchbase_password")
        if not bucket or not user or password is None:
            raise ConfigError(
                f"{parts.scheme}://{parts.netloc}: bucket, user and password are needed; give "
                "?bucket= in the URL (or FLAMINGOCK_COUCHBASE_BUCKET) and set "
                "FLAMINGOCK_COUCHBASE_USER and FLAMINGOCK_COUCHBASE_PASSWORD.")
        conn = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        if query:
            conn += "?" + urlencode(query)
        return cls(conn, bucket, user, password, merged.get("scope", DEFAULT_SCOPE),
                   merged.get("collection", DEFAULT_COLLECTION),
                   float(merged.get("timeout", 5.0)))


class CouchbaseProjectionStore:
    """Documents in one Couchbase collection; connects on construction."""

    def __init__(self, settings: CouchbaseSettings, retry_seconds: float = 30.0,
                 attempts: int = 12) -> None:
        self.settings = settings
        self.name = (f"{settings.connection_string.split('?')[0]}/{settings.bucket}/"
                     f"{settings.scope}/{settings.collection}")
        self._retry_seconds, self._attempts = retry_seconds, attempts
        self._exc = _exceptions()
        self._cluster: Any = None
        self._connect()

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, str] | None = None,
                 defaults: Mapping[str, str] | None = None) -> CouchbaseProjectionStore:
        """Open the store that a ``couchbase://`` URL names (see
        :meth:`CouchbaseSettings.from_url`)."""
        return cls(CouchbaseSettings.from_url(url, options, defaults))

    def _connect(self) -> None:
        from couchbase.auth import PasswordAuthenticator
        from couchbase.cluster import Cluster
        from couchbase.options import ClusterOptions, ClusterTimeoutOptions

        s = self.settings
        timeouts = ClusterTimeoutOptions(kv_timeout=timedelta(seconds=s.timeout),
                                         connect_timeout=timedelta(seconds=10))
        try:
            self._cluster = Cluster(s.connection_string, ClusterOptions(
                PasswordAuthenticator(s.user, s.password), timeout_options=timeouts))
            bucket = self._cluster.bucket(s.bucket)
            self._cluster.wait_until_ready(timedelta(seconds=15))
        except self._exc.CouchbaseException as exc:
            self.close()
            raise StoreUnavailable(
                f"cannot connect to Couchbase at {self.name}: {_brief(exc)}. Check the "
                "address, the credentials and that the bucket exists.") from exc
        try:
            ensure_keyspace(bucket, s.scope, s.collection)
        except self._exc.CouchbaseException as exc:
            self.close()
            raise StoreUnavailable(
                f"the collection `{s.bucket}`.`{s.scope}`.`{s.collection}` does not exist and "
                f"could not be created ({_brief(exc)}). Create it (docs/projections.md), or "
                "give ?scope=&collection= of one that exists.") from exc
        self._col = bucket.scope(s.scope).collection(s.collection)

    # -- the port ----------------------------------------------------------------------------

    def get(self, key: str) -> Versioned | None:
        try:
            result = self._call("read", key, lambda: self._col.get(key))
        except self._exc.DocumentNotFoundException:
            return None
        return Versioned(result.content_as[dict], int(result.cas))

    def get_many(self, keys: Sequence[str]) -> dict[str, Versioned]:
        out: dict[str, Versioned] = {}
        if not keys:
            return out
        result = self._call("read", keys[0], lambda: self._col.get_multi(list(keys)))
        for key, value in result.results.items():
            out[key] = Versioned(value.content_as[dict], int(value.cas))
        for key, error in (result.exceptions or {}).items():
            if not isinstance(error, self._exc.DocumentNotFoundException):
                found = self.get(key)  # one at a time, with retries and translated errors
                if found is not None:
                    out[key] = found
        return out

    def write_many(self, items: Sequence[tuple[str, Document, Version | None]]
                   ) -> dict[str, Version | VersionConflict]:
        """Inserts and CAS replaces, each group pipelined in one SDK call."""
        from couchbase.options import ReplaceMultiOptions, ReplaceOptions

        out: dict[str, Version | VersionConflict] = {}
        inserts = {k: d for k, d, v in items if v is None}
        replaces = {k: d for k, d, v in items if v is not None}
        cas = {k: v for k, _, v in items if v is not None}
        calls: list[tuple[dict[str, Document], Callable[[], Any]]] = []
        if inserts:
            calls.append((inserts, lambda: self._col.insert_multi(inserts)))
        if replaces:
            opts = ReplaceMultiOptions(per_key_options={
                k: ReplaceOptions(cas=c) for k, c in cas.items()})
            calls.append((replaces, lambda: self._col.replace_multi(replaces, opts)))
        conflicts = (self._exc.DocumentExistsException, self._exc.CasMismatchException,
                     self._exc.DocumentNotFoundException)
        for docs, call in calls:
            result = self._call("write", next(iter(docs)), call)
            for key, value in result.results.items():
                out[key] = int(value.cas)
            for key, error in (result.exceptions or {}).items():
                if isinstance(error, conflicts):
                    out[key] = VersionConflict(key, f"{key!r} changed meanwhile")
                else:  # transient or odd: the single write retries and translates
                    try:
                        out[key] = self.write(key, docs[key], cas.get(key))
                    except VersionConflict as conflict:
                        out[key] = conflict
        return out

    def lookup(self, key: str, paths: Sequence[str]) -> dict[str, Any] | None:
        import couchbase.subdocument as sd

        specs = [sd.get(p) for p in paths]
        try:
            result = self._call("look up", key, lambda: self._col.lookup_in(key, specs))
        except self._exc.DocumentNotFoundException:
            return None
        if _statuses(result) == [_SUBDOC_UNREADABLE] * len(paths):
            # gocaves cannot look inside a document it holds compressed; the whole document
            # answers the same question, at the cost of reading all of it.
            log.debug("sub-document lookup of %r in %s: the server could not read any path "
                      "(status 0x84, gocaves's answer for a compressed document); reading "
                      "the whole document", key, self.name)
            found = self.get(key)
            return None if found is None else {p: dig(found.doc, p) for p in paths}
        out: dict[str, Any] = {}
        for index, path in enumerate(paths):
            try:
                out[path] = result.content_as[_same](index) if result.exists(index) else None
            except self._exc.PathMismatchException:
                out[path] = None  # through a value that is no object: the document lacks it
            except self._exc.CouchbaseException as exc:
                raise StoreError(f"could not look up {path!r} in {key!r} in {self.name}: "
                                 f"{_brief(exc)}") from exc
        return out

    def write(self, key: str, doc: Document, expected: Version | None) -> Version:
        from couchbase.options import ReplaceOptions

        exc = self._exc
        try:
            if expected is None:
                result = self._call("insert", key, lambda: self._col.insert(key, doc))
            else:
                opts = ReplaceOptions(cas=expected)
                result = self._call("replace", key, lambda: self._col.replace(key, doc, opts))
        except (exc.DocumentExistsException, exc.CasMismatchException,
                exc.DocumentNotFoundException) as err:
            raise VersionConflict(key, f"{key!r} changed meanwhile ({type(err).__name__})") \
                from err
        return int(result.cas)

    def delete(self, key: str, expected: Version | None = None) -> bool:
        from couchbase.options import RemoveOptions

        opts = RemoveOptions(cas=expected) if expected is not None else RemoveOptions()
        try:
            self._call("delete", key, lambda: self._col.remove(key, opts))
        except self._exc.DocumentNotFoundException:
            if expected is not None:
                raise VersionConflict(key, f"{key!r} vanished meanwhile") from None
            return False
        except self._exc.CasMismatchException as err:
            raise VersionConflict(key) from err
        return True

    @contextmanager
    def batch(self) -> Iterator[None]:
        """No transaction: each KV write is atomic on its own, and the worker's order (the
        checkpoint last) is what makes a batch safe to redo."""
        yield

    def query_units(self, namespace: str, status: str | None = None
                    ) -> Iterator[dict[str, Any]]:
        """The unit documents of ``namespace`` (with ``status``) through SQL++: only where the
        cluster runs the query service (:meth:`ProjectionReader.query_units_sqlpp`)."""
        from couchbase.options import QueryOptions

        if self._cluster is None:
            raise StoreUnavailable(f"{self.name} is closed")
        s = self.settings
        keyspace = f"`{s.bucket}`.`{s.scope}`.`{s.collection}`"
        where = "d.type = 'unit' AND d.namespace = $ns"
        params: dict[str, Any] = {"ns": namespace}
        if status is not None:
            where += " AND d.status = $status"
            params["status"] = status
        statement = f"SELECT d.* FROM {keyspace} AS d WHERE {where} ORDER BY d.unit_id"
        for row in self._cluster.query(statement, QueryOptions(named_parameters=params)).rows():
            yield dict(row)

    def close(self) -> None:
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            try:
                cluster.close()
            except Exception as exc:  # closing must not mask the error that led here
                log.debug("closing %s: %r", self.name, exc)

    # -- retries and translation -------------------------------------------------------------

    def _call(self, what: str, key: str, op: Callable[[], _T]) -> _T:
        if self._cluster is None:
            raise StoreUnavailable(f"{self.name} is closed")
        names = _TRANSIENT
        retrying = Retrying(
            retry=retry_if_exception(lambda e: type(e).__name__ in names),
            stop=stop_after_attempt(self._attempts) | stop_after_delay(self._retry_seconds),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )
        try:
            return retrying(op)
        except (self._exc.DocumentNotFoundException, self._exc.DocumentExistsException,
                self._exc.CasMismatchException):
            raise
        except self._exc.CouchbaseException as exc:
            transient = type(exc).__name__ in names
            raise StoreUnavailable(
                f"could not {what} {key!r} in {self.name}: {_brief(exc)}"
                + (f" (still failing after retrying for up to {self._retry_seconds:.0f}s)"
                   if transient else "")) from exc


def ensure_keyspace(bucket: Any, scope: str, collection: str, wait: float = 15.0) -> bool:
    """Create ``scope``.``collection`` in ``bucket`` if missing (through the SDK's collection
    manager: it needs bucket-admin rights); True if it had to. Waits until the data service
    knows a new collection, which takes a moment after the manifest changed."""
    import couchbase.exceptions as exc

    if (scope, collection) == ("_default", "_default"):
        return False
    manager = bucket.collections()
    try:
        scopes = {s.name: {c.name for c in s.collections} for s in manager.get_all_scopes()}
    except exc.CouchbaseException as error:  # a least-privileged user may not list them
        log.debug("cannot list the scopes of %s (%s); assuming %s.%s exists", bucket.name,
                  error, scope, collection)
        return False
    if collection in scopes.get(scope, set()):
        return False
    if scope not in scopes:
        with contextlib.suppress(exc.ScopeAlreadyExistsException):
            manager.create_scope(scope)
    with contextlib.suppress(exc.CollectionAlreadyExistsException):
        manager.create_collection(scope, collection)
    log.info("created the collection %s.%s in bucket %s", scope, collection, bucket.name)
    probe = bucket.scope(scope).collection(collection)
    deadline = time.monotonic() + wait
    while True:
        try:
            probe.exists("fes::keyspace-probe")
            return True
        except exc.CouchbaseException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _exceptions() -> Any:
    try:
        import couchbase.exceptions as exceptions
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise StoreError("the couchbase package is needed for a couchbase:// store") from exc
    return exceptions


def _same(value: Any) -> Any:
    return value


def _statuses(result: Any) -> list[Any]:
    """The status of each path in a sub-document lookup's answer, as the server sent it."""
    specs = result.value  # the SDK's per-path answers: [{"status": 0, "value": ...}, ...]
    return [spec.get("status") for spec in specs] if isinstance(specs, list) else []


def _brief(exc: BaseException) -> str:
    # SDK messages embed a long context dict; the type and the headline are what helps.
    try:
        message = getattr(exc, "message", None) or str(exc).split(", context=")[0]
    except AttributeError:  # the SDK's own "Unknown status" errors carry a bare string
        message = str(getattr(exc, "_base", None) or type(exc).__name__)
    return f"{type(exc).__name__}: {message}"
