"""``python-call``: call a Python function by dotted path, with keyword arguments.

```yaml
template: python-call
apply:    {function: "shop.migrations:add_field", args: {collection: users, field: tier}}
rollback: {function: "shop.migrations:drop_field", args: {collection: users, field: tier}}
```
The function receives the ``ChangeContext`` too when it has a parameter named ``ctx``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from pydantic import Field

from ...core.changes import ChangeContext
from ...errors import TemplateError
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
        except TemplateError as exc:
            raise TemplateError(f"{where}: {exc}") from exc

    def apply(self, params: CallParams, ctx: ChangeContext) -> None:
        _invoke(params, ctx)

    def rollback(self, params: CallParams, ctx: ChangeContext) -> None:
        _invoke(params, ctx)


def _invoke(params: CallParams, ctx: ChangeContext) -> None:
    function = _resolve(params.function)
    kwargs = dict(params.args)
    if "ctx" in inspect.signature(function).parameters:
        kwargs["ctx"] = ctx
    function(**kwargs)


def _resolve(path: str) -> Callable[..., Any]:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise TemplateError(f"python-call: cannot find function {path!r} ({exc})") from exc
    if not callable(target):
        raise TemplateError(f"python-call: {path!r} is not callable")
    return target  # type: ignore[no-any-return]
