"""Defining a workflow: settings, the units of its stages (Python or YAML through templates),
loaded from files."""
