"""Fixtures that bake the template with the real cookiecutter."""

from __future__ import annotations

from pathlib import Path

import pytest
from bakery import Bake, bake_into


@pytest.fixture
def bake(tmp_path: Path) -> Bake:
    """Bake into a fresh folder under tmp_path; call with cookiecutter answers."""
    counter = iter(range(1_000))

    def _bake(**answers: object) -> Path:
        return bake_into(tmp_path / f"bake{next(counter)}", **answers)

    return _bake
