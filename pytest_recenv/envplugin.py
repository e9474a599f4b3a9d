"""pytest hooks and fixtures for environments built from environment.yml (recenv_spec, recenv_env)."""

from __future__ import annotations
