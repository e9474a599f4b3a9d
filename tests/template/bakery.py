"""Baking the template with the real cookiecutter (shared by the template tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[2]

Bake = Callable[..., Path]


def bake_into(output_dir: Path, **answers: object) -> Path:
    """Bake the template with `answers` (cookiecutter's extra_context) and return the project."""
    context = {k: v if isinstance(v, bool) else str(v) for k, v in answers.items()}
    return Path(
        cookiecutter(str(ROOT), no_input=True, output_dir=str(output_dir), extra_context=context)
    )
