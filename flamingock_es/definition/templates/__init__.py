"""Templates: reusable steps that declarative (YAML/JSON) ChangeUnits name.

A template is a class with a ``name``, a pydantic ``Params`` model for each block, and
``apply``/``rollback`` methods. Ship one by subclassing :class:`Template` and registering it
with :func:`register` in a module the workflow file lists under ``templates:``, or publish it
through the ``flamingock_es.templates`` entry-point group (docs/templates.md).
"""

from __future__ import annotations

from .base import Template, TemplateParams, get_template, register, template_names

__all__ = ["Template", "TemplateParams", "get_template", "register", "template_names"]
