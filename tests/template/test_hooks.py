"""The hooks are Jinja templates themselves: render them as cookiecutter does, lint the result."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from bakery import ROOT, Bake
from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config

HOOKS = sorted((ROOT / "hooks").glob("*.py"))


@pytest.mark.parametrize("hook", HOOKS, ids=[h.stem for h in HOOKS])
def test_a_rendered_hook_is_ruff_clean_python(hook: Path, tmp_path: Path) -> None:
    context = generate_context(str(ROOT / "cookiecutter.json"))
    context["cookiecutter"] = prompt_for_config(context, no_input=True)
    env = StrictEnvironment(context=context, keep_trailing_newline=True)
    env.loader = None
    rendered = env.from_string(hook.read_text(encoding="utf-8")).render(**context)
    target = tmp_path / hook.name
    target.write_text(rendered, encoding="utf-8")
    compile(rendered, str(target), "exec")
    ruff = shutil.which("ruff") or pytest.fail("expected ruff on PATH (the test extra), found none")
    config = ROOT / "pyproject.toml"
    result = subprocess.run(
        [ruff, "check", "--no-cache", "--config", str(config), str(target)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout


def test_the_rendered_context_survives_quotes_and_unicode() -> None:
    """The hooks read the answers from a JSON text inside a Python literal."""
    from local_extensions import py_str  # the template's own filter, importable from ROOT

    answers = {"project_name": 'Alice\'s "Recs" \\ 😀', "include_docker": True}
    literal = py_str(json.dumps(answers, indent=4, sort_keys=True))
    assert json.loads(eval(literal)) == answers


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "Alice's",
        'say "hi"',
        'Café l\'Été "Best" \\ Recs 😀',
        "tab\tnew\nline\x01",
        '"\'"',
        "",
    ],
)
def test_python_literals_round_trip_and_are_what_ruff_format_keeps(
    text: str, tmp_path: Path
) -> None:
    from local_extensions import py_str

    literal = py_str(text)
    assert eval(literal) == text
    source = tmp_path / "m.py"
    source.write_text(f"X = {literal}\n", encoding="utf-8")
    ruff = shutil.which("ruff") or pytest.fail("expected ruff on PATH (the test extra), found none")
    result = subprocess.run(
        [ruff, "format", "--check", "--no-cache", "--isolated", str(source)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"{literal}: {result.stdout}"


def next_steps(output: str) -> list[list[str]]:
    """The commands the post-gen hook printed after "Next steps:", without their comments."""
    lines = output.split("Next steps:", 1)[1].splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.startswith("  ")]


def test_next_steps_install_recenv_and_nox_first_where_they_are_not_on_path(
    bake: Bake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-installed"))
    bake()
    steps = next_steps(capfd.readouterr().out)
    requirement = f"pytest-recenv @ {ROOT.resolve().as_uri()}"  # "auto" for a local checkout
    assert ["python", "-m", "pip", "install", "nox", requirement] in steps, steps
    first_use = min(i for i, cmd in enumerate(steps) if cmd[0] in ("recenv", "nox"))
    assert steps.index(["python", "-m", "pip", "install", "nox", requirement]) < first_use


def test_next_steps_use_recenv_and_nox_directly_where_they_are_on_path(
    bake: Bake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("recenv", "nox"):
        (tools / name).write_text("#!/bin/sh\n", encoding="utf-8")
        (tools / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    bake()
    steps = next_steps(capfd.readouterr().out)
    assert ["recenv", "build"] in steps and not [cmd for cmd in steps if "pip" in cmd], steps
