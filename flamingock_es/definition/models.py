"""The models of what a person writes: ``flamingock.yaml`` and the YAML/JSON unit files.

Strict (:mod:`flamingock_es.core.strict`): a value of the wrong type is refused, never
converted, and an unknown key is a mistake. The same models are the published JSON Schemas
(:func:`json_schemas`, committed as ``schemas/flamingock.schema.json`` and
``schemas/unit.schema.json``) that editors check the files against as they are written, and
``docs/configuration.md`` describes every key they have.

Imported only to validate (a workflow file not checked before, a unit file being read) and
to write the schemas: a start-up with nothing new imports no pydantic.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, model_validator

from ..core.backend import NAMESPACE_PATTERN
from ..core.strict import StrictModel
from ..core.unit_fields import UnitFields
from .tenants import TENANT_PATTERN

__all__ = ["SCHEMA_FILES", "EnvironmentFile", "StageFile", "TenantsFile", "TrustedKeyFile",
           "UnitFile",
           "WorkflowFile", "json_schemas", "schema_texts"]

SCHEMA_FILES = ("flamingock.schema.json", "unit.schema.json")
"""The published schemas, in ``schemas/`` (package data, beside the Avro contract)."""

OptionValue = str | int | float | bool
"""An option of a client (librdkafka, the Couchbase SDK): given to it as text."""


class StageFile(StrictModel):
    """One stage: a name, and where its units are."""

    name: str = Field(min_length=1, description="The stage's name, unique in the workflow.")
    units: str | list[str] = Field(description=(
        "Where the stage's units are: folders (every .py, .yaml, .yml and .json in them), "
        "single files, or dotted Python package names; paths relative to the workflow file."))
    max_parallel: int | None = Field(None, ge=1, description=(
        "At most this many of the stage's units at once (within the workflow's "
        "max_parallel)."))


class EnvironmentFile(StrictModel):
    """One environment (--env NAME): what it changes of the workflow's settings."""

    namespace: str | None = Field(None, pattern=NAMESPACE_PATTERN, description=(
        "Its namespace: its own audit log, lock and history."))
    bus: str | None = Field(None, description="Its audit log and lock, as `bus`.")
    kafka: dict[str, OptionValue] = Field(default_factory=dict, description=(
        "Kafka options over the workflow's."))
    store: str | None = Field(None, description="Its projection store, as `store`.")
    store_options: dict[str, OptionValue] = Field(default_factory=dict, description=(
        "Projection store options over the workflow's."))
    settings: dict[str, Any] = Field(default_factory=dict, description=(
        "Merged over the workflow's settings block (ctx.settings, and `settings` in "
        "when: conditions)."))
    labels: list[str] = Field(default_factory=list, description=(
        "The labels its runs carry unless --labels names others."))


class TrustedKeyFile(StrictModel):
    """One key of the trust store (docs/compliance.md)."""

    key: str = Field(min_length=1, description="A public key file (PEM), relative to the file "
                     "that names it.")
    principal: str = Field(min_length=1, description="The name the audit shows for the key.")
    write: str | list[str] = Field(default_factory=list, description=(
        "Namespaces whose log it may append to ('*': any)."))
    request: str | list[str] = Field(default_factory=list, description=(
        "Namespaces it may request changes for ('*': any)."))


TenantId = Annotated[str, Field(pattern=TENANT_PATTERN)]
TenantEntry = TenantId | dict[str, OptionValue]
"""A tenant: its id, or a mapping with an ``id`` and its attributes (``${tenant.<key>}``)."""


class TenantsFile(StrictModel):
    """Where a workflow's tenants come from: exactly one of ``list``, ``file``, ``command``."""

    entries: list[TenantEntry] | None = Field(None, alias="list", description=(
        "The tenants: ids, or mappings with an id and attributes ({id: acme, region: eu})."))
    file: str | None = Field(None, min_length=1, description=(
        "A file of tenants, relative to the workflow file: a YAML or JSON list like list:, "
        "or text with one id a line (# comments)."))
    command: str | list[str] | None = Field(None, description=(
        "A program that prints the tenants: one a line (an id, or a JSON object with an id), "
        "or one JSON list. Run from the workflow file's folder; a list is its argv, text is "
        "split like a shell line (no shell)."))
    timeout: float = Field(30.0, gt=0, description=(
        "Seconds the command may take (then nothing is started)."))
    defaults: dict[str, OptionValue] = Field(default_factory=dict, description=(
        "Attributes every tenant has unless it sets its own."))

    @model_validator(mode="after")
    def _one_source(self) -> TenantsFile:
        given = [name for name, value in (("list", self.entries), ("file", self.file),
                                          ("command", self.command)) if value is not None]
        if len(given) != 1:
            raise ValueError("tenants needs exactly one of list, file or command"
                             + (f", not {' and '.join(given)}" if given else ""))
        return self


class WorkflowFile(StrictModel):
    """``flamingock.yaml``: a namespace, its stages, and how to reach its log."""

    namespace: str = Field(pattern=NAMESPACE_PATTERN, description=(
        "The namespace: one audit log, one lock. Letters, digits, '.', '_' or '-'. A flag "
        "(--namespace) wins over it; FLAMINGOCK_NAMESPACE applies only without a file."))
    name: str | None = Field(None, min_length=1, description=(
        "The workflow's name in the audit log (default: the namespace)."))
    stages: list[StageFile] = Field(default_factory=list, description=(
        "The ordered stages; units of a stage run one after another in their order."))
    templates: list[str] = Field(default_factory=list, description=(
        "Modules that register custom templates (dotted names, or .py files relative to "
        "the workflow file), imported before any unit on every load (docs/templates.md)."))
    bus: str | None = Field(None, description=(
        "The audit log and lock: local:PATH (the embedded default, local:.flamingock) or "
        "kafka://HOST:PORT[,HOST:PORT]. --bus wins over it; FLAMINGOCK_BUS applies without it."))
    kafka: dict[str, OptionValue] = Field(default_factory=dict, description=(
        "Options of the Kafka bus: topic_prefix, replication_factor, and librdkafka "
        "properties (security.protocol, sasl.*, ssl.*) for every client."))
    store: str | None = Field(None, description=(
        "The projection store: sqlite:PATH (default sqlite:.flamingock/projections.db) or "
        "couchbase://HOST?bucket=NAME. --store wins; FLAMINGOCK_STORE applies without it."))
    store_options: dict[str, OptionValue] = Field(default_factory=dict, description=(
        "Options of the projection store (Couchbase: user, password, bucket, scope, "
        "collection, timeout)."))
    settings: dict[str, Any] = Field(default_factory=dict, description=(
        "Handed to every unit as ctx.settings: service addresses, couchbase_url, "
        "kafka_bootstrap, kafka_client, ..."))
    compensate: Literal["run", "failed-unit"] = Field("run", description=(
        "What a failed run compensates: everything the run applied, newest first (run), or "
        "the failed unit only (failed-unit)."))
    lock_timeout: float = Field(60.0, ge=0, description=(
        "Seconds to wait for the namespace's lock before giving up (exit 3)."))
    max_parallel: int = Field(1, ge=1, description=(
        "Units whose requirements are met run side by side, at most this many at once "
        "(default 1: one after another, as listed)."))
    on_failure: Literal["stop", "isolate"] = Field("stop", description=(
        "After a unit fails: stop (start nothing more, compensate what the run applied) or "
        "isolate (skip only what depends on it; the run is PARTIAL)."))
    environments: dict[str, EnvironmentFile] = Field(default_factory=dict, description=(
        "Named environments (--env NAME), each with its own namespace and settings."))
    grace_period: float = Field(20.0, ge=0, description=(
        "After a first SIGTERM/SIGINT, seconds the current change may take to finish."))
    signing_key: str | None = Field(None, min_length=1, description=(
        "This runner's Ed25519 private key file, relative to the workflow file "
        "(docs/compliance.md)."))
    trust: str | list[TrustedKeyFile] | None = Field(None, description=(
        "The trust store: a list of trusted keys, or a folder (relative to the workflow "
        "file) holding a trust.yaml of that list."))
    tenants: list[TenantEntry] | TenantsFile | None = Field(None, description=(
        "The tenants the workflow is applied to, each its own namespace NAMESPACE.ID: a "
        "list, or a mapping naming a file or a command (docs/tenants.md)."))


class UnitFile(UnitFields):
    """A declarative ChangeUnit: the fields every unit has, a template and its blocks."""

    template: str = Field(min_length=1, description=(
        "The template that carries it out: http-request, python-call, kafka-topic, "
        "couchbase-document, or one registered (docs/templates.md)."))
    apply: dict[str, Any] = Field(description=(
        "The template's parameters for applying it; ${VAR} and ${VAR:-default} are "
        "resolved from the environment when it runs."))
    rollback: dict[str, Any] | None = Field(None, description=(
        "The template's parameters for compensating it (omit it if the template has no "
        "rollback)."))
    precondition: dict[str, Any] | None = Field(None, description=(
        "The template's parameters for a read-only check before the apply (http-request: a "
        "call whose status is one of expect_status; python-call: a function returning true); "
        "on_fail says what happens when it does not hold."))


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas of a workflow file and of a unit file (one unit, or a list), by the
    file name they are published under."""
    workflow = WorkflowFile.model_json_schema()
    unit = TypeAdapter(UnitFile | list[UnitFile]).json_schema()
    out = {}
    for name, schema, title in ((SCHEMA_FILES[0], workflow, "flamingock-es workflow file"),
                                (SCHEMA_FILES[1], unit, "flamingock-es ChangeUnit file")):
        out[name] = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                     **schema, "title": title}
    return out


def schema_texts() -> dict[str, str]:
    """:func:`json_schemas` as the committed files hold them (``scripts/schemas`` writes
    them; a test checks that they are current)."""
    return {name: json.dumps(schema, indent=2) + "\n" for name, schema in json_schemas().items()}
