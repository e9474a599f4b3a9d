"""`recenv check` on a corpus of malformed and risky environment files.

Each corpus file states the exact findings it must produce in its leading ``# expect:`` lines
(``LINE: message``), so the expectations live beside the input they describe.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_recenv.env.cli import main

CORPUS = Path(__file__).parents[1] / "data" / "envs"
FILES = sorted(CORPUS.glob("*.yml"))


def expected_lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("# expect: "):
            break
        body = line.removeprefix("# expect: ")
        if not body.startswith("nothing"):
            lines.append(f"{path.name}:{body}")
    return lines


def test_the_corpus_holds_at_least_forty_malformed_files() -> None:
    malformed = [p for p in FILES if expected_lines(p)]
    assert len(malformed) >= 40, [p.name for p in malformed]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_check_reports_exactly_the_expected_file_line_messages(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CORPUS)
    code = main(["check", path.name])
    out = capsys.readouterr()
    expected = expected_lines(path)
    assert out.out.splitlines() == expected
    assert code == (1 if expected else 0)
    assert "Traceback" not in out.err


def test_one_run_reports_every_error_of_every_file_without_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest_recenv.env.cli", "check", *[p.name for p in FILES]],
        cwd=CORPUS,
        capture_output=True,
        text=True,
        check=False,
    )
    expected = [line for p in FILES for line in expected_lines(p)]
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout.splitlines() == expected
    assert f"recenv check: {len(expected)} errors in {len(FILES)} files" in result.stderr


def test_check_of_a_missing_file_says_so_with_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "environment.yml"
    assert main(["check", str(missing)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{missing}:1: cannot read the file (FileNotFoundError")


def test_allow_defaults_accepts_the_defaults_channel(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CORPUS)
    assert main(["check", "--allow-defaults", "defaults-channel.yml"]) == 0
    assert capsys.readouterr().out == ""


# --- inputs from the far side: bounded work, every file's errors ------------------------------

FAR_SIDE = [p for p in FILES if p.name.startswith(("alias-bomb-", "deep-nesting-"))]


def run_measured(args: list[str], cwd: Path) -> tuple[int, str, float, float]:
    """Run ``recenv`` in a child; exit code, stdout, CPU seconds and peak RSS in MB of that child.

    CPU time (user + system), not wall time: on a busy machine the child waits for a core, and
    wall time measures the machine, not the work.  The child gets CPU and address-space limits,
    so a runaway fails the test instead of the machine.
    """
    import os
    import resource
    import tempfile

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (20, 20))
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_recenv.env.cli", *args],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.DEVNULL,
            preexec_fn=limits,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = usage.ru_utime + usage.ru_stime
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read().decode()
    return proc.returncode, stdout, seconds, usage.ru_maxrss / 1024


@pytest.mark.parametrize("path", FAR_SIDE, ids=[p.stem for p in FAR_SIDE])
def test_alias_bombs_and_deep_nesting_check_in_under_2_s_and_100_mb(path: Path) -> None:
    code, out, seconds, peak_mb = run_measured(["check", path.name], CORPUS)
    assert (code, out.splitlines()) == (1, expected_lines(path))
    assert seconds < 2.0
    assert peak_mb < 100


def test_a_10_mb_file_is_refused_at_line_1_without_reading_it_all(tmp_path: Path) -> None:
    head = (CORPUS / "ok-minimal.yml").read_text(encoding="utf-8")
    lines = [f"  - package-{i}>=1.{i % 50}\n" for i in range(420_000)]
    big = tmp_path / "environment.yml"
    big.write_text(head.replace("  - pip:\n", "".join(lines) + "  - pip:\n"), encoding="utf-8")
    assert big.stat().st_size > 10_000_000
    code, out, seconds, peak_mb = run_measured(["check", big.name], tmp_path)
    size = big.stat().st_size / (1 << 20)
    assert out.splitlines() == [
        f"environment.yml:1: the file is {size:.1f} MiB; recenv reads environment files of up "
        "to 256 KiB (a conda export of 1,000 packages is about 40 KiB); check that this is "
        "the environment file, or move long pip lists into a '-r requirements.txt' file"
    ]
    assert code == 1
    assert seconds < 2.0
    assert peak_mb < 100


def test_a_deeply_nested_file_does_not_hide_the_next_files_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CORPUS)
    files = ["deep-nesting-block.yml", "many-errors-at-once.yml", "alias-bomb-prefix.yml"]
    assert main(["check", *files]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == [line for f in files for line in expected_lines(CORPUS / f)]
    assert "Traceback" not in out.err


# --- pip expands ${VAR} in requirement lines, so the check does too ---------------------------


def _editable_env(tmp_path: Path, line: str) -> Path:
    text = (CORPUS / "ok-minimal.yml").read_text(encoding="utf-8")
    path = tmp_path / "environment.yml"
    path.write_text(text.replace("      - rich>=13\n", f"      - {line}\n"), encoding="utf-8")
    return path


def test_an_editable_folder_named_by_a_set_variable_is_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pkgs" / "shop").mkdir(parents=True)
    monkeypatch.setenv("RECENV_PKGS", str(tmp_path / "pkgs"))
    monkeypatch.setenv("RECENV_SUB", "pkgs")
    env = _editable_env(tmp_path, "-e ${RECENV_PKGS}/shop")
    assert main(["check", str(env)]) == 0, capsys.readouterr().out
    env = _editable_env(tmp_path, "-e ./${RECENV_SUB}/shop")
    assert main(["check", str(env)]) == 0, capsys.readouterr().out


def test_a_set_variable_naming_a_missing_folder_shows_the_expanded_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECENV_PKGS", str(tmp_path / "pkgs"))
    env = _editable_env(tmp_path, "-e ${RECENV_PKGS}/shop")
    assert main(["check", str(env)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{env}:11: '-e ${{RECENV_PKGS}}/shop': folder '{tmp_path}/pkgs/shop' "
        "(${RECENV_PKGS} expanded) not found; fix the path"
    ]


def test_requirement_files_named_by_a_variable_are_expanded_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "reqs.txt").write_text("rich\n")
    monkeypatch.setenv("RECENV_REQS", str(tmp_path / "reqs.txt"))
    env = _editable_env(tmp_path, "-r ${RECENV_REQS}")
    assert main(["check", str(env)]) == 0, capsys.readouterr().out


def test_only_pips_variable_form_is_expanded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip expands ``${NAME}`` with NAME in A-Z, 0-9 and _, and only when set and non-empty."""
    (tmp_path / "shop").mkdir()
    monkeypatch.setenv("RECENV_PKGS", str(tmp_path))
    monkeypatch.setenv("recenv_pkgs", str(tmp_path))
    for line in ("-e $RECENV_PKGS/shop", "-e ${recenv_pkgs}/shop"):
        env = _editable_env(tmp_path, line)
        assert main(["check", str(env)]) == 1
        target = line.removeprefix("-e ")
        assert capsys.readouterr().out.splitlines() == [
            f"{env}:11: '{line}': folder '{target}' not found next to the environment file; "
            "fix the path"
        ]
