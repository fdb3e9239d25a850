"""The version of flamingock-es, in one place (the package and the audit events read it)."""

__version__ = "0.1.0"
