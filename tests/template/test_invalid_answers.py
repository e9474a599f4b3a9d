"""Invalid answers fail in the pre-gen hook, with a message naming the value, and leave nothing."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bakery import ROOT, bake_into
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

# (id, answers, text the hook's message must contain)
INVALID = [
    ("slug-uppercase", {"project_slug": "Shop-Recs"}, "project_slug 'Shop-Recs': must be lower"),
    ("slug-underscore", {"project_slug": "shop_recs"}, "project_slug 'shop_recs'"),
    ("slug-leading-digit", {"project_slug": "9recs"}, "starting with a letter"),
    ("slug-double-hyphen", {"project_slug": "shop--recs"}, "hyphen-separated"),
    ("slug-too-long", {"project_slug": "a" * 41}, "at most 40 characters"),
    ("slug-from-symbols-only", {"project_name": "!!! ???"}, "project_slug ''"),
    ("package-keyword", {"package_name": "class"}, "package_name 'class': is a Python keyword"),
    ("package-soft-keyword", {"package_name": "match"}, "is a Python keyword"),
    ("package-stdlib", {"package_name": "json"}, "would shadow the module 'json'"),
    ("package-dependency", {"package_name": "torch"}, "would shadow the module 'torch'"),
    ("package-hyphen", {"package_name": "shop-recs"}, "must be a lowercase Python identifier"),
    ("package-own-test-module", {"project_name": "Test Benchmarks"},
     "package_name 'test_benchmarks': is the name of the project's own module"),
    ("package-own-benchmark", {"project_name": "Load"}, "package_name 'load': is the name of"),
    ("owner-hyphen", {"owner": "ml-team"}, "owner 'ml-team': must be a plain handle"),
    ("owner-space", {"owner": "ml team"}, "owner 'ml team'"),
    ("owner-uppercase", {"owner": "MLTeam"}, "owner 'MLTeam'"),
    ("stage-unknown", {"stage": "qa"}, "stage 'qa': must be one of dev, exp, prod"),
    ("env-base", {"env_name": "base"}, "env_name 'base': is conda's own environment"),
    ("env-slash", {"env_name": "shop/recs"}, "conda refuses '/'"),
    ("env-space", {"env_name": "shop recs dev"}, "conda refuses ' '"),
    ("env-colon-hash", {"env_name": "shop:recs#1"}, "conda refuses ':', '#'"),
    ("env-off-convention", {"env_name": "final_version"}, "<project_slug>-<stage>-<owner>"),
    ("python-3.9", {"python_version": "3.9"}, "must be 3.10 or newer"),
    ("python-2", {"python_version": "2.7"}, "python_version '2.7': must be a CPython minor"),
    ("python-not-a-version", {"python_version": "latest"}, "must be a CPython minor"),
    ("python-no-wheels", {"python_version": "3.13", "compute": "cuda12"},
     "compute=cuda12 has no tested PyTorch/faiss builds for Python 3.13"),
    ("compute-unknown", {"compute": "rocm"}, "compute 'rocm': must be one of cpu, cuda12"),
    ("ci-unknown", {"ci": "jenkins"}, "ci 'jenkins': must be one of github, none"),
    ("license-unknown", {"license": "GPL"}, "license 'GPL': must be one of"),
    ("requirement-other-package", {"recenv_requirement": "pytest>=8"},
     "must be a requirement for the distribution 'pytest-recenv', found 'pytest'"),
    ("requirement-empty", {"recenv_requirement": " "}, "must be one pip requirement line"),
    ("name-newline", {"project_name": "Shop\nRecs", "project_slug": "shop-recs"},
     "must be one line without control characters"),
    ("name-template-delimiters", {"project_name": "{% raw %}Shop {{ evil }}{% endraw %}",
                                  "project_slug": "shop"}, "must not contain template delimiters"),
    ("name-too-long", {"project_name": "R" * 81}, "at most 80 characters"),
]  # fmt: skip


def leftovers(output_dir: Path) -> list[Path]:
    return sorted(output_dir.rglob("*")) if output_dir.exists() else []


@pytest.mark.parametrize(
    ("answers", "message"), [(a, m) for _, a, m in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_an_invalid_answer_fails_in_the_pre_gen_hook_and_leaves_nothing(
    answers: dict, message: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    output_dir = tmp_path / "out"
    with pytest.raises(FailedHookException):
        bake_into(output_dir, **answers)
    err = capfd.readouterr().err
    assert message in err
    assert "nothing was generated" in err
    assert "Traceback" not in err.split("ERROR:", 1)[-1]
    assert leftovers(output_dir) == []


def test_the_cookiecutter_command_shows_no_traceback_for_an_invalid_answer(
    tmp_path: Path,
) -> None:
    # the user's path: the real command line, whose logging printed a traceback of cookiecutter's
    # call stack (FailedHookException) after the hook's messages (local_extensions.py)
    done = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", str(ROOT), "-o", str(tmp_path),
         "project_slug=9bad"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "ERROR: project_slug '9bad': must be lowercase letters" in said
    assert "2 invalid answer(s); nothing was generated." in said
    assert "Stopping generation because pre_gen_project hook" in said
    assert "Traceback" not in said and "FailedHookException" not in said, said
    assert leftovers(tmp_path) == []


def test_every_invalid_answer_is_reported_in_one_run(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(FailedHookException):
        bake_into(tmp_path, owner="Bad-Owner", stage="qa", python_version="3.9", ci="jenkins")
    err = capfd.readouterr().err
    # env_name is derived from owner and stage, so it follows the convention and is not reported
    assert err.count("ERROR: ") == 4
    assert "4 invalid answer(s)" in err


def test_a_slug_with_a_path_separator_is_refused_and_writes_no_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """cookiecutter makes the project folder before the hook runs and removes only its last
    component on failure, so `a/` stays behind - empty: no file is ever written."""
    with pytest.raises(FailedHookException):
        bake_into(tmp_path, project_slug="a/b")
    assert "project_slug 'a/b'" in capfd.readouterr().err
    assert [p for p in leftovers(tmp_path) if p.is_file()] == []


@pytest.mark.parametrize(
    "name",
    ['Alice\'s "Recs"', "Ünïcödé Shop 😀", "Back\\slash & <tags> *stars*", "{not jinja}"],
    ids=["quotes", "unicode", "markup", "braces"],
)
def test_awkward_project_names_render_valid_files(name: str, tmp_path: Path) -> None:
    project = bake_into(tmp_path, project_name=name, project_slug="shop")
    init = (project / "src" / "shop" / "__init__.py").read_text(encoding="utf-8")
    namespace: dict = {}
    exec(compile(init, "__init__.py", "exec"), namespace)
    assert namespace["PROJECT_NAME"] == name
    assert namespace["__doc__"].startswith(name)


def test_the_pre_gen_hook_knows_every_module_the_project_imports_by_its_bare_name() -> None:
    """pytest puts tests/ first on sys.path and a script's folder comes first for a benchmark:
    a package named like one of those modules would be shadowed by it (or shadow it)."""
    hook = (ROOT / "hooks" / "pre_gen_project.py").read_text(encoding="utf-8")
    listed = re.search(r"^OWN_MODULES = (\{.*?\})", hook, re.MULTILINE | re.DOTALL)
    assert listed, "expected OWN_MODULES = {...} in hooks/pre_gen_project.py"
    project = ROOT / "{{cookiecutter.project_slug}}"
    modules = {p.stem for p in [*project.glob("tests/*.py"), *project.glob("benchmarks/*.py")]}
    missing = modules - ast.literal_eval(listed.group(1))
    assert not missing, f"add {sorted(missing)} to OWN_MODULES in hooks/pre_gen_project.py"


def test_a_rebake_never_deletes_files_of_a_part_it_switches_off(tmp_path: Path) -> None:
    """Re-baking over a project with a part switched off used to rmtree the user's files there."""
    project = bake_into(tmp_path, python_version="3.11")
    mine = project / "src" / "shop_recs" / "serving" / "my_auth.py"
    mine.write_text("SECRET_SAUCE = 1\n")
    with pytest.raises(FailedHookException):
        cookiecutter(
            str(ROOT), no_input=True, output_dir=str(tmp_path), overwrite_if_exists=True,
            extra_context={"python_version": "3.11", "include_serving": False},
        )  # fmt: skip
    assert mine.read_text() == "SECRET_SAUCE = 1\n"
    assert (project / "src" / "shop_recs" / "serving" / "app.py").is_file()


def test_a_rebake_with_the_same_parts_overwrites_in_place(tmp_path: Path) -> None:
    project = bake_into(tmp_path, python_version="3.11", include_docker=False)
    (project / "notes.md").write_text("mine\n")
    cookiecutter(
        str(ROOT), no_input=True, output_dir=str(tmp_path), overwrite_if_exists=True,
        extra_context={"python_version": "3.11", "include_docker": False},
    )  # fmt: skip
    assert (project / "notes.md").read_text() == "mine\n"
    assert not (project / "Dockerfile").exists()
