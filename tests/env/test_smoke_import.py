"""The post-build verification: real dependency checks and real interpreters importing real
installed distributions."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from recenv_helpers import make_wheel

from pytest_recenv.env.smoke import _import_weights, smoke_test, verify
from pytest_recenv.errors import BuildError


def _install(
    site: Path, name: str, module: str | None = None, requires: tuple[str, ...] = ()
) -> None:
    """Unpack a real wheel into ``site``, as an installer does for a pure-Python wheel."""
    wheel = make_wheel(site.parent / "wheels", name, "1.0", module=module, requires=requires)
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)


def _env(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(site)}


def test_every_failure_is_reported_by_package_even_when_one_kills_the_interpreter(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    _install(site, "recenv-fine")
    _install(site, "recenv-chatty", module='print(\'{"not": "an answer"}\')\nVERSION = 1\n')
    _install(site, "recenv-raises", module="raise RuntimeError('boom at import')\n")
    _install(
        site,
        "recenv-dies",
        module="import sys\nsys.stderr.write('dying now\\n')\nimport os\nos._exit(7)\n",
    )
    dists = ["recenv-fine", "recenv-chatty", "recenv-raises", "recenv-dies", "recenv-absent"]
    with pytest.raises(BuildError) as err:
        smoke_test(Path(sys.executable), dists, env=_env(site))
    lines = str(err.value).splitlines()
    # the crash report quotes the worker's stderr tail, which may also hold what an earlier
    # package printed in that worker (printing goes to stderr, away from the answers)
    assert lines[2].startswith(
        "  recenv-dies: the interpreter crashed (exit 7) while importing it: "
    ) and lines[2].endswith("dying now"), lines[2]
    assert lines[:2] + lines[3:] == [
        "import smoke test failed for 3 of 5 declared packages:",
        "  recenv-absent: not installed",
        "  recenv-raises: import recenv_raises: RuntimeError: boom at import",
    ]


def test_a_clean_run_returns_the_import_time_of_every_package(tmp_path: Path) -> None:
    site = tmp_path / "site"
    names = [f"recenv-ok{i}" for i in range(6)]
    for name in names:
        _install(site, name, module="import time\ntime.sleep(0.05)\n")
    seconds = smoke_test(Path(sys.executable), names, env=_env(site))
    assert sorted(seconds) == names
    assert all(s >= 0.05 for s in seconds.values()), seconds


def test_heaviest_first_counts_the_source_a_package_pulls_in_through_its_requirements(
    tmp_path: Path,
) -> None:
    site = tmp_path / "lib" / f"python3.{sys.version_info[1]}" / "site-packages"
    _install(site, "recenv-big", module="X = 1\n" * 5000)
    _install(site, "recenv-thin", requires=("recenv-big>=1",))
    _install(site, "recenv-alone", module="Y = 2\n" * 100)
    _install(site, "recenv-optional", requires=("recenv-big; extra == 'all'",))
    weights = _import_weights(
        tmp_path, ["recenv-thin", "recenv-alone", "recenv-optional", "recenv-missing"]
    )
    big = len("X = 1\n" * 5000)
    assert weights["recenv-thin"] > big > weights["recenv-alone"] > weights["recenv-optional"]
    assert weights["recenv-missing"] == 0


def test_a_missing_requirement_fails_verification_and_is_reported_with_the_failed_imports(
    tmp_path: Path, wheelhouse: Path
) -> None:
    """A real venv broken the way a half-finished manual fix breaks one: a package whose
    requirement was uninstalled after it.  ``uv pip check`` must catch it, and the import
    smoke test still runs, so the one report names both kinds of problem."""
    from pytest_recenv.env.interpreters import find_uv

    uv = find_uv()
    make_wheel(wheelhouse, "recenv-broken", "1.0", module="raise RuntimeError('boom at import')\n")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    target = ["--python", str(python)]
    offline = [*target, "--no-index", "--find-links", str(wheelhouse)]
    install = [uv, "pip", "install", "-q", *offline, "recenv-dep", "recenv-broken"]
    subprocess.run(install, check=True)
    check = [Path(uv), "pip", "check", *target]
    assert list(verify(python, ["recenv-dep"], check).imported) == ["recenv-dep"]

    subprocess.run([uv, "pip", "uninstall", "-q", *target, "recenv-tiny"], check=True)
    with pytest.raises(BuildError) as err:
        verify(python, ["recenv-dep", "recenv-broken"], check)
    assert str(err.value).splitlines() == [
        "dependency check failed (uv pip check, exit 1):",
        "  The package `recenv-dep` requires `recenv-tiny>=1.0`, but it's not installed",
        "import smoke test failed for 1 of 2 declared packages:",
        "  recenv-broken: import recenv_broken: RuntimeError: boom at import",
    ]


def _venv_with(tmp_path: Path, wheelhouse: Path, *dists: str) -> tuple[str, Path]:
    from pytest_recenv.env.interpreters import find_uv

    uv = find_uv()
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [uv, "pip", "install", "-q", "--python", str(python), "--no-index"]
    subprocess.run([*install, "--find-links", str(wheelhouse), *dists], check=True)
    return uv, python


def test_an_import_check_is_recorded_by_content_and_not_run_again_for_the_same_files(
    tmp_path: Path, wheelhouse: Path
) -> None:
    uv, python = _venv_with(tmp_path, wheelhouse, "recenv-dep")
    check = [Path(uv), "pip", "check", "--python", str(python)]
    records = tmp_path / "records"
    first = verify(python, ["recenv-dep", "recenv-tiny"], check, records=records)
    assert (sorted(first.imported), first.from_records) == (["recenv-dep", "recenv-tiny"], [])
    assert len(list(records.glob("*.json"))) == 2
    again = verify(python, ["recenv-dep", "recenv-tiny"], check, records=records)
    assert (again.imported, sorted(again.from_records)) == ({}, ["recenv-dep", "recenv-tiny"])
    assert again.as_dict()["dependency_check"] == "uv pip check"

    # a changed file of a requirement: recenv-dep imports it, so both are checked again
    other = tmp_path / "other-wheels"
    make_wheel(other, "recenv-tiny", "1.1", module="VERSION = 'rebuilt'\n")
    install = [uv, "pip", "install", "-q", "--python", str(python), "--no-index", "--reinstall"]
    subprocess.run([*install, "--find-links", str(other), "recenv-tiny==1.1"], check=True)
    changed = verify(python, ["recenv-dep", "recenv-tiny"], check, records=records)
    assert (sorted(changed.imported), changed.from_records) == (["recenv-dep", "recenv-tiny"], [])


def test_a_failed_import_is_never_recorded_and_records_off_imports_everything(
    tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_recenv.env.verified import records_dir

    make_wheel(wheelhouse, "recenv-broken", "1.0", module="raise RuntimeError('boom')\n")
    uv, python = _venv_with(tmp_path, wheelhouse, "recenv-broken")
    check = [Path(uv), "pip", "check", "--python", str(python)]
    records = tmp_path / "records"
    for _ in range(2):  # the second run imports it again and fails again
        with pytest.raises(BuildError, match="recenv-broken: import recenv_broken"):
            verify(python, ["recenv-broken"], check, records=records)
    assert not list(records.glob("*.json"))
    monkeypatch.setenv("RECENV_VERIFY_CACHE", "off")
    assert records_dir() is None
    monkeypatch.setenv("RECENV_VERIFY_CACHE", str(records))
    assert records_dir() == records


def test_a_failure_beside_imports_from_records_counts_every_declared_package(
    tmp_path: Path, wheelhouse: Path
) -> None:
    make_wheel(wheelhouse, "recenv-broken", "1.0", module="raise RuntimeError('boom')\n")
    uv, python = _venv_with(tmp_path, wheelhouse, "recenv-dep", "recenv-broken")
    check = [Path(uv), "pip", "check", "--python", str(python)]
    records = tmp_path / "records"
    verify(python, ["recenv-dep", "recenv-tiny"], check, records=records)  # both recorded
    with pytest.raises(BuildError) as err:
        verify(python, ["recenv-dep", "recenv-tiny", "recenv-broken"], check, records=records)
    # three declared, two of them vouched for by records: not "1 of 1 declared packages"
    assert "import smoke test failed for 1 of 3 declared packages:" in str(err.value)
