"""The plughost version (one place; the host checks plugins' `host` ranges against it)."""

__version__ = "0.1.0"
