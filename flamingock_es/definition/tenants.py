"""Tenants: the customers one workflow is applied to, each its own namespace.

A workflow file says how to find them under ``tenants:``, in one of three ways::

    tenants: [acme, globex]                     # a list: ids, or {id: ..., key: value}
    tenants: {file: tenants.yaml}               # a YAML/JSON list like it, or .txt (an id a line)
    tenants: {command: [./list-tenants, --active], timeout: 30}   # prints ids, or JSON

with ``defaults:`` beside any of them (attributes every tenant has unless it sets its own).
Each tenant's values are ``${tenant.id}`` and ``${tenant.<key>}`` in its units' blocks and in
the ``settings:`` block; its namespace is ``NAMESPACE.ID`` (:func:`tenant_namespace`), with
its own log, lock, history and signatures.

Finding them is done only when a command needs a tenant (``--tenant ID``, a rollout, a
fleet worker): a file is read, a command is run, and everything they give is checked, every
problem named by where it is (the file and line, or the line of the command's output).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .yamlfile import Located, LocatedList, load_document

__all__ = [
    "TENANT_PATTERN",
    "Tenant",
    "TenantSource",
    "find_tenant",
    "load_tenants",
    "source_of",
    "tenant_namespace",
]

TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
"""What a tenant id may be: it becomes the last part of a namespace (no dot, so
``NAMESPACE.ID`` reads one way only)."""
_ID = re.compile(TENANT_PATTERN)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OUTPUT_LIMIT = 10_000_000
"""Bytes of a tenant command's output read at most (10 MB: a million ids)."""


def tenant_namespace(namespace: str, tenant_id: str) -> str:
    """The namespace of ``tenant_id`` of the workflow whose namespace is ``namespace``."""
    return f"{namespace}.{tenant_id}"


@dataclass(frozen=True)
class Tenant:
    """One tenant: its id, its attributes (``${tenant.<key>}``), and its workflow's
    namespace (``parent``)."""

    id: str
    parent: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return tenant_namespace(self.parent, self.id)

    @property
    def variables(self) -> dict[str, str]:
        """What ``${tenant.id}`` and ``${tenant.<key>}`` resolve to."""
        return {"tenant.id": self.id, **{f"tenant.{k}": v for k, v in self.attributes.items()}}

    def as_dict(self) -> dict[str, str]:
        """Its values as a unit's ``ctx.settings["tenant"]`` holds them."""
        return {"id": self.id, **self.attributes}


@dataclass(frozen=True)
class TenantSource:
    """Where a workflow's tenants come from, as its file says (not yet read or run)."""

    kind: str
    """``list``, ``file`` or ``command``."""
    entries: Sequence[Any] = ()
    """The ``list`` as written (a located list: each entry knows its line)."""
    path: Path | None = None
    argv: tuple[str, ...] = ()
    timeout: float = 30.0
    defaults: Mapping[str, str] = field(default_factory=dict)
    where: str = "<code>"
    """``file:line`` of the ``tenants`` key."""
    base: Path = Path(".")
    """The folder a file or a command is relative to (the workflow file's)."""

    def describe(self) -> str:
        if self.kind == "file":
            return f"the tenants file {self.path}"
        if self.kind == "command":
            import shlex  # here, as below: every command loads this module, few need these

            return f"the tenants command {shlex.join(self.argv)!r}"
        return f"the tenants list at {self.where}"


def source_of(raw: Any, where: str, base: Path) -> TenantSource:
    """The :class:`TenantSource` a workflow file's ``tenants`` value (already checked
    against its model) describes."""
    if isinstance(raw, list):
        return TenantSource("list", raw, where=where, base=base)
    defaults = {str(k): _text(v) for k, v in (raw.get("defaults") or {}).items()}
    timeout = float(raw.get("timeout", 30.0))
    if raw.get("list") is not None:
        return TenantSource("list", raw["list"], defaults=defaults, where=where, base=base)
    if raw.get("file") is not None:
        return TenantSource("file", path=base / raw["file"], defaults=defaults, where=where,
                            base=base)
    import shlex

    command = raw["command"]
    argv = tuple(shlex.split(command)) if isinstance(command, str) else tuple(command)
    if not argv:
        raise ConfigError(f"{where}: tenants.command is empty: name the program to run")
    return TenantSource("command", argv=argv, timeout=timeout, defaults=defaults, where=where,
                        base=base)


def load_tenants(source: TenantSource, parent: str) -> list[Tenant]:
    """Every tenant ``source`` gives, in its order, checked: ids valid and unique,
    attributes named so that ``${tenant.<key>}`` can say them; at least one."""
    if source.kind == "file":
        assert source.path is not None
        items = _from_file(source.path)
    elif source.kind == "command":
        items = _from_command(source)
    else:
        entries = source.entries
        items = [(_where(entries, i, source.where), entry) for i, entry in enumerate(entries)]
    tenants: list[Tenant] = []
    seen: dict[str, str] = {}
    for where, item in items:
        tenant = _tenant(item, where, parent, source.defaults)
        if tenant.id in seen:
            raise ConfigError(f"{where}: tenant {tenant.id!r} is listed twice (first at "
                              f"{seen[tenant.id]}); each tenant is one namespace")
        seen[tenant.id] = where
        tenants.append(tenant)
    if not tenants:
        raise ConfigError(f"{source.describe()} gives no tenant: a workflow with tenants: "
                          "needs at least one (or remove the tenants: key)")
    return tenants


def find_tenant(tenants: Sequence[Tenant], tenant_id: str, source: TenantSource) -> Tenant:
    """The tenant ``tenant_id`` among ``tenants``, or a :class:`ConfigError` that says
    which ones are close."""
    for tenant in tenants:
        if tenant.id == tenant_id:
            return tenant
    import difflib

    close = difflib.get_close_matches(tenant_id, [t.id for t in tenants], n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"unknown tenant {tenant_id!r}: it is not among the {len(tenants)} "
                      f"tenant(s) {source.describe()} gives.{hint}")


def _where(items: Sequence[Any], index: int, default: str) -> str:
    return items.where(index) if isinstance(items, LocatedList) else default


def _text(value: object) -> str:
    """An attribute as ``${tenant.<key>}`` gives it: text (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _tenant(item: Any, where: str, parent: str, defaults: Mapping[str, str]) -> Tenant:
    if isinstance(item, str):
        tenant_id, attributes = item, {}
    elif isinstance(item, Mapping):
        if "id" not in item:
            raise ConfigError(f"{where}: a tenant written as a mapping needs an id "
                              f"(it has {', '.join(map(str, item)) or 'nothing'})")
        tenant_id, attributes = item["id"], {k: v for k, v in item.items() if k != "id"}
    else:
        raise ConfigError(f"{where}: a tenant is an id or a mapping with an id, not "
                          f"{type(item).__name__}")
    if not isinstance(tenant_id, str) or not _ID.match(tenant_id):
        raise ConfigError(f"{where}: {tenant_id!r} is not a tenant id: use letters, digits, "
                          "'_' or '-' (at most 64, no dot: it ends a namespace name)")
    values = dict(defaults)
    for key, value in attributes.items():
        where_key = item.where(key) if isinstance(item, Located) else where
        if not isinstance(key, str) or not _KEY.match(key):
            raise ConfigError(f"{where_key}: tenant {tenant_id!r}: attribute {key!r} cannot "
                              "be named in ${tenant.<key>}: use letters, digits and '_'")
        if not isinstance(value, str | int | float | bool):
            raise ConfigError(f"{where_key}: tenant {tenant_id!r}: attribute {key!r} must be "
                              f"text, a number or a boolean, not {type(value).__name__}")
        values[key] = _text(value)
    return Tenant(tenant_id, parent, values)


def _from_file(path: Path) -> list[tuple[str, Any]]:
    if path.suffix in (".yaml", ".yml", ".json"):
        doc = load_document(path)  # names the line of a YAML/JSON mistake
        if not isinstance(doc, LocatedList):
            raise ConfigError(f"{path}:1: a tenants file holds a list of tenants (ids, or "
                              "mappings with an id)")
        return [(doc.where(i), entry) for i, entry in enumerate(doc)]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tenants file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the tenants file is not UTF-8 text") from exc
    return [(f"{path}:{number}", line.strip())
            for number, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]


def _from_command(source: TenantSource) -> list[tuple[str, Any]]:
    """Run the tenants command; its output is one tenant a line (an id, or a JSON object
    with an id), or one JSON list of them."""
    import shlex
    import subprocess

    shown = shlex.join(source.argv)
    try:
        done = subprocess.run(source.argv, cwd=source.base, capture_output=True,
                              timeout=source.timeout, check=False)
    except FileNotFoundError as exc:
        raise ConfigError(f"{source.where}: the tenants command {shown!r} cannot be run: "
                          f"{exc.strerror} ({exc.filename}). Nothing was started.") from exc
    except PermissionError as exc:
        raise ConfigError(f"{source.where}: the tenants command {shown!r} cannot be run: "
                          "permission denied (is it executable?). Nothing was started.") from exc
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"{source.where}: the tenants command {shown!r} did not finish in "
                          f"{source.timeout:g}s (tenants.timeout). Nothing was started.") from exc
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        said = f": {' / '.join(tail)}" if tail else " (and said nothing on stderr)"
        raise ConfigError(f"{source.where}: the tenants command {shown!r} failed with exit "
                          f"status {done.returncode}{said}. Nothing was started.")
    if len(done.stdout) > _OUTPUT_LIMIT:
        raise ConfigError(f"{source.where}: the tenants command {shown!r} printed more than "
                          f"{_OUTPUT_LIMIT // 1_000_000} MB. Nothing was started.")
    try:
        text = done.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source.where}: the tenants command {shown!r} printed bytes that "
                          "are not UTF-8 text. Nothing was started.") from exc
    where = f"output of {shown!r}"
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except ValueError as exc:
            raise ConfigError(f"{where}: it starts like a JSON list but is not one ({exc}). "
                              "Nothing was started.") from exc
        return [(f"{where}, item {i + 1}", item) for i, item in enumerate(items)]
    out: list[tuple[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        item: Any = line
        if line.startswith("{"):
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{where}, line {number}: not a JSON object ({exc}): "
                                  f"{line[:80]!r}. Nothing was started.") from exc
        out.append((f"{where}, line {number}", item))
    return out
