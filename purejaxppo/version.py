"""The package version, in a module of its own so that modules can import it without importing
the package `__init__` (pyproject.toml's `version` must match)."""

__version__ = "0.1.0"
