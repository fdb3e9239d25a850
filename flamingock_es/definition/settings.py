"""Settings: where a namespace's log lives and how to run it, resolved once.

Precedence, highest first: flags (the CLI's options, or keyword arguments of the library
calls), then ``flamingock.yaml``, then the environment, then the defaults. This module is the
only one that reads ``FLAMINGOCK_*`` variables (:data:`ENVIRONMENT` lists them); everything
else receives the :class:`Settings` they gave. Reading settings never imports unit code:
commands that only read the log need nothing more.

```yaml
namespace: shop
bus: local:.flamingock          # or kafka://127.0.0.1:19092
kafka: {security.protocol: SASL_SSL, ...}      # options of the Kafka bus (librdkafka)
store: sqlite:.flamingock/projections.db       # where projections go
settings: {flags_url: http://127.0.0.1:8765}   # handed to every unit as ctx.settings
templates: [shop_templates]    # modules that register custom templates
grace_period: 20   # s a unit may finish in after SIGTERM; + 5 s must fit the platform's grace
max_parallel: 4    # units whose requirements are met run side by side (default 1)
on_failure: stop   # or isolate: skip only what depends on a failed unit
environments:      # --env NAME: each its own namespace and settings
  prod: {namespace: shop-prod, bus: "kafka://kafka:9092", settings: {region: eu}}
tenants: [acme, {id: globex, region: us}]     # each its own namespace: shop.acme, shop.globex
stages:
  - name: data
    units: [changes/data]      # folders, .py/.yaml/.json files, or dotted Python packages
    max_parallel: 2            # at most this many of the stage at once
```
"""

from __future__ import annotations

import enum
import math
import os
import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, Remedy, RemedyKind
from ._speedups import checked
from .tenants import Tenant, TenantSource, find_tenant, load_tenants, source_of
from .yamlfile import Located, load_document

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_BUS",
    "DEFAULT_STORE",
    "ENVIRONMENT",
    "CompensationScope",
    "Settings",
    "StageSource",
    "TemplateSource",
    "resolve_settings",
]

CONFIG_FILE = "flamingock.yaml"
DEFAULT_BUS = "local:.flamingock"
DEFAULT_STORE = "sqlite:.flamingock/projections.db"

ENVIRONMENT = {
    "namespace": "FLAMINGOCK_NAMESPACE", "bus": "FLAMINGOCK_BUS", "store": "FLAMINGOCK_STORE",
    "lock_timeout": "FLAMINGOCK_LOCK_TIMEOUT", "grace_period": "FLAMINGOCK_GRACE_PERIOD",
    "signing_key": "FLAMINGOCK_SIGNING_KEY", "key_passphrase": "FLAMINGOCK_KEY_PASSPHRASE",
    "principal": "FLAMINGOCK_PRINCIPAL", "unit_cache": "FLAMINGOCK_UNIT_CACHE",
    "pure_python": "FLAMINGOCK_PURE_PYTHON", "environment": "FLAMINGOCK_ENV",
    "dashboard_token": "FLAMINGOCK_DASHBOARD_TOKEN",
}
"""Each setting the environment may give, and its variable."""
_CONNECTIONS = {
    "couchbase_url": "FLAMINGOCK_COUCHBASE_URL", "couchbase_user": "FLAMINGOCK_COUCHBASE_USER",
    "couchbase_password": "FLAMINGOCK_COUCHBASE_PASSWORD",
    "couchbase_bucket": "FLAMINGOCK_COUCHBASE_BUCKET",
    "kafka_bootstrap": "FLAMINGOCK_KAFKA_BOOTSTRAP",
}
"""Where templates and the Couchbase store connect when nothing closer says (a block, the
``settings:`` block, a store URL or its options)."""
_SWITCHES = {"on": True, "1": True, "true": True, "yes": True,
             "off": False, "0": False, "false": False, "no": False}
"""How the environment says a switch (``FLAMINGOCK_UNIT_CACHE=off``)."""
_SECONDS = ("lock_timeout", "grace_period")


class CompensationScope(enum.StrEnum):
    """What a failed run compensates: the failed unit only, or everything it applied."""

    RUN = "run"
    FAILED_UNIT = "failed-unit"


@dataclass(frozen=True)
class StageSource:
    """A stage as the configuration names it: where its units are, not yet loaded."""

    name: str
    units: tuple[str, ...]
    where: str
    """``file:line`` of the stage, for messages."""
    max_parallel: int | None = None
    """At most this many of its units at once (within the workflow's ``max_parallel``)."""


@dataclass(frozen=True)
class TemplateSource:
    """A module the configuration names for its custom templates, not yet imported."""

    module: str
    """A dotted module name, or a ``.py`` file relative to the workflow file."""
    where: str
    """``file:line`` of the entry, for messages."""


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about a namespace besides its units' code."""

    namespace: str = "default"
    name: str = ""
    """The workflow's name (default: the namespace)."""
    bus: str = DEFAULT_BUS
    bus_options: Mapping[str, str] = field(default_factory=dict)
    """Options of the bus: Kafka's ``topic_prefix`` and librdkafka properties."""
    store: str = DEFAULT_STORE
    store_options: Mapping[str, str] = field(default_factory=dict)
    lock_timeout: float = 60.0
    grace_period: float = 20.0
    """After a first SIGTERM/SIGINT, how long the current change may take to finish. The
    process is gone at most :data:`~flamingock_es.run.signals.BOUND` (5) seconds after it
    runs out, so ``grace_period + 5`` plus the time to record the end must fit inside the
    platform's own grace (Kubernetes' ``terminationGracePeriodSeconds``, 30 by default;
    ``docker stop``'s 10): the default 20 fits Kubernetes' (docs/recovery.md)."""
    signing_key: str | None = None
    """This runner's (or requester's) Ed25519 private key file (see docs/compliance.md)."""
    trust: str | tuple[Mapping[str, Any], ...] | None = None
    """The trust store: a list of trusted keys, or a folder with a trust.yaml."""
    compensate: CompensationScope = CompensationScope.RUN
    unit_settings: Mapping[str, Any] = field(default_factory=dict)
    """The ``settings`` block: handed to every unit as ``ctx.settings``."""
    principal: str | None = None
    """Who this process acts as in the audit log (default: the OS user)."""
    key_passphrase: str | None = field(default=None, repr=False)
    """The passphrase of an encrypted ``signing_key``."""
    unit_cache: bool = True
    """Restore unchanged unit files from the unit cache instead of importing them."""
    pure_python: bool = False
    """Decode the log with fastavro even where the compiled reader is installed."""
    dashboard_token: str | None = field(default=None, repr=False)
    """The token ``flamingock-es dashboard`` requires of every request (``--token`` wins)."""
    connections: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Connection defaults from the environment (``couchbase_url``, ``couchbase_user``,
    ``couchbase_password``, ``couchbase_bucket``, ``kafka_bootstrap``): the lowest
    precedence for templates and the Couchbase store."""
    stages: tuple[StageSource, ...] = ()
    templates: tuple[TemplateSource, ...] = ()
    """Modules that register custom templates, imported before any unit is loaded."""
    source: str = "<code>"
    """The configuration file these came from."""
    declared_namespace: str | None = None
    """The namespace the workflow itself names (its file, or :meth:`Workflow.of`); a flag
    may name another one."""
    max_parallel: int = 1
    """Units whose requirements are met run side by side, at most this many at once."""
    on_failure: str = "stop"
    """``stop``: a failure starts nothing more and compensates the run; ``isolate``: only
    what depends on the failed unit is skipped, the rest goes on (the run is PARTIAL)."""
    environment: str = ""
    """The environment chosen (``--env``); its overrides are applied."""
    labels: tuple[str, ...] = ()
    """The run's labels (``--labels``), for ``when:`` conditions."""
    environments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    """Every environment the file declares, by name, with its overrides as written."""
    tenants: TenantSource | None = None
    """Where the workflow's tenants come from (``tenants:``); ``None``: it has none."""
    tenant: Tenant | None = None
    """The tenant these settings are for (``--tenant``, :meth:`for_tenant`): ``namespace``
    is then the tenant's, and ``${tenant.<key>}`` in the ``settings`` block is resolved."""

    @property
    def unit_context(self) -> Mapping[str, Any]:
        """What a unit's ``ctx.settings`` holds: the ``settings`` block over the connection
        defaults of the environment, and the tenant's values under ``tenant``."""
        context = {**self.connections, **self.unit_settings}
        if self.tenant is not None:
            context["tenant"] = self.tenant.as_dict()
        return context

    @property
    def environ(self) -> Mapping[str, str]:
        """What ``${VAR}`` in a unit's blocks resolves from: the process environment, and
        for a tenant ``${tenant.id}`` and ``${tenant.<key>}``."""
        if self.tenant is None:
            return os.environ
        return ChainMap(self.tenant.variables, os.environ)

    @property
    def tenant_unnamed(self) -> bool:
        """A workflow with tenants and none named: its own namespace holds no units' history
        (each tenant's does, and its rollouts'), so a command needs ``--tenant``."""
        return self.tenants is not None and self.tenant is None

    @property
    def parent_namespace(self) -> str:
        """The workflow's own namespace: the tenant's parent for a tenant's settings."""
        return self.tenant.parent if self.tenant is not None else self.namespace

    def tenant_list(self) -> list[Tenant]:
        """Every tenant the workflow's ``tenants:`` gives (a file is read, a command run),
        checked; a :class:`ConfigError` for a workflow without tenants."""
        if self.tenants is None:
            raise ConfigError(f"{self.source}: workflow {self.name!r} has no tenants: key; "
                              "list them there (docs/tenants.md) to name one with --tenant or "
                              "to roll out to them")
        return load_tenants(self.tenants, self.parent_namespace)

    def for_tenant(self, tenant: str | Tenant,
                   known: list[Tenant] | None = None) -> Settings:
        """These settings for one tenant (an id, looked up in :meth:`tenant_list` or in
        ``known``): its namespace, its ``${tenant.<key>}`` in the ``settings`` block."""
        if self.tenant is not None:
            if self.tenant.id == (tenant if isinstance(tenant, str) else tenant.id):
                return self
            raise ConfigError(f"these settings are already tenant {self.tenant.id!r}'s")
        if isinstance(tenant, str):
            if self.tenants is None:
                self.tenant_list()  # says the workflow has none
            assert self.tenants is not None
            tenant = find_tenant(known if known is not None else self.tenant_list(), tenant,
                                 self.tenants)
        unit_settings = _tenant_values(self.unit_settings, tenant, f"{self.source}: settings")
        return replace(self, namespace=tenant.namespace, declared_namespace=tenant.namespace,
                       tenant=tenant, unit_settings=unit_settings)

    @property
    def base(self) -> Path:
        """The folder that relative unit paths start from."""
        return Path(self.source).parent if self.source != "<code>" else Path.cwd()

    def but(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (flags) applied; ``None`` values change nothing. A
        ``tenant`` (an id) is applied last: the tenant of the namespace the others give."""
        given = {k: v for k, v in changes.items() if v is not None}
        tenant = given.pop("tenant", None)
        if "compensate" in given:
            given["compensate"] = _compensate(given["compensate"], "compensate")
        changed = replace(self, **given) if given else self
        return changed.for_tenant(tenant) if tenant is not None else changed


def resolve_settings(config: str | Path | None = None, *, required: bool = False,
                     read_file: bool = True, env: Mapping[str, str] | None = None,
                     **flags: Any) -> Settings:
    """Settings from ``flags`` > the file ``config`` (default ``./flamingock.yaml``) >
    ``env`` (default: the process environment) > defaults.

    Without a file the defaults apply, unless ``required`` (commands that run units);
    ``read_file=False`` is for workflows built in code.
    """
    env = os.environ if env is None else env
    tenant = flags.pop("tenant", None)
    path = Path(config or CONFIG_FILE)
    if path.is_dir():
        path = path / CONFIG_FILE
    values: dict[str, Any] = _from_environment(env)
    values["connections"] = {key: env[variable] for key, variable in _CONNECTIONS.items()
                             if env.get(variable)}
    if read_file and path.exists():
        values.update(_read(path, check=values.get("unit_cache", True)))
    elif required:
        raise ConfigError(f"{path}: no workflow file here; create one, or name another.",
                          remedies=(Remedy(RemedyKind.INIT),))
    chosen = flags.get("environment") or values.get("environment")
    if chosen:
        values.update(_environment(values, str(chosen)))
    values.update({k: v for k, v in flags.items() if v is not None})
    if isinstance(values.get("labels"), str):
        values["labels"] = tuple(x.strip() for x in values["labels"].split(",") if x.strip())
    values.setdefault("name", values.get("namespace", "default"))
    for key in _SECONDS:
        if key in values:
            try:
                values[key] = float(values[key])
            except ValueError as exc:
                raise ConfigError(f"{key} must be a number of seconds, not "
                                  f"{values[key]!r}") from exc
    values["compensate"] = _compensate(values.get("compensate", "run"), values.get("source"))
    if values.get("tenants") is not None and not isinstance(values["tenants"], TenantSource):
        values["tenants"] = source_of(values["tenants"], str(values.get("source", "<code>")),
                                      Path.cwd())  # a workflow built in code
    settings = Settings(**values)
    return settings.for_tenant(tenant) if tenant is not None else settings


def _from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings the ``FLAMINGOCK_*`` variables give, each converted from its text; a
    value that means nothing is refused, naming the variable (never guessed)."""
    values: dict[str, Any] = {}
    for key, variable in ENVIRONMENT.items():
        text = env.get(variable)
        if not text:
            continue
        if key in _SECONDS:
            values[key] = _seconds(text, variable)
        elif key in ("unit_cache", "pure_python"):
            switch = _SWITCHES.get(text.strip().lower())
            if switch is None:
                raise ConfigError(f"{variable}={text!r} is neither on nor off: set it to on "
                                  "or off (1/0, true/false and yes/no also do), or unset it")
            values[key] = switch
        else:
            values[key] = text
    return values


def _environment(values: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The overrides of environment ``name`` (the ``settings`` block merged over the
    workflow's), or a ``ConfigError`` naming the environments there are."""
    declared = values.get("environments", {})
    if name not in declared:
        where = values.get("source", "the settings")
        known = ", ".join(sorted(declared)) or "none is declared"
        raise ConfigError(f"{where}: unknown environment {name!r} (environments: {known}); "
                          "declare it under `environments:` or pick one of those.")
    overrides = dict(declared[name])
    out: dict[str, Any] = {"environment": name}
    for key in ("namespace", "bus", "store"):
        if key in overrides:
            out[key] = overrides[key]
    if "namespace" in overrides:
        out["declared_namespace"] = overrides["namespace"]
    if "kafka" in overrides:
        out["bus_options"] = {**values.get("bus_options", {}), **_options(overrides["kafka"])}
    if "store_options" in overrides:
        out["store_options"] = {**values.get("store_options", {}),
                                **_options(overrides["store_options"])}
    if "settings" in overrides:
        out["unit_settings"] = {**values.get("unit_settings", {}), **overrides["settings"]}
    if "labels" in overrides:
        out["labels"] = tuple(overrides["labels"])
    return out


def _seconds(text: str, variable: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{variable}={text!r} is not a number of seconds: set it to one, "
                          "e.g. 60 (or 0.5), or unset it")
    return seconds


def _compensate(value: object, where: object) -> CompensationScope:
    try:
        return CompensationScope(str(value))
    except ValueError as exc:
        raise ConfigError(f"{where or 'compensate'}: compensate is 'run' or 'failed-unit', "
                          f"not {value!r}") from exc


def _read(path: Path, *, check: bool = True) -> dict[str, Any]:
    """The file's settings, checked against the model (unless the same bytes passed before
    and ``check`` allows trusting that); local paths made relative to the file."""
    doc = load_document(path)
    if not isinstance(doc, Located):
        raise ConfigError(f"{path}:1: expected a mapping with namespace and stages")
    data = path.read_bytes()
    if not (check and checked.is_known(path, data)):
        from .models import WorkflowFile  # pydantic: only for a file not checked before
        from .validation import validated

        validated(WorkflowFile, doc, doc.where(), secret=("kafka", "store_options",
                                                          "settings"))
        checked.note(path, data)
    base = path.parent
    out: dict[str, Any] = {"source": str(path), "namespace": doc["namespace"],
                           "declared_namespace": doc["namespace"]}
    for key in ("name", "compensate", "max_parallel", "on_failure", *_SECONDS):
        if doc.get(key) is not None:
            out[key] = doc[key]
    out["environments"] = {name: {k: _anchor(v, base) if k in ("bus", "store") else v
                                  for k, v in env.items()}
                           for name, env in doc.get("environments", {}).items()}
    if doc.get("signing_key") is not None:
        out["signing_key"] = str(base / doc["signing_key"])
    trust = doc.get("trust")
    if trust is not None:
        out["trust"] = str(base / trust) if isinstance(trust, str) else tuple(trust)
    for key in ("bus", "store"):
        if doc.get(key) is not None:
            out[key] = _anchor(doc[key], base)
    out["bus_options"] = _options(doc.get("kafka", {}))
    out["store_options"] = _options(doc.get("store_options", {}))
    out["unit_settings"] = dict(doc.get("settings", {}))
    out["stages"] = tuple(_stage(raw) for raw in doc.get("stages", ()))
    if doc.get("tenants") is not None:
        out["tenants"] = source_of(doc["tenants"], doc.where("tenants"), base)
    templates = doc.get("templates", [])  # a LocatedList when it is given
    out["templates"] = tuple(TemplateSource(module, templates.where(i))
                             for i, module in enumerate(templates))
    return out


def _options(raw: Mapping[str, Any]) -> dict[str, str]:
    """Client options as the clients take them: text (``true``, not Python's ``True``)."""
    return {str(k): ("true" if v else "false") if isinstance(v, bool) else str(v)
            for k, v in raw.items()}


def _stage(raw: Located) -> StageSource:
    units = raw["units"]
    sources = (units,) if isinstance(units, str) else tuple(units)
    return StageSource(raw["name"], sources, raw.where("units"), raw.get("max_parallel"))


def _anchor(url: str, base: Path) -> str:
    scheme, sep, rest = url.partition(":")
    if sep and scheme in ("local", "file", "sqlite") and rest and not Path(rest).is_absolute():
        return f"{scheme}:{base / rest}"
    return url


_TENANT_VALUE = re.compile(r"\$\{tenant\.([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _tenant_values(value: Any, tenant: Tenant, where: str) -> Any:
    """``value`` (the ``settings`` block, any nesting) with ``${tenant.id}`` and
    ``${tenant.<key>}`` filled in for ``tenant``; other ``${...}`` are left as written."""
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            key, default = match.group(1), match.group(2)
            found = tenant.as_dict().get(key)
            if found is not None:
                return found
            if default is not None:
                return default
            raise ConfigError(f"{where}: ${{tenant.{key}}}: tenant {tenant.id!r} has no "
                              f"attribute {key!r} (it has {', '.join(tenant.as_dict())}); "
                              "give it one, a default under tenants.defaults, or write "
                              f"${{tenant.{key}:-value}}")

        return _TENANT_VALUE.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: _tenant_values(v, tenant, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_tenant_values(v, tenant, where) for v in value]
    return value
