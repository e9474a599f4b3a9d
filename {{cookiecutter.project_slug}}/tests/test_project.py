"""The project's identity matches what it was generated with."""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import {{ cookiecutter.package_name }}

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_the_installed_metadata_and_pyproject_agree_on_the_version() -> None:
    """A release bumps ``version`` in pyproject.toml and ``__version__`` together; pip and the
    artifacts manifest report one, code the other. The installed metadata is what pip read
    from pyproject.toml at install time."""
    table = (ROOT / "pyproject.toml").read_text(encoding="utf-8").split("\n[project]\n", 1)[1]
    table = table.split("\n[", 1)[0]
    fields = dict(re.findall(r'^(name|version) = "([^"]+)"$', table, flags=re.MULTILINE))
    try:
        installed = importlib.metadata.version(fields["name"])
    except importlib.metadata.PackageNotFoundError:
        installed = f"nothing ({fields['name']} is not installed; run `pip install -e .`)"
    version = {{ cookiecutter.package_name }}.__version__
    assert version == fields["version"], (
        f"__init__.py: __version__ {version!r}, pyproject.toml: version {fields['version']!r}; "
        "bump both"
    )
    assert installed == fields["version"], (
        f"installed metadata says {installed}, pyproject.toml {fields['version']!r}: "
        "reinstall with `pip install -e .`"
    )


def test_the_interpreter_is_the_one_the_environment_pins() -> None:
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    pinned = next(line.split("=", 1)[1] for line in text.splitlines() if "- python=" in line)
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" == pinned.strip()


def test_the_env_name_follows_the_project_stage_owner_convention() -> None:
    slug = "{{ cookiecutter.project_slug }}"
    stage = "{{ cookiecutter.stage }}"
    owner = "{{ cookiecutter.owner }}"
    assert f"{slug}-{stage}-{owner}" == {{ cookiecutter.package_name }}.ENV_NAME


def test_printed_hints_name_the_package_not_a_placeholder() -> None:
    """Messages and docstrings say `python -m {{ cookiecutter.package_name }} ...`, runnable as shown."""
    sources = [ROOT / "noxfile.py", *sorted((ROOT / "src").rglob("*.py"))]
    placeholders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sources
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "<package>" in line
    ]
    assert not placeholders, f"`<package>` instead of the package name at {placeholders}"
