"""The template repo's own tasks (noxfile.py) as a user meets them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from bakery import ROOT

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


def test_lint_runs_the_ruff_the_test_extra_pins() -> None:
    """An unpinned ruff turned the default `lint` session red on a fresh clone (I001)."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pinned = re.search(r'"(ruff==[^"]+)"', pyproject)
    assert pinned, "expected ruff pinned with == in pyproject.toml's test extra"
    assert pinned.group(1) == noxfile.RUFF


def test_ci_runs_the_readme_checks_and_tests() -> None:
    """.ci/run runs what the README calls the checks (lint) and its test command."""
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "python3 noxfile.py -s tests" in readme
    for command in ("python3 noxfile.py -s lint", "python3 noxfile.py -s tests"):
        assert re.search(rf"^{re.escape(command)}\b", script, re.MULTILINE), command


def test_the_demo_refuses_a_python_the_template_does_not_support_before_installing() -> None:
    """`python3.13 noxfile.py -s demo` on a fresh clone installed for a minute, then failed in
    the pre-gen hook as if the user had passed python_version=3.13 (README: Python >= 3.10)."""
    problem = noxfile.demo_answers([], "3.13")
    assert isinstance(problem, str)
    assert "Python running nox, 3.13" in problem
    assert "3.10, 3.11, 3.12 for compute=cpu" in problem
    assert "python3.12 noxfile.py -s demo" in problem


def test_the_demo_bakes_the_running_python_unless_told_otherwise() -> None:
    assert noxfile.demo_answers(["project_name=Zeta"], "3.11") == [
        "project_name=Zeta",
        "python_version=3.11",
    ]
    assert noxfile.demo_answers(["python_version=3.13"], "3.11") == ["python_version=3.13"]
    # a compute the hook refuses is the hook's to report, with every other bad answer
    assert noxfile.demo_answers(["compute=tpu"], "3.13") == ["compute=tpu", "python_version=3.13"]


def test_the_demo_reads_the_supported_pythons_from_the_pre_gen_hook(tmp_path: Path) -> None:
    offered = noxfile.supported_pythons("cpu")
    assert offered and "3.13" not in offered
    with pytest.raises(subprocess.CalledProcessError) as refused:
        run("cookiecutter", str(ROOT), "--no-input", "-o", str(tmp_path), "python_version=3.13")
    assert b"Pass one of " + ", ".join(offered).encode() in refused.value.stderr
    run(
        "cookiecutter",
        str(ROOT),
        "--no-input",
        "-o",
        str(tmp_path),
        f"python_version={offered[-1]}",
    )
    assert (tmp_path / "shop-recs" / "environment.yml").is_file()
