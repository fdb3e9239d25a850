"""Templates: reusable steps that declarative (YAML/JSON) ChangeUnits name.

A template is a class with a ``name``, a pydantic ``Params`` model for each block, and
``apply``/``rollback`` methods. Ship one by subclassing :class:`Template` and registering
it with :func:`register` (or through the ``flamingock_es.definition.templates`` entry-point group).
"""

from __future__ import annotations

from .base import Template, get_template, register, template_names

__all__ = ["Template", "get_template", "register", "template_names"]
