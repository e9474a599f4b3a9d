"""pytest-recenv is releasable: `python -m build` makes a wheel and an sdist that `twine check`
accepts, and the wheel installs into a clean environment with its entry points working."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    return out


def test_build_makes_one_wheel_and_one_sdist_that_twine_accepts(dist: Path) -> None:
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in dist.iterdir())
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_artefacts_hold_the_package_and_the_licence_and_nothing_of_the_template(
    dist: Path,
) -> None:
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pytest_recenv/plugin.py" in names
    assert any(n.endswith(".dist-info/entry_points.txt") for n in names)
    assert any(n.endswith("licenses/LICENSE") for n in names), names
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = [m.split("/", 1)[1] for m in tar.getnames() if "/" in m]
    assert "LICENSE" in members and "pyproject.toml" in members
    assert not [m for m in members + names if "cookiecutter" in m or m.startswith("tests/")]


def test_the_wheel_installs_and_registers_the_plugin_and_the_cli(
    dist: Path, tmp_path: Path
) -> None:
    (wheel,) = dist.glob("*.whl")
    uv = Path(sys.executable).with_name("uv")
    venv = tmp_path / "venv"
    subprocess.run([str(uv), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(uv), "pip", "install", "-q", "--python", str(python), str(wheel)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    cli = subprocess.run([str(venv / "bin" / "recenv"), "--help"], capture_output=True, text=True)
    assert cli.returncode == 0 and "build" in cli.stdout, cli.stderr
    header = subprocess.run(
        [str(python), "-m", "pytest", "--version", "--version"], capture_output=True, text=True
    )
    assert "pytest-recenv" in header.stdout + header.stderr
