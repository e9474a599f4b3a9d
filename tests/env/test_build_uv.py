"""Real uv builds of small specs: reuse, keys, atomicity, concurrency, verification."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from recenv_helpers import make_wheel, write_env

from pytest_recenv.env.backends import UvBackend
from pytest_recenv.env.builders import STAMP, ensure_env, make_plan
from pytest_recenv.env.interpreters import discover
from pytest_recenv.errors import BuildError

pytestmark = pytest.mark.slow

# Imported by the smoke test: announces itself, then sleeps while a marker file exists, so a
# test can catch a build in the middle of its verification step.
SLOW_MODULE = """import os, time
flag = os.environ.get("RECENV_TEST_SLOW")
if flag and os.path.exists(flag):
    open(flag + ".importing", "w").close()
    time.sleep(float(open(flag).read() or 60))
VERSION = "1.0"
"""


def _python(minor: str) -> None:
    found = [i.version_str for i in discover()]
    if not any(v.startswith(f"{minor}.") for v in found):
        pytest.skip(f"needs an installed CPython {minor}; found {', '.join(found) or 'none'}")


@pytest.mark.parametrize("minor", ["3.11", "3.10"])
def test_builds_with_the_pinned_python_then_reuses(
    tmp_path: Path, offline_pip: Path, cache_dir: Path, minor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _python(minor)
    spec = write_env(tmp_path, "  - recenv-tiny=1.0\n", python=minor)
    first = ensure_env(spec, progress=False)
    assert first.created and first.backend == "uv"
    assert first.prefix == cache_dir / first.key
    out = first.run(
        [
            "python",
            "-c",
            "import sys, recenv_tiny; print(sys.version_info[:2], recenv_tiny.VERSION, sys.prefix)",
        ],
        capture_output=True,
        text=True,
    )
    major, minor_n = minor.split(".")
    assert out.stdout.split(") ")[0] == f"({major}, {minor_n}"
    assert out.stdout.split()[-2:] == ["1.0", str(first.prefix)]
    # Reuse builds nothing (asserted by making a build fail, not by timing it: a busy machine
    # makes any wall-clock bound flaky).
    monkeypatch.setattr(UvBackend, "build", lambda *_: pytest.fail("reuse started a build"))
    again = ensure_env(spec, progress=False)
    assert (again.created, again.key, again.prefix) == (False, first.key, first.prefix)


def test_cosmetic_change_keeps_the_key_and_a_real_change_builds_anew(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    spec = write_env(tmp_path, "  - recenv-tiny>=1.0\n")
    env = ensure_env(spec, progress=False)
    spec.write_text(
        "# a comment\n" + spec.read_text().replace("recenv-tiny>=1.0", "recenv-tiny >=1.0")
    )
    assert make_plan(spec).key == env.key
    spec.write_text(spec.read_text().replace("recenv-tiny >=1.0", "recenv-tiny<1.1"))
    changed = ensure_env(spec, progress=False)
    assert changed.created and changed.key != env.key
    version = changed.run(
        ["python", "-c", "import recenv_tiny; print(recenv_tiny.VERSION)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert version == "1.0"


def test_same_spec_in_two_projects_with_editables_never_shares_an_env(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    keys = []
    for name in ("a", "b"):
        project = tmp_path / name
        project.mkdir()
        (project / "pyproject.toml").write_text(f'[project]\nname = "proj-{name}"\n')
        keys.append(make_plan(write_env(project, "  - recenv-tiny\n", "      - -e .\n")).key)
    assert keys[0] != keys[1]


def test_four_processes_asking_at_once_build_once(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    make_wheel(offline_pip, "recenv-slow", "1.0", module=SLOW_MODULE)
    flag = tmp_path / "slow"
    flag.write_text("2")  # the build holds the lock >= 2 s, so all four overlap with it
    spec = write_env(tmp_path / "proj", "  - recenv-slow\n")
    code = (
        "import json, sys; from pytest_recenv.env.builders import ensure_env; "
        "e = ensure_env(sys.argv[1], progress=False); "
        "print(json.dumps([e.created, str(e.prefix)]))"
    )
    env = {**os.environ, "RECENV_TEST_SLOW": str(flag)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(spec)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(created for created, _ in results) == [False, False, False, True]
    assert len({prefix for _, prefix in results}) == 1


def test_a_build_killed_halfway_is_never_reused(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    make_wheel(offline_pip, "recenv-slow", "1.0", module=SLOW_MODULE)
    flag = tmp_path / "slow"
    flag.write_text("120")
    spec = write_env(tmp_path / "proj", "  - recenv-slow\n")
    key = make_plan(spec).key
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_recenv.env.cli", "build", "-q", str(spec)],
        env={**os.environ, "RECENV_TEST_SLOW": str(flag)},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not Path(f"{flag}.importing").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "build never reached smoke"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the builder and its smoke-test child
    proc.wait()
    assert list(cache_dir.glob(f".tmp-{key}-*")), "the half-built env should be left behind"
    assert not (cache_dir / key).exists()
    flag.unlink()
    env = ensure_env(spec, progress=False)
    assert env.created and (env.prefix / STAMP).is_file()
    assert not list(cache_dir.glob(f".tmp-{key}-*"))


def test_an_env_whose_package_fails_to_import_is_reported_and_not_cached(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    make_wheel(offline_pip, "recenv-broken", "1.0", module="raise RuntimeError('boom at import')\n")
    spec = write_env(tmp_path, "  - recenv-tiny\n  - recenv-broken\n")
    with pytest.raises(BuildError) as err:
        ensure_env(spec, progress=False)
    assert (
        "import smoke test failed for 1 of 2 declared packages:\n  recenv-broken: import "
        "recenv_broken: RuntimeError: boom at import"
    ) in str(err.value)
    assert not any(p.name == make_plan(spec).key for p in cache_dir.iterdir())


def test_a_conflicting_spec_fails_with_the_resolver_message(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    spec = write_env(
        tmp_path, "  - recenv-tiny>=1.1\n  - recenv-dep\n", "      - recenv-tiny<1.1\n"
    )
    with pytest.raises(BuildError, match=r"uv pip install failed \(exit \d+\)") as err:
        ensure_env(spec, progress=False)
    assert "recenv-tiny" in str(err.value)


def test_the_stamp_records_key_parts_for_debugging(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    spec = write_env(tmp_path, "  - recenv-tiny\n")
    env = ensure_env(spec, progress=False)
    stamp = json.loads((env.prefix / STAMP).read_text())
    assert stamp["key"] == env.key
    assert set(stamp["parts"]) >= {"spec", "backend", "platform", "interpreter", "names", "pip"}
    assert (env.prefix / ".recenv" / "freeze.txt").read_text().startswith("recenv-tiny==1.1")


@pytest.mark.parametrize("stamp", ["[]", "null", '"text"', "{}", '{"key": "KEY"}'])
def test_a_corrupt_stamp_is_rebuilt_over_not_a_traceback(
    tmp_path: Path, offline_pip: Path, cache_dir: Path, stamp: str
) -> None:
    # valid JSON that is not a stamp of this key (a hand edit, a truncated copy): the folder is
    # an unfinished build to replace, as recenv gc lists it, never an AttributeError/KeyError
    spec = write_env(tmp_path, "  - recenv-tiny\n")
    key = make_plan(spec).key
    (cache_dir / key).mkdir(parents=True)
    (cache_dir / key / STAMP).write_text(stamp.replace("KEY", key))
    env = ensure_env(spec, progress=False)
    assert env.created and json.loads((env.prefix / STAMP).read_text())["key"] == key
    assert ensure_env(spec, progress=False).created is False
