"""`recenv check` on a corpus of malformed and risky environment files.

Each corpus file states the exact findings it must produce in its leading ``# expect:`` lines
(``LINE: message``), so the expectations live beside the input they describe.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_recenv.cli import main

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
        [sys.executable, "-m", "pytest_recenv.cli", "check", *[p.name for p in FILES]],
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
