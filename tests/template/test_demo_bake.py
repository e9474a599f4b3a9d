"""`python3 noxfile.py -s demo` bakes into out/<slug>: a re-run replaces that folder wholesale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import noxfile

COOKIECUTTER = str(Path(sys.executable).with_name("cookiecutter"))


def run(*command: str) -> None:
    subprocess.run([COOKIECUTTER, *command[1:]], check=True, capture_output=True, timeout=300)


def test_a_second_demo_bake_replaces_the_first_and_keeps_no_stale_file(tmp_path: Path) -> None:
    first = noxfile.bake_fresh(tmp_path, ["python_version=3.11"], run=run)
    stale = first / "environment.linux-64.conda.lock"  # what changed the env a user got
    stale.write_text("stale lock from an earlier run\n")
    second = noxfile.bake_fresh(tmp_path, ["python_version=3.11"], run=run)
    assert second == first == tmp_path / "shop-recs"
    assert not stale.exists()
    assert (second / "environment.yml").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["shop-recs"]  # no staging folder left


def test_a_folder_the_demo_did_not_bake_is_never_replaced(tmp_path: Path) -> None:
    mine = tmp_path / "shop-recs"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's own work\n")
    with pytest.raises(SystemExit, match="not ours to replace"):
        noxfile.bake_fresh(tmp_path, ["python_version=3.11"], run=run)
    assert (mine / "notes.txt").read_text() == "the user's own work\n"
    assert [p.name for p in tmp_path.iterdir()] == ["shop-recs"]
