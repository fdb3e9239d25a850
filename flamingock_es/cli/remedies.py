"""The engine's remedies, as the command lines a person types (the engine names none)."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import Remedy, RemedyKind

__all__ = ["REASON_PLACEHOLDER", "command", "to_resolve"]

REASON_PLACEHOLDER = "..."
"""Where the person writes why, in the commands this module writes: ``mark``, ``quarantine``
and ``vouch`` refuse it as it is (:func:`flamingock_es.cli.output.reason`)."""
_REASON = f'--reason "{REASON_PLACEHOLDER}"'


def command(remedy: Remedy) -> str:
    """``remedy`` as a ``flamingock-es`` command line."""
    kind = remedy.kind
    if kind is RemedyKind.MARK:
        choice = (remedy.marked_as or "APPLIED").lower().replace("_", "-")
        return (f"flamingock-es mark {remedy.unit_id} --as {choice} {_REASON} "
                f"--seen {remedy.position}")
    if kind is RemedyKind.ACCEPT_DRIFT:
        return "flamingock-es run --accept-drift (or accept_drift: true on the unit)"
    if kind is RemedyKind.QUARANTINE:
        return f"flamingock-es quarantine --offset {remedy.position} {_REASON}"
    if kind is RemedyKind.VOUCH:
        return f"flamingock-es vouch --through {remedy.position} {_REASON}"
    if kind is RemedyKind.KEYS:
        return "flamingock-es keys generate NAME"
    if kind is RemedyKind.INIT:
        return "flamingock-es init (or pass --config PATH)"
    if kind is RemedyKind.PROJECT:
        return "flamingock-es project --once"
    if kind is RemedyKind.PROJECT_REBUILD:
        return "flamingock-es project --rebuild"
    if kind is RemedyKind.PROJECT_TENANTS:
        return "flamingock-es project --all-tenants"
    if kind is RemedyKind.FORGET_HEAD:
        return f"rm {remedy.topic}   (after checking that starting over is what you want)"
    if kind is RemedyKind.ABORT_TRANSACTION:
        return (f"scripts/kafka-tool transactions abort --topic {remedy.topic} --partition "
                f"{remedy.partition or 0} --start-offset {remedy.position}")
    if kind is RemedyKind.TENANT:
        return f"the same command with --tenant {remedy.tenant or 'ID'}"
    if kind is RemedyKind.ROLLOUT:
        return f"flamingock-es rollout {_REASON}"
    if kind is RemedyKind.ROLLOUT_STATUS:
        return f"flamingock-es rollout status {remedy.rollout_id or ''}".rstrip()
    if kind is RemedyKind.ROLLOUT_RESUME:
        return f"flamingock-es rollout resume {remedy.rollout_id} {_REASON}"
    if kind is RemedyKind.DELETE_GROUP_OFFSETS:
        return (f"scripts/kafka-tool consumer-groups --delete-offsets --group {remedy.group} "
                f"--topic {remedy.topic}")
    return f"flamingock-es {kind.value}"  # status, verify


def to_resolve(remedies: Sequence[Remedy], indent: str = "  ") -> str:
    """``remedies`` as lines to append to a message: ``to resolve: CMD``, one per line."""
    if not remedies:
        return ""
    lead = f"{indent}to resolve: "
    lines = [command(r) for r in remedies]
    return "\n" + lead + f"\n{' ' * len(lead)}".join(lines)
