"""The recenv CLI end to end: build/key/run, lock freshness, drift and gc on real envs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from recenv_helpers import write_env

from pytest_recenv.env.builders import ensure_env
from pytest_recenv.env.cli import main

pytestmark = pytest.mark.slow


def recenv(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_recenv.env.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ),
    )


def test_build_prints_the_prefix_key_prints_the_same_key_and_run_passes_the_exit_code(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    spec = write_env(tmp_path, "  - recenv-tiny\n")
    built = recenv("build", str(spec))
    assert built.returncode == 0, built.stderr
    prefix = Path(built.stdout.strip())
    key = recenv("key", str(spec)).stdout.strip()
    assert prefix == cache_dir / key
    assert f"key={key} backend=uv created in" in built.stderr
    assert "reused in" in recenv("build", str(spec)).stderr
    ran = recenv(
        "run",
        "--file",
        str(spec),
        "--",
        "python",
        "-c",
        "import os, sys, recenv_tiny; print(os.environ['VIRTUAL_ENV']); sys.exit(3)",
    )
    assert ran.returncode == 3
    assert ran.stdout.strip() == str(prefix)


def test_run_of_a_command_that_cannot_start_is_one_line_with_the_shell_exit_codes(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    spec = write_env(tmp_path, "  - recenv-tiny\n")
    garbage = tmp_path / "garbage"
    garbage.write_bytes(bytes(range(256)))  # executable bits, but no program and no '#!'
    garbage.chmod(0o755)
    for command, code, said in (
        ("no-such-command-here", 127, "expected 'no-such-command-here' in "),
        (str(garbage), 126, f"cannot start '{garbage}' (Exec format error); expected a program "),
    ):
        ran = recenv("run", "-q", "--file", str(spec), "--", command)
        assert ran.returncode == code and "Traceback" not in ran.stderr, ran.stderr
        assert ran.stderr.startswith(f"recenv run: {said}") and ran.stderr.count("\n") == 1


def test_a_second_env_with_the_same_files_takes_its_import_checks_from_records_and_says_so(
    tmp_path: Path,
    offline_pip: Path,
    cache_dir: Path,
    verify_records: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = write_env(tmp_path, "  - recenv-dep\n")
    first = recenv("build", str(spec))
    assert first.returncode == 0, first.stderr
    assert "verified: uv pip check passed; 1 import: 1 run now, 0 from records" in first.stderr
    monkeypatch.setenv("RECENV_CACHE_DIR", str(tmp_path / "another-cache"))  # a new env
    second = recenv("build", str(spec))
    assert second.returncode == 0, second.stderr
    assert "verified: uv pip check passed; 1 import: 0 run now, 1 from records" in second.stderr
    stamp = json.loads((Path(second.stdout.strip()) / ".recenv-stamp.json").read_text())
    assert stamp["verified"] == {
        "dependency_check": "uv pip check",
        "imported": [],
        "from_records": ["recenv-dep"],
    }
    monkeypatch.setenv("RECENV_VERIFY_CACHE", "off")
    monkeypatch.setenv("RECENV_CACHE_DIR", str(tmp_path / "a-third-cache"))
    third = recenv("build", str(spec))
    assert "1 import: 1 run now, 0 from records" in third.stderr


def test_run_without_a_command_is_a_usage_error(tmp_path: Path, cache_dir: Path) -> None:
    result = recenv("run", "--file", str(tmp_path / "environment.yml"))
    assert result.returncode == 2
    assert "expected a command after '--'" in result.stderr


def test_build_of_a_broken_file_lists_every_problem_without_a_traceback(
    tmp_path: Path, cache_dir: Path
) -> None:
    spec = tmp_path / "environment.yml"
    spec.write_text("name: x\ndependencies:\n  - Numpy\n  - 3.11\n")
    result = recenv("build", str(spec))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{spec}:3: 'Numpy'" in result.stderr and f"{spec}:4: expected" in result.stderr


def test_lock_survives_cosmetic_and_satisfied_edits_and_flags_unmet_ones(
    tmp_path: Path, offline_pip: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_env(tmp_path, "  - recenv-dep>=2\n", "      - recenv-tiny<1.1\n")
    assert main(["lock", str(spec)]) == 0
    lock = json.loads((tmp_path / "environment.lock.json").read_text())
    assert lock["packages"] == {"recenv-dep": "2.0", "recenv-tiny": "1.0"}
    assert main(["lock", "--check", str(spec)]) == 0
    spec.write_text("# reformatted\n" + spec.read_text().replace("recenv-dep>=2", "recenv-dep >=2"))
    assert main(["lock", "--check", str(spec)]) == 0  # cosmetic: the hash still matches
    spec.write_text(spec.read_text().replace("recenv-dep >=2", "recenv-dep >=1.5"))
    assert main(["lock", "--check", str(spec)]) == 0  # changed, but the lock satisfies it
    spec.write_text(spec.read_text().replace("recenv-tiny<1.1", "recenv-tiny>=1.1"))
    capsys.readouterr()
    assert main(["lock", "--check", str(spec)]) == 1
    line = spec.read_text().splitlines().index("      - recenv-tiny>=1.1") + 1
    assert capsys.readouterr().out == (
        f"{spec}:{line}: 'recenv-tiny>=1.1' is recenv-tiny 1.0 does not satisfy '>=1.1' in the "
        "lock; refresh the lock: recenv lock\n"
    )


def test_a_fresh_lock_is_what_gets_installed(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    spec = write_env(tmp_path, "  - recenv-tiny\n")
    (tmp_path / "environment.lock.json").write_text(
        json.dumps(
            {
                "format": 1,
                "backend": "uv",
                "spec_hash": "edited-by-hand",
                "python": "3.11.0",
                "packages": {"recenv-tiny": "1.0"},
            }
        )
    )
    env = ensure_env(spec, progress=False)
    version = env.run(
        ["python", "-c", "import recenv_tiny; print(recenv_tiny.VERSION)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert version == "1.0"  # without the lock the newest (1.1) would be installed


def test_lock_check_without_a_lock_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_env(tmp_path, "  - recenv-tiny\n")
    assert main(["lock", "--check", str(spec)]) == 1
    assert capsys.readouterr().out == (
        f"{spec}:1: no lock: expected environment.lock.json next "
        f"to it; create it with 'recenv lock {spec}'\n"
    )
    assert main(["lock", "--check", "--missing-ok", str(spec)]) == 0  # the pre-commit hook


@pytest.mark.parametrize(
    "lock",
    ["[1, 2", "[]", '{"packages": {"recenv-tiny": 1}}', '{"packages": {}, "python": 3.11}'],
)
def test_lock_check_of_a_broken_lock_is_one_problem_at_the_lock_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lock: str
) -> None:
    spec = write_env(tmp_path, "  - recenv-tiny=1.0\n")
    (tmp_path / "environment.lock.json").write_text(lock)
    assert main(["lock", "--check", str(spec)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"{tmp_path / 'environment.lock.json'}:1: ")
    assert out[0].endswith("; regenerate it: recenv lock") and str(spec) not in out[0]


def test_drift_finds_missing_and_mismatched_but_not_loose_pins(
    tmp_path: Path, offline_pip: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = ensure_env(write_env(tmp_path / "a", "  - recenv-tiny=1.0\n"), progress=False)
    spec = write_env(
        tmp_path / "b", "  - recenv-tiny>=1\n  - recenv-dep\n", "      - recenv-tiny<2\n"
    )
    assert main(["drift", str(spec), "--prefix", str(env.prefix)]) == 1
    assert capsys.readouterr().out == f"{spec}:9: 'recenv-dep': not installed\n"
    spec = write_env(tmp_path / "c", "  - recenv-tiny>=1.1\n")
    assert main(["drift", str(spec), "--prefix", str(env.prefix)]) == 1
    assert capsys.readouterr().out == (
        f"{spec}:8: 'recenv-tiny>=1.1': recenv-tiny 1.0 does not satisfy '>=1.1'\n"
    )


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (["--prefix", "{tmp}/nonexistent"], "expected an environment folder, found nothing there"),
        (["--prefix", "{tmp}/empty"], "expected an interpreter at {tmp}/empty/bin/python"),
        (["--python", "{tmp}/nonexistent/python"], "expected an interpreter, found nothing there"),
        (["--python", "{tmp}/spec/environment.yml"], "expected a Python interpreter, found a file"),
        (["--python", "/bin/false"], "expected a Python interpreter that lists its distributions"),
    ],
    ids=["missing-prefix", "prefix-without-python", "missing-python", "not-a-program", "fails"],
)
def test_drift_of_a_missing_or_broken_env_is_one_line_not_a_traceback(
    tmp_path: Path, where: list[str], expected: str
) -> None:
    spec = write_env(tmp_path / "spec", "")
    (tmp_path / "empty").mkdir()
    args = [arg.format(tmp=tmp_path) for arg in where]
    result = recenv("drift", str(spec), *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert result.stderr.startswith(f"recenv drift: {args[0]} {args[1]}: ")
    assert expected.format(tmp=tmp_path) in result.stderr


def test_an_or_version_refused_by_the_uv_commands_names_the_file_as_given(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    # like every other file:line message: the path the user typed, not the resolved one
    write_env(tmp_path, "  - recenv-tiny 1.0.*|1.1.*\n")
    for command in ("key", "translate", "build"):
        result = recenv(command, "environment.yml", cwd=tmp_path)
        assert result.returncode == 1
        assert result.stderr.startswith(f"recenv {command}: environment.yml:8: ")


@pytest.mark.parametrize("pin", ["python 3.11.*|3.11.4", "python=3.11|3.11.4", "python=3.10|3.11"])
def test_a_python_pin_with_or_is_refused_with_one_message_by_every_command(
    tmp_path: Path, offline_pip: Path, cache_dir: Path, pin: str
) -> None:
    spec = write_env(tmp_path, "")
    spec.write_text(spec.read_text().replace("  - python=3.11\n", f"  - {pin}\n"))
    said = set()
    for command in ("check", "key", "translate", "build", "lock", "drift"):
        result = recenv(command, str(spec))
        assert result.returncode == 1, (command, result.stderr)
        assert "Traceback" not in result.stderr and "Error" not in result.stderr, result.stderr
        text = (result.stdout if command == "check" else result.stderr).splitlines()[0]
        said.add(text.removeprefix(f"recenv {command}: "))
    assert len(said) == 1, said
    assert said.pop().startswith(f"{spec}:6: '{pin}' ")


def test_gc_lists_envs_and_prunes_the_ones_unused_for_long(
    tmp_path: Path, offline_pip: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = ensure_env(write_env(tmp_path / "old", "  - recenv-tiny=1.0\n"), progress=False)
    new = ensure_env(write_env(tmp_path / "new", "  - recenv-tiny=1.1\n"), progress=False)
    long_ago = time.time() - 40 * 86400
    os.utime(old.prefix / ".recenv-stamp.json", (long_ago, long_ago))
    (cache_dir / f".tmp-{new.key}-999999").mkdir()  # a killed build's leftovers
    assert main(["gc", "--older-than", "30", "--dry-run"]) == 0
    assert old.prefix.exists()
    assert main(["gc", "--older-than", "30"]) == 0
    out = capsys.readouterr().out
    assert f"removed unfinished build .tmp-{new.key}-999999" in out
    assert f"removed      {old.key}" in out and f"keep         {new.key}" in out
    assert not old.prefix.exists() and new.prefix.exists()


@pytest.mark.parametrize(
    ("option", "value"), [("--older-than", "-1"), ("--max-size", "-0.5"), ("--older-than", "nan")]
)
def test_gc_refuses_a_negative_age_or_size_instead_of_removing_every_env(
    tmp_path: Path, offline_pip: Path, cache_dir: Path, option: str, value: str
) -> None:
    env = ensure_env(write_env(tmp_path, "  - recenv-tiny=1.0\n"), progress=False)
    result = recenv("gc", option, value)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"argument {option}: expected a number >= 0, found '{value}'" in result.stderr
    assert env.prefix.exists()


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_a_cache_dir_that_cannot_be_a_folder_is_one_line_not_a_traceback(
    tmp_path: Path, offline_pip: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("RECENV_CACHE_DIR", str(tmp_path / where))
    spec = write_env(tmp_path, "  - recenv-tiny=1.0\n")
    found = "a file there" if where == "file" else "a file in its path"
    for command in (["build", "-q", str(spec)], ["run", "-f", str(spec), "--", "true"]):
        result = recenv(*command)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.splitlines() == [
            f"recenv {command[0]}: expected a folder for the environment cache at "
            f"{tmp_path / where}, found {found}; point RECENV_CACHE_DIR at a writable folder"
        ]


def test_doctor_reports_backends_interpreters_and_pip_config(
    capsys: pytest.CaptureFixture[str], offline_pip: Path
) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "  uv         usable" in out
    assert f"--find-links {offline_pip} --no-index" in out
    assert "hardware: " in out


def test_doctor_json_is_the_same_report_as_data_and_nothing_else_on_stdout(
    capsys: pytest.CaptureFixture[str], offline_pip: Path, cache_dir: Path
) -> None:
    assert main(["doctor", "--json", "--no-libraries"]) == 0
    report = json.loads(capsys.readouterr().out)  # the whole of stdout is one JSON document
    assert report["schema"] == 1
    uv = next(b for b in report["backends"] if b["name"] == "uv")
    assert uv["usable"] is True and uv["version"].startswith("uv ")
    assert report["pip_config"]["uv_args"][:3] == ["--find-links", str(offline_pip), "--no-index"]
    assert report["cache"] == {"path": str(cache_dir), "environments": 0}
    assert {i["implementation"] for i in report["interpreters"]} >= {"CPython"}
    hardware = report["hardware"]
    assert hardware["source"] == "live" and hardware["torch"] is None  # not probed
    assert hardware["summary"].startswith(f"{len(hardware['devices'])} CUDA device")
    assert main(["doctor"]) == 0
    assert f"hardware: {hardware['summary']}" in capsys.readouterr().out


def test_doctor_reports_an_unknown_backend_instead_of_failing(
    capsys: pytest.CaptureFixture[str],
    offline_pip: Path,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # docs/environments.md: `doctor --json` exits 0 with every finding in the document; a bad
    # RECENV_BACKENDS was an exit 1 and no JSON at all (the run snapshot lost hardware.json)
    monkeypatch.setenv("RECENV_BACKENDS", "fo o,uv")
    assert main(["doctor", "--json", "--no-libraries"]) == 0
    backends = json.loads(capsys.readouterr().out)["backends"]
    assert [(b["name"], b["usable"]) for b in backends] == [("fo o", False), ("uv", True)]
    assert backends[0]["detail"].startswith("unknown backend 'fo o' (from RECENV_BACKENDS=")
    assert main(["doctor", "--backend", "foo"]) == 0
    assert "  foo        unusable   unknown backend; expected some of " in capsys.readouterr().out


def test_doctor_counts_only_the_environments_gc_would_list_as_such(
    tmp_path: Path, offline_pip: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = ensure_env(write_env(tmp_path, "  - recenv-tiny=1.0\n"), progress=False)
    (cache_dir / "data").mkdir()  # another tool's folder in a shared cache dir
    (cache_dir / f".tmp-{env.key}-999999").mkdir()  # a killed build's leftovers
    assert main(["doctor", "--json", "--no-libraries"]) == 0
    assert json.loads(capsys.readouterr().out)["cache"]["environments"] == 1


def test_doctor_json_as_the_run_snapshot_calls_it_probes_torch_and_faiss(
    offline_pip: Path, cache_dir: Path
) -> None:
    # what the generated project's training/snapshot.py runs: exit 0 and JSON on stdout
    done = recenv("doctor", "--json")
    assert done.returncode == 0, done.stderr
    hardware = json.loads(done.stdout)["hardware"]
    for lib in ("torch", "faiss"):  # probed in a child: a version (None: not installed)
        assert {"version", "error"} <= set(hardware[lib]), hardware[lib]
    from importlib.util import find_spec

    if find_spec("torch") is not None:
        import importlib.metadata as md

        assert hardware["torch"]["version"] == md.version("torch")


def test_translate_shows_each_conda_line_mapped_or_dropped(
    tmp_path: Path, offline_pip: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_env(tmp_path, "  - pytorch=2.13=cpu*\n  - cudatoolkit\n", "      - -e .\n")
    assert main(["translate", str(spec)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == f"{spec}:8: {'pytorch=2.13=cpu*':30} -> torch==2.13.* (build 'cpu*' ignored)"
    assert lines[3].startswith(f"{spec}:9: {'cudatoolkit':30} dropped: CUDA runtime pieces")
    assert lines[4] == f"pip section: -e {tmp_path.resolve()}"
