"""``python-call``: call a Python function by dotted path, with keyword arguments.

```yaml
template: python-call
apply:    {function: "shop.migrations:add_field", args: {collection: users, field: tier}}
rollback: {function: "shop.migrations:drop_field", args: {collection: users, field: tier}}
```
The function receives the ``ChangeContext`` too when it has a parameter named ``ctx``.

A function that cannot be found (no such module or attribute, not callable) stops the run
before it takes the lock (and ``plan --check``); one that does not take the arguments given
is never called: the step fails as *not started* (``StepNotStarted``), so no rollback runs
and the next run calls it once the block is fixed.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from pydantic import Field

from ...core.changes import ChangeContext
from ...errors import StepNotStarted, TemplateError
from .base import Template, TemplateParams, register

__all__ = ["PythonCall"]


class CallParams(TemplateParams):
    function: str = Field(description="module.path:function (or module.path.function)")
    args: dict[str, Any] = Field(default_factory=dict)


@register
class PythonCall(Template):
    name = "python-call"
    Params = CallParams

    def check(self, params: TemplateParams, where: str) -> None:
        """The function can be found: imported and callable, before the run takes the lock
        (and in ``plan --check``), not in the middle of a run."""
        assert isinstance(params, CallParams)
        try:
            _resolve(params.function)
        except StepNotStarted as exc:
            raise TemplateError(f"{where}: {exc}") from exc

    def apply(self, params: CallParams, ctx: ChangeContext) -> None:
        _invoke(params, ctx)

    def rollback(self, params: CallParams, ctx: ChangeContext) -> None:
        _invoke(params, ctx)

    def precondition(self, params: CallParams, ctx: ChangeContext) -> bool:
        """The function returns a true value."""
        return bool(_invoke(params, ctx))


def _invoke(params: CallParams, ctx: ChangeContext) -> object:
    function = _resolve(params.function)
    kwargs = dict(params.args)
    try:
        signature: inspect.Signature | None = inspect.signature(function)
    except (TypeError, ValueError):  # some builtins have none: let the call say
        signature = None
    if signature is not None:
        if "ctx" in signature.parameters:
            kwargs["ctx"] = ctx
        try:
            signature.bind(**kwargs)
        except TypeError as exc:
            raise StepNotStarted(f"python-call: {params.function} was not called: {exc}; "
                                 "fix args and run again") from exc
    return function(**kwargs)


def _resolve(path: str) -> Callable[..., Any]:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise StepNotStarted(f"python-call: cannot find function {path!r} ({exc}); nothing "
                             "was called. Fix the path and run again.") from exc
    if not callable(target):
        raise StepNotStarted(f"python-call: {path!r} is not callable; nothing was called")
    return target  # type: ignore[no-any-return]
