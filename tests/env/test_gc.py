"""recenv gc removes only what it can prove is its own, and never an environment in use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from recenv_helpers import write_env

pytestmark = pytest.mark.slow

FORTY_DAYS_AGO = time.time() - 40 * 86400


def recenv(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_recenv.env.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ),
        **kwargs,  # type: ignore[arg-type]
    )


def build(spec: Path) -> Path:
    built = recenv("build", "-q", str(spec))
    assert built.returncode == 0, built.stderr
    return Path(built.stdout.strip())


def age(prefix: Path) -> None:
    os.utime(prefix / ".recenv-stamp.json", (FORTY_DAYS_AGO, FORTY_DAYS_AGO))


def test_gc_leaves_alone_every_folder_it_cannot_prove_is_its_own(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    old = build(write_env(tmp_path / "old", "  - recenv-tiny=1.0\n"))
    age(old)
    (cache_dir / f".tmp-{old.name}-999999" / "bin").mkdir(parents=True)  # a killed build's
    elsewhere = tmp_path / "elsewhere"  # a stamped folder outside, linked in under a key's name
    elsewhere.mkdir()
    (elsewhere / ".recenv-stamp.json").write_text(json.dumps({"key": "a" * 20}))
    (cache_dir / ("a" * 20)).symlink_to(elsewhere, target_is_directory=True)
    others = ["data", "0123456789abcdef0123", ".tmp-notakey", "stamped-but-not-a-key"]
    for name in others:  # another tool's folders in a shared cache dir
        (cache_dir / name / "sub").mkdir(parents=True)
        (cache_dir / name / "sub" / "precious.txt").write_text("keep me")
    (cache_dir / "stamped-but-not-a-key" / ".recenv-stamp.json").write_text("{}")

    result = recenv("gc", "--older-than", "30", "--max-size", "0")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for name in others:
        assert (cache_dir / name / "sub" / "precious.txt").read_text() == "keep me"
        assert f"not recenv's {name}: " in result.stdout
    assert (elsewhere / ".recenv-stamp.json").is_file()
    assert f"not recenv's {'a' * 20}: a symbolic link (recenv never makes one); left alone" in (
        result.stdout
    )
    assert f"removed unfinished build .tmp-{old.name}-999999" in result.stdout
    assert f"removed      {old.name}" in result.stdout
    assert not old.exists() and not (cache_dir / f".tmp-{old.name}-999999").exists()


@pytest.mark.parametrize(
    ("stamp", "why"),
    [
        (b"{not json", ".recenv-stamp.json unreadable (JSONDecodeError: "),
        (b"\xff\xfe\x00", ".recenv-stamp.json unreadable (UnicodeDecodeError: "),
        (b"[]", ".recenv-stamp.json names key 'list', not "),
        (b'{"key": "0000"}', ".recenv-stamp.json names key '0000', not "),
    ],
    ids=["not-json", "not-utf8", "a-list", "another-key"],
)
def test_a_corrupt_stamp_is_listed_as_corrupt_and_kept(
    cache_dir: Path, stamp: bytes, why: str
) -> None:
    folder = cache_dir / ("b" * 20)
    folder.mkdir(parents=True)
    (folder / ".recenv-stamp.json").write_bytes(stamp)

    result = recenv("gc", "--max-size", "0")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(f"corrupt      {folder.name}: {why}")
    assert "left alone (the next build of this key replaces it" in result.stdout
    assert (folder / ".recenv-stamp.json").read_bytes() == stamp


def test_an_env_whose_lease_cannot_be_taken_is_kept_with_the_reason_not_a_traceback(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    old = build(write_env(tmp_path, "  - recenv-tiny=1.0\n"))
    age(old)
    (cache_dir / f"{old.name}.lease").mkdir()  # no lock can be taken on it: no proof it is free

    result = recenv("gc", "--older-than", "30")

    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert f"kept: could not lock {old.name}.lease (Is a directory)" in result.stdout
    assert (old / ".recenv-stamp.json").is_file()


def test_an_env_in_use_by_recenv_run_is_never_removed_under_it(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    spec = write_env(tmp_path, "  - recenv-tiny=1.0\n")
    prefix = build(spec)
    code = "import sys; print('ready', flush=True); sys.stdin.readline(); import recenv_tiny"
    waits = ["python", "-c", code]
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_recenv.env.cli",
            "run",
            "-q",
            "--file",
            str(spec),
            "--",
            *waits,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None and run.stdin is not None
        assert run.stdout.readline() == "ready\n"
        age(prefix)

        busy = recenv("gc", "--older-than", "30")

        assert busy.returncode == 0, busy.stderr
        assert f"in use       {prefix.name}" in busy.stdout
        assert "kept: in use (a recenv run or pytest session holds its lease)" in busy.stdout
        run.stdin.write("go on\n")
        run.stdin.close()
        assert run.wait(timeout=60) == 0  # it imported from the env after gc had run
    finally:
        run.kill()
        run.wait()
    assert (prefix / ".recenv-stamp.json").stat().st_mtime > time.time() - 60  # used till now
    age(prefix)
    idle = recenv("gc", "--older-than", "30")
    assert f"removed      {prefix.name}" in idle.stdout
    assert not prefix.exists()


def test_the_env_fixture_holds_a_lease_for_the_whole_session(
    pytester: pytest.Pytester, offline_pip: Path, cache_dir: Path
) -> None:
    write_env(pytester.path, "  - recenv-tiny=1.0\n")
    pytester.makepyfile(f"""
        import subprocess, sys

        def test_gc_cannot_take_the_env(recenv_env):
            gc = subprocess.run([{sys.executable!r}, "-m", "pytest_recenv.env.cli", "gc",
                                 "--max-size", "0"], capture_output=True, text=True)
            assert "in use       " + recenv_env.key in gc.stdout, gc.stdout
            recenv_env.run(["python", "-c", "import recenv_tiny"])
    """)
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=1)
    after = recenv("gc", "--max-size", "0")  # the session ended: its lease is gone
    assert "removed      " in after.stdout
    assert not [p for p in cache_dir.iterdir() if p.is_dir()]


def test_an_unfinished_in_place_build_is_removed_only_without_a_live_builder(
    cache_dir: Path,
) -> None:
    key = "c" * 20
    (cache_dir / key / "conda-meta").mkdir(parents=True)  # a conda-family build, in place
    (cache_dir / f"{key}.unfinished").write_text("")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import filelock, sys; l = filelock.FileLock(sys.argv[1]); "
            "l.acquire(); print('held', flush=True); sys.stdin.readline()",
            str(cache_dir / f"{key}.lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert f"skipped {key}: a build is running" in recenv("gc").stdout
        assert (cache_dir / key / "conda-meta").is_dir()
    finally:
        holder.kill()
        holder.wait()
    assert f"removed unfinished build {key}" in recenv("gc").stdout
    assert not (cache_dir / key).exists() and not (cache_dir / f"{key}.unfinished").exists()
