"""Secrets: the one rule that says which values never reach the audit log or any output.

A value written to an append-only log can never be removed, so the rule errs on the side of
hiding. A value is secret when the name it is given under says so: the key of a parameter
(at any depth, a header's name included), or the name of the environment variable it came
from. Names are compared case- and separator-insensitively, so ``db_password``,
``dbPassword``, ``DB-PASSWORD`` and ``X-Db-Password`` are one name:

* a name that contains ``password``, ``passwd``, ``passphrase``, ``secret``, ``token``,
  ``credential``, ``authorization``, ``cookie``, ``apikey``, ``privatekey``,
  ``accesskey`` or ``signingkey`` (``client_secret``, ``access_token``, ``Set-Cookie``,
  ``X-Api-Key``, ``private_key``);
* a name with one of the words ``pass``, ``pwd`` or ``auth`` (``DB_PASS``, ``auth``);
* a name the unit lists in its ``secrets`` (or its template declares secret).

A bare ``key`` is not a secret: it names documents and messages, which the audit must show.

Three things follow from the rule: :func:`redact` hides the values under secret names in
parameters (the audit log's ``ChangeStarted.parameters``, ``plan --show``);
:func:`secret_values` collects the values a step can see under secret names (its resolved
parameters, its settings, the environment's secret variables); :func:`scrub` replaces any of
them found in a text (an error message, a traceback) before it is recorded or shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret", "redact", "scrub", "secret_values"]

REDACTED = "***"
"""What a secret value is replaced with."""

_PARTS = ("password", "passwd", "passphrase", "secret", "token", "credential",
          "authorization", "cookie", "apikey", "privatekey", "accesskey", "signingkey")
_WORDS = frozenset({"pass", "pwd", "auth"})
_SPLIT = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_MIN_SCRUBBED = 4
"""Shorter values are not searched for in texts: ``"1"`` would wreck every message."""


def _normal(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def is_secret(name: object, extra: Iterable[str] = ()) -> bool:
    """True if a value given under ``name`` is secret (``extra``: names the unit declared)."""
    text = str(name)
    normal = _normal(text)
    if not normal:
        return False
    if any(part in normal for part in _PARTS):
        return True
    if any(word.lower() in _WORDS for word in _SPLIT.findall(text)):
        return True
    return normal in {_normal(e) for e in extra}


def redact(value: Any, secrets: Iterable[str] = (), key: str = "") -> Any:
    """``value`` with every value under a secret name (at any depth) replaced by ``***``."""
    names = secrets if isinstance(secrets, frozenset | set) else frozenset(secrets)
    if key and is_secret(key, names):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact(v, names, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, names) for v in value]
    return value


def secret_values(*sources: Any, secrets: Iterable[str] = (),
                  env: Mapping[str, str] | None = None) -> frozenset[str]:
    """Every value found under a secret name in ``sources`` (resolved parameters, settings:
    any nesting), and the values of ``env``'s variables whose names are secret."""
    names = frozenset(secrets)
    found: set[str] = set()

    def leaves(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                leaves(item)
        elif isinstance(value, list | tuple):
            for item in value:
                leaves(item)
        elif value is not None and not isinstance(value, bool):
            _add(found, str(value))

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for k, item in value.items():
                (leaves if is_secret(k, names) else walk)(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    for source in sources:
        walk(source)
    for name, value in (env or {}).items():
        if is_secret(name):
            _add(found, value)
    return frozenset(found)


def _add(found: set[str], value: str) -> None:
    """A secret value, and its credential alone when it has a scheme (``Bearer abc...``)."""
    if len(value) >= _MIN_SCRUBBED:
        found.add(value)
    for part in value.split()[1:]:
        if len(part) >= _MIN_SCRUBBED:
            found.add(part)


def scrub(text: str, values: Iterable[str]) -> str:
    """``text`` with every one of ``values`` in it replaced by ``***``, longest first."""
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    return text
