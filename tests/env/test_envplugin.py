"""The pytest side: --recenv-build, the env header line, recenv_spec and recenv_env."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from recenv_helpers import write_env

pytestmark = pytest.mark.slow


def test_recenv_build_adds_a_passing_build_test_and_a_header_line(
    pytester: pytest.Pytester, offline_pip: Path, cache_dir: Path
) -> None:
    write_env(pytester.path, "  - recenv-tiny\n")
    result = pytester.runpytest("--recenv-build", "-v", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["env: uv key=*… created in * s", "environment.yml::recenv-build PASSED*"]
    )
    again = pytester.runpytest("--recenv-build", "-p", "no:randomly")
    again.stdout.re_match_lines([r"env: uv key=[0-9a-f]{8}… reused in 0\.\d s"])


def test_a_broken_environment_file_fails_the_build_test_with_its_report(
    pytester: pytest.Pytester, offline_pip: Path, cache_dir: Path
) -> None:
    write_env(pytester.path, "  - recenv-not-in-the-wheelhouse\n")
    pytester.makepyfile("def test_other():\n    pass\n")
    result = pytester.runpytest("--recenv-build", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "env: build FAILED for environment.yml (see the recenv-build test)",
            "*environment build failed for*",
            "uv pip install failed (exit 1): *",
            "*recenv-not-in-the-wheelhouse was not found in the provided package locations*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_recenv_env_and_recenv_spec_fixtures(
    pytester: pytest.Pytester, offline_pip: Path, cache_dir: Path
) -> None:
    write_env(pytester.path, "  - recenv-tiny=1.0\n")
    pytester.makepyfile("""
        def test_env(recenv_env, recenv_spec):
            assert recenv_spec.python.version == "3.11.*"
            assert [d.name for d in recenv_spec.conda] == ["python", "pip", "recenv-tiny"]
            out = recenv_env.run(["python", "-c", "import recenv_tiny; print(recenv_tiny.VERSION)"],
                                 capture_output=True, text=True)
            assert out.stdout.strip() == "1.0"
            assert recenv_env.backend == "uv" and len(recenv_env.key) == 20
    """)
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=1)


def test_xdist_workers_share_one_build(
    pytester: pytest.Pytester, offline_pip: Path, cache_dir: Path
) -> None:
    pytest.importorskip("xdist", reason="needs pytest-xdist for workers")
    write_env(pytester.path, "  - recenv-tiny\n")
    pytester.makepyfile(
        **{
            f"test_w{i}": "def test_env(recenv_env):\n    print('CREATED', recenv_env.created)\n"
            for i in range(4)
        }
    )
    result = pytester.runpytest_subprocess("-n", "2", "--recenv-build", "-s", "-p", "no:randomly")
    result.assert_outcomes(passed=5)
    # the controller built it for the header; every worker found it built
    result.stdout.fnmatch_lines(["env: uv key=*… created in *"])
    assert len([p for p in cache_dir.iterdir() if re.fullmatch(r"[0-9a-f]{20}", p.name)]) == 1


def test_recenv_spec_fails_clearly_on_a_bad_file(pytester: pytest.Pytester) -> None:
    (pytester.path / "environment.yml").write_text("name: x\ndependencies: 3\n")
    pytester.makepyfile("def test_spec(recenv_spec):\n    pass\n")
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*recenv_spec: *environment.yml is not a usable environment file:",
            "*environment.yml:2: 'dependencies' must be a list*",
        ]
    )
