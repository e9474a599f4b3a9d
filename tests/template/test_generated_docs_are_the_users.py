"""A generated project's README and docs hold what its user needs, not our diary.

Dated measurements, the machines we measured on and long result tables belong to this
repository's docs (docs/measurements.md, each figure with its command); the generated files say
how to measure (`nox -s bench`) and what the numbers mean.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bakery import bake_into

DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
GPU_MODEL = re.compile(r"\b(?:H100|H200|GH200|A100|V100|T4|L4|L40S?|RTX)\b")
SCRATCH = re.compile(r"scratch", re.IGNORECASE)
MAX_README_CELL = 300
# A table cell boundary: a `|` that Markdown does not treat as escaped (`\|` inside a cell).
CELL_SEPARATOR = re.compile(r"(?<!\\)\|")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template baked with its default answers, as a user first gets it."""
    return bake_into(tmp_path_factory.mktemp("defaults"))


def user_docs(project: Path) -> list[Path]:
    return [project / "README.md", *sorted((project / "docs").glob("*.md"))]


def findings(project: Path, pattern: re.Pattern[str]) -> list[str]:
    found = []
    for path in user_docs(project):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in pattern.finditer(line):
                found.append(f"{path.relative_to(project)}:{number}: {match.group(0)!r}")
    return found


def test_the_generated_readme_and_docs_exist(project: Path) -> None:
    assert (project / "README.md").is_file()
    assert len(user_docs(project)) > 1


def test_generated_docs_carry_no_dates(project: Path) -> None:
    assert not findings(project, DATE), "dated measurements go to docs/measurements.md"


def test_generated_docs_name_no_gpu_model(project: Path) -> None:
    assert not findings(project, GPU_MODEL), "machine names go to docs/measurements.md"


def test_generated_docs_tell_no_scratch_runs(project: Path) -> None:
    assert not findings(project, SCRATCH), "development history goes to docs/measurements.md"


def test_generated_readme_table_cells_stay_short(project: Path) -> None:
    long_cells = []
    lines = (project / "README.md").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.lstrip().startswith("|"):
            continue
        for cell in CELL_SEPARATOR.split(line.strip().strip("|")):
            if len(cell.strip()) > MAX_README_CELL:
                long_cells.append(f"README.md:{number}: {len(cell.strip())} characters")
    assert not long_cells, f"cells over {MAX_README_CELL} characters: {long_cells}"
