"""Adapters of the ports: ``local`` (the embedded default) and ``kafka``."""
