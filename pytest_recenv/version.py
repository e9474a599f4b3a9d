"""The version of pytest-recenv (``pyproject.toml`` says the same; a release test checks it)."""

__version__ = "0.1.0"
