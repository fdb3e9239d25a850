"""``plan --show``: what each unit a run would apply is going to do, as far as it is known
before it runs (like Liquibase's update-sql or Alembic's ``--sql``).

A template unit shows its blocks with ``${VAR}`` resolved from this environment; a Python
unit, its parameters and its source. Secrets never show: a value under a secret name, and
the value of a variable whose name is secret, print as ``***`` (the one rule of
:mod:`flamingock_es.core.secrets`: ``db_password``, ``Cookie``, ``access_token``, ``DB_PASS``,
the unit's ``secrets``, ...). A variable that is not set stays ``${VAR}`` and is listed:
``run`` would stop on it before taking the lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ..core.changes import ChangeUnit, resolve
from ..core.secrets import REDACTED, is_secret, redact

__all__ = ["Preview", "preview", "render"]


@dataclass(frozen=True)
class Preview:
    """One unit as ``plan --show`` prints it."""

    label: str
    """``stage/unit``."""
    kind: str
    """The template's name, or ``python``."""
    source: str
    blocks: Mapping[str, Any]
    """``apply``/``rollback`` blocks of a template unit; ``parameters`` of a Python unit."""
    rollback: bool
    unset: tuple[str, ...]
    """Variables the unit uses that this environment does not set."""
    checksum: str
    """What the run will record: a reviewer can compare it with the log later."""

    def as_json(self) -> dict[str, Any]:
        return {"unit": self.label, "kind": self.kind, "source": self.source,
                "checksum": self.checksum,
                "blocks": dict(self.blocks), "rollback": self.rollback,
                "unset": list(self.unset)}


def preview(label: str, unit: ChangeUnit, env: Mapping[str, str]) -> Preview:
    """``unit``'s resolved, redacted parameters, with ``env`` as the environment."""
    shown = {name: REDACTED if is_secret(name) else value
             for name, value in env.items()}
    unset: list[str] = []
    resolved = _resolve_all(dict(unit.parameters), shown, unset)
    blocks = redact(resolved, unit.secrets)
    if unit.template is None:
        blocks = {"parameters": blocks}
    return Preview(label, unit.template or "python", unit.source, blocks,
                   unit.rollback is not None, tuple(dict.fromkeys(unset)), unit.checksum)


def _resolve_all(value: Any, env: Mapping[str, str], unset: list[str]) -> Any:
    """``value`` with every ``${VAR}`` resolved; an unset one is kept as written and noted."""
    if isinstance(value, Mapping):
        return {k: _resolve_all(v, env, unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_all(v, env, unset) for v in value]
    if not isinstance(value, str):
        return value
    kept: dict[str, str] = {}
    while True:
        try:
            return resolve(value, {**env, **kept})
        except KeyError as missing:
            name = str(missing.args[0])
            unset.append(name)
            kept[name] = f"${{{name}}}"


def render(item: Preview) -> str:
    """The preview as indented text: a heading line, then the blocks as YAML."""
    notes = "" if item.rollback else "  (no rollback)"
    lines = [f"{item.label}  {item.kind}  {item.source}{notes}"]
    body = yaml.safe_dump(dict(item.blocks), sort_keys=False, default_flow_style=False,
                          allow_unicode=True, width=96).rstrip()
    lines += [f"    {line}" for line in body.splitlines()]
    if item.unset:
        lines.append(f"    not set here: {', '.join(item.unset)} (run would stop before "
                     "taking the lock)")
    return "\n".join(lines)
