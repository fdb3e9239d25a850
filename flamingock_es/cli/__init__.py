"""``flamingock-es``: the command line, a thin layer over the library API.

Exit codes: 0 success (or nothing to do); 1 unexpected error; 2 invalid configuration or
change file; 3 lock timeout or lock lost; 4 undecodable or inconsistent audit log; 5 an audit
event or projection could not be written (or Kafka is unreachable); 6 checksum drift; 7 manual
intervention required (`plan --check` says 6 and 7 before a run would); 8 a unit (or an
undo's rollback) failed, after compensation; 9 the run was stopped between units (SIGTERM or
SIGINT; nothing in doubt); 130/143 a signal interrupted a change that could not finish in the
grace period (it is recorded as interrupted); 141 the output's reader went away. The table
is cli/status_codes.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence

from .._version import __version__
from ..errors import FlamingockError
from ..telemetry import setup as tracing
from . import audit, authoring, bus, dashboard, evidence, keys, projection, rollout, run
from .console import ConsoleLogHandler, console_for
from .remedies import to_resolve
from .status_codes import BROKEN_PIPE, INTERRUPTED, exit_code

__all__ = ["build_parser", "first_sentence", "main"]

Handler = Callable[[argparse.Namespace], int]
FLOWS = (authoring, run, rollout, audit, evidence, bus, projection, dashboard, keys)
"""The command modules, one per flow; each adds its commands with ``register``."""
UNIT_LOGGER = "flamingock_es.unit"
"""The logger a unit's ``ctx.log`` writes to."""


def build_parser() -> argparse.ArgumentParser:
    """One parser: a subcommand per command. The common options may come before the command
    or after it (``flamingock-es -v run`` and ``flamingock-es run -v``)."""
    parser = argparse.ArgumentParser(
        prog="flamingock-es", parents=[_common(top=True)],
        description="Apply ChangeUnits exactly once under a distributed lock, with every step "
                    "recorded as an Avro event in an append-only audit log.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"flamingock-es {__version__}")
    common = _common(top=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler) -> argparse.ArgumentParser:
        doc = (handler.__doc__ or "").strip()
        p = sub.add_parser(name, parents=[common], help=first_sentence(doc), description=doc)
        p.set_defaults(handler=handler)
        return p

    for flow in FLOWS:
        flow.register(add)
    return parser


def _common(*, top: bool) -> argparse.ArgumentParser:
    """The options every command takes. The top-level parser holds their defaults; a
    command's own copy leaves an option it was not given alone (``SUPPRESS``), so that one
    given before the command name is not reset by the command's parser."""
    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", default=default("flamingock.yaml"),
                        help="workflow file (default: ./flamingock.yaml)")
    common.add_argument("--bus", default=default(None),
                        help="audit log and lock: local:PATH (default local:.flamingock) or "
                             "kafka://HOST:PORT; overrides the workflow file")
    common.add_argument("--namespace", default=default(None),
                        help="namespace; overrides the workflow file")
    common.add_argument("--env", dest="environment", metavar="NAME", default=default(None),
                        help="an environment the workflow file declares (its namespace and "
                             "settings); default: $FLAMINGOCK_ENV")
    common.add_argument("--labels", metavar="A,B", default=default(None),
                        help="the run's labels, for when: conditions (default: the "
                             "environment's)")
    common.add_argument("--tenant", metavar="ID", default=default(None),
                        help="one tenant of a workflow with tenants: (its namespace is "
                             "NAMESPACE.ID, its own log, lock and history)")
    common.add_argument("--json", action="store_true", default=default(False),
                        help="machine-readable output on stdout")
    common.add_argument("-q", "--quiet", action="store_true", default=default(False),
                        help="no progress output")
    common.add_argument("-v", "--verbose", action="store_true", default=default(False),
                        help="debug logging")
    return common


def first_sentence(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, for a command's one-line help
    (its first line may end mid-sentence)."""
    paragraph = " ".join(doc.split("\n\n", 1)[0].split())
    match = re.search(r"[.!?](?=\s|$)", paragraph)
    return paragraph[:match.end()] if match else paragraph


def configure_logging(verbose: bool, quiet: bool) -> None:
    """Log records go through stderr's console, so they never break a progress line. The
    units' own messages (``ctx.log``) show at INFO unless -q: a person running them wants
    to see them; the rest of the library speaks at WARNING (DEBUG with -v)."""
    handler = ConsoleLogHandler(console_for(sys.stderr))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    # a second main() in one process (tests) replaces its own handler, and only that
    root.handlers[:] = [*(h for h in root.handlers if not isinstance(h, ConsoleLogHandler)),
                        handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger(UNIT_LOGGER).setLevel(
        logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flamingock-es`` console script."""
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    tracing.configure()
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # here, so that a reader gone away is handled below, not at exit
    except FlamingockError as exc:
        _tell(f"flamingock-es: error: {exc}{to_resolve(exc.remedies)}")
        return exit_code(exc)
    except KeyboardInterrupt:
        _tell("flamingock-es: interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): say nothing more, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    finally:
        tracing.shutdown()
    return code


def _tell(message: str) -> None:
    """An error on stderr; dropped if stderr's reader went away too."""
    console_for(sys.stderr).log(message)
