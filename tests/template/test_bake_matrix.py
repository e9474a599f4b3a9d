"""Bake every supported combination and check what the template generates."""

from __future__ import annotations

import ast
import json
import py_compile
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from bakery import ROOT, Bake

# (id, answers): readable ids, one per supported combination worth telling apart.
MATRIX = [
    ("defaults", {}),
    ("compute:cpu-python:3.11", {"python_version": "3.11"}),
    ("compute:cpu-python:3.12-stage:prod", {"python_version": "3.12", "stage": "prod"}),
    ("compute:cuda12-python:3.10", {"compute": "cuda12"}),
    ("compute:cuda12-python:3.12-license:Apache", {"compute": "cuda12", "python_version": "3.12",
                                                   "license": "Apache-2.0"}),
    ("no-serving", {"include_serving": False}),
    ("no-docker-ci:none", {"include_docker": False, "ci": "none"}),
    ("minimal", {"include_serving": False, "include_docker": False, "ci": "none",
                 "license": "Proprietary"}),
    ("name:quotes-unicode", {"project_name": "Café l'Été \"Best\" \\ Recs 😀", "owner": "zoe"}),
    ("slug:40-chars", {"project_slug": "enterprise-grade-recommendations-platfrm"}),
]  # fmt: skip

# Text that must never survive rendering, in any file or path.
UNRENDERED = re.compile(r"\{\{-?\s*cookiecutter|\{%-?\s*(if|elif|else|endif|for|raw|now)\b")


def files_of(project: Path) -> list[Path]:
    return sorted(p for p in project.rglob("*") if p.is_file())


@pytest.fixture(params=[answers for _, answers in MATRIX], ids=[i for i, _ in MATRIX])
def baked(request: pytest.FixtureRequest, bake: Bake) -> tuple[Path, dict]:
    answers = request.param
    return bake(**answers), answers


def test_nothing_is_left_unrendered(baked: tuple[Path, dict]) -> None:
    project, _ = baked
    for path in [project, *project.rglob("*")]:
        assert "{{" not in path.name and "{%" not in path.name, path
        if path.is_file() and path.suffix != ".png":
            text = path.read_text(encoding="utf-8")
            assert not UNRENDERED.search(text), f"{path}: {UNRENDERED.search(text)}"


# Leftovers of patch(1), editors and merges: never part of a generated project.
LEFTOVERS = re.compile(r"(\.orig|\.rej|\.bak|\.swp|~)$")


def test_no_patch_or_editor_leftovers_are_generated(baked: tuple[Path, dict]) -> None:
    project, _ = baked
    assert not [p for p in files_of(project) if LEFTOVERS.search(p.name)]


def test_generated_python_compiles(baked: tuple[Path, dict], tmp_path: Path) -> None:
    project, _ = baked
    sources = [p for p in files_of(project) if p.suffix == ".py"]
    assert sources
    for source in sources:
        py_compile.compile(str(source), cfile=str(tmp_path / "x.pyc"), doraise=True)


def assert_ruff_clean(project: Path) -> None:
    """`ruff check` and `ruff format --check` pass with the ruff the project pins."""
    ruff = shutil.which("ruff") or pytest.fail("expected ruff on PATH (the test extra), found none")
    hooks = yaml.safe_load((project / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    ruff_hooks = [r for r in hooks["repos"] if r["repo"].endswith("/ruff-pre-commit")]
    pinned = ruff_hooks[0]["rev"].lstrip("v")
    found = subprocess.run([ruff, "--version"], capture_output=True, text=True).stdout.split()[-1]
    assert found == pinned, (
        f"expected ruff {pinned} (the generated pre-commit's ruff-pre-commit rev), found {found}: "
        f"install ruff=={pinned} or move both pins together"
    )
    assert f'RUFF = "ruff=={pinned}"' in (project / "noxfile.py").read_text(encoding="utf-8")
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [ruff, *args, "--no-cache", "."], cwd=project, capture_output=True, text=True
        )
        assert result.returncode == 0, f"ruff {' '.join(args)}:\n{result.stdout}{result.stderr}"


def test_generated_python_is_ruff_clean_and_formatted(baked: tuple[Path, dict]) -> None:
    # The generated pre-commit runs ruff-check and ruff-format on --all-files in CI: a fresh
    # project must pass both untouched, whatever the package name's length.
    project, _ = baked
    assert_ruff_clean(project)


# Project names whose package lands on either side of every import-sorting boundary: the tests'
# sibling modules (test_benchmarks, test_serving, test_training), `te`/`test`/`tests` prefixes,
# both ends of the alphabet, and non-ASCII text that slugifies to ASCII. Only the import layout
# depends on the name, so these bakes run the lint checks, not the whole matrix.
SORT_NAMES = [
    pytest.param("A Recs", id="name:a"),
    pytest.param("Te Recs", id="name:te"),
    pytest.param("Test Recs", id="name:test"),
    pytest.param("Test Zeta", id="name:test-after-siblings"),
    pytest.param("Tests Recs", id="name:tests"),
    pytest.param("Zeta Recs", id="name:z"),
    pytest.param("Ünïcødé Shöp", id="name:non-ascii"),
]


@pytest.mark.parametrize("name", SORT_NAMES)
def test_a_fresh_project_passes_its_lint_whatever_its_name_sorts_like(
    name: str, bake: Bake
) -> None:
    project = bake(project_name=name)
    assert_ruff_clean(project)


def test_nox_lint_checks_the_files_the_pre_commit_ruff_hooks_check(bake: Bake) -> None:
    # pre-commit hands ruff every tracked Python, stub and notebook file; `nox -s lint` names
    # paths. The two must agree, or one lane passes what the other fails.
    project = bake(project_name="Zeta Recs")
    ruff = shutil.which("ruff") or pytest.fail("expected ruff on PATH (the test extra), found none")
    hooks = yaml.safe_load((project / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    ruff_repo = next(r for r in hooks["repos"] if r["repo"].endswith("/ruff-pre-commit"))
    for hook in ruff_repo["hooks"]:
        assert not {"files", "exclude", "types", "types_or"} & hook.keys(), hook
    noxfile = (project / "noxfile.py").read_text(encoding="utf-8")
    paths = re.search(r"^PYTHON_PATHS = (\(.*\))$", noxfile, re.M)
    assert paths, "expected PYTHON_PATHS = (...) in the generated noxfile"

    def shown(*targets: str) -> set[str]:
        out = subprocess.run(
            [ruff, "check", "--no-cache", "--show-files", *targets],
            cwd=project, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return {
            Path(line.strip()).relative_to(project).as_posix()
            for line in out.splitlines()
            if line.strip().endswith((".py", ".pyi", ".ipynb"))
        }

    assert shown(*ast.literal_eval(paths.group(1))) == shown(".")


def test_gitignore_covers_what_the_projects_own_tools_write(baked: tuple[Path, dict]) -> None:
    project, answers = baked
    ignored = (project / ".gitignore").read_text(encoding="utf-8").splitlines()
    expected = {".nox/", ".pytest_cache/", ".ruff_cache/", "runs/", "artifacts/"}
    if answers.get("include_serving", True):
        expected.add(".schemathesis/")  # benchmarks/fuzz.py runs schemathesis in the project
    assert expected <= set(ignored), sorted(expected - set(ignored))


def test_yaml_toml_and_json_parse(baked: tuple[Path, dict]) -> None:
    project, answers = baked
    for path in files_of(project):
        text = path.read_text(encoding="utf-8") if path.suffix != ".png" else ""
        if path.suffix in {".yml", ".yaml"}:
            yaml.safe_load(text)
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix in {".json", ".ipynb"}:
            json.loads(text)
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["name"] == project.name
    package = project.name.replace("-", "_")
    init = (project / "src" / package / "__init__.py").read_text(encoding="utf-8")
    namespace: dict = {}
    exec(compile(init, "__init__.py", "exec"), namespace)
    assert namespace["PROJECT_NAME"] == answers.get("project_name", "Shop Recs")


def test_environment_yml_follows_the_answers(baked: tuple[Path, dict]) -> None:
    project, answers = baked
    spec = yaml.safe_load((project / "environment.yml").read_text(encoding="utf-8"))
    deps = [d for d in spec["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    stage, owner = answers.get("stage", "dev"), answers.get("owner", "mlteam")
    assert spec["name"] == f"{project.name}-{stage}-{owner}"
    assert spec["channels"] == ["conda-forge", "nodefaults"]
    assert f"python={answers.get('python_version', '3.10')}" in deps
    gpu = answers.get("compute") == "cuda12"
    assert any(d.startswith("faiss-gpu") for d in deps) is gpu
    assert any(d.startswith("faiss-cpu") for d in deps) is not gpu
    assert any(d.startswith("pytorch") for d in deps)
    # The default ("auto") resolves to this checkout, the template it was baked from.
    assert f"pytest-recenv @ {ROOT.as_uri()}" in pip


def test_unselected_parts_are_absent_and_selected_present(baked: tuple[Path, dict]) -> None:
    project, answers = baked
    package = project.name.replace("-", "_")
    parts = {
        "include_serving": [project / "src" / package / "serving", project / "docs/serving.md"],
        "include_docker": [project / "Dockerfile", project / ".dockerignore",
                           project / "docs/docker.md"],
        "ci": [project / ".github", project / "docs/ci.md"],
    }  # fmt: skip
    selected = {
        "include_serving": answers.get("include_serving", True),
        "include_docker": answers.get("include_docker", True),
        "ci": answers.get("ci", "github") != "none",
    }
    for part, paths in parts.items():
        for path in paths:
            if selected[part]:
                assert path.exists(), f"{part} selected but {path.name} missing"
            else:
                assert not path.exists(), f"{part} not selected but {path.name} generated"
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files_of(project))
    if not selected["include_serving"]:
        assert "fastapi" not in text.lower(), "serving not selected but FastAPI is referenced"


def test_the_replay_file_regenerates_the_same_project(
    baked: tuple[Path, dict], tmp_path: Path
) -> None:
    project, _ = baked
    replay = project / ".cookiecutter.json"
    answers = json.loads(replay.read_text(encoding="utf-8"))["cookiecutter"]
    assert "_output_dir" not in answers and "_repo_dir" not in answers
    again = tmp_path / "again"
    subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--replay-file", str(replay), str(ROOT),
         "-o", str(again)],
        check=True, capture_output=True,
    )  # fmt: skip
    regenerated = again / project.name
    first = {p.relative_to(project): p.read_bytes() for p in files_of(project)}
    second = {p.relative_to(regenerated): p.read_bytes() for p in files_of(regenerated)}
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
