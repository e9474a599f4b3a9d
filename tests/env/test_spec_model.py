"""Spec model: CEP 29 MatchSpec semantics, translation to PyPI, the normalised hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_recenv.env import names
from pytest_recenv.env.plan import translate
from pytest_recenv.env.spec import load_spec, parse_matchspec
from pytest_recenv.errors import SpecError


@pytest.mark.parametrize(
    ("conda", "pep440"),
    [
        ("pkg=1.8", "==1.8.*"),  # '=' is fuzzy: 1.8.*
        ("pkg 1.8", "==1.8"),  # a bare version after a space is exact
        ("pkg==1.8", "==1.8"),
        ("pkg 1.8*", "==1.8.*"),
        ("pkg>=1.8,<2", ">=1.8,<2"),
        ("pkg=1.8=py311_0", "==1.8.*"),  # build string does not change the version
        ("conda-forge::pkg>=1.8", ">=1.8"),
        ("pkg[version='>=1.2']", ">=1.2"),
        ("pkg", ""),
        ("pkg>=1.8.*", ">=1.8"),
    ],
)
def test_conda_versions_translate_to_pep440_per_cep29(conda: str, pep440: str) -> None:
    assert parse_matchspec(conda).pep440() == pep440


def test_matchspec_keeps_channel_and_build_string() -> None:
    dep = parse_matchspec("pytorch::pytorch=2.13=cpu*")
    assert (dep.channel, dep.name, dep.version, dep.build) == (
        "pytorch",
        "pytorch",
        "2.13.*",
        "cpu*",
    )


def test_or_versions_are_valid_conda_but_refused_for_pypi() -> None:
    dep = parse_matchspec("numpy >=1.20|<1.10")
    with pytest.raises(ValueError, match=r"'\|' \(OR\), which PEP 440 cannot express"):
        dep.pep440()


@pytest.mark.parametrize(
    ("conda", "pypi"),
    [
        ("pytorch", "torch"),
        ("pytorch-cpu", "torch"),
        ("faiss", "faiss-cpu"),
        ("libfaiss", "faiss-cpu"),
        ("faiss-gpu", "faiss-gpu"),
        ("py-opencv", "opencv-python-headless"),
        ("pytables", "tables"),
        ("matplotlib-base", "matplotlib"),
        ("numpy", "numpy"),
        ("python", None),
        ("cudatoolkit", None),
        ("cpuonly", None),
        ("mkl", None),
    ],
)
def test_name_table_maps_or_drops(conda: str, pypi: str | None) -> None:
    assert names.pypi_name(conda) == pypi


def _env(tmp_path: Path, text: str, name: str = "environment.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BASE = """name: shop-dev-me
channels:
  - conda-forge
  - nodefaults
dependencies:
  - python=3.11
  - pip
  - pytorch=2.13=cpu*
  - matplotlib-base>=3.8
  - numpy>=1.26
  - cudatoolkit
  - pip:
      - rich>=13
      - -e .
"""


def test_generated_style_spec_translates_to_one_requirement_list(tmp_path: Path) -> None:
    conda, pip, smoke = translate(load_spec(_env(tmp_path, BASE)))
    assert conda == ["torch==2.13.*", "matplotlib>=3.8", "numpy>=1.26"]
    assert pip == ["rich>=13", f"-e {tmp_path.resolve()}"]
    assert smoke == ["torch", "matplotlib", "numpy", "rich"]


def test_cosmetic_edits_keep_the_digest(tmp_path: Path) -> None:
    reordered = """# comments, order, spacing and the env name do not change the environment
name: another-dev-name
channels: [conda-forge, nodefaults]
dependencies:
  - numpy >=1.26
  - pip:
    - -e  .
    - rich >= 13
  - matplotlib-base>=3.8
  - cudatoolkit
  - pytorch 2.13.* cpu*
  - pip
  - python 3.11.*
"""
    a = load_spec(_env(tmp_path, BASE, "a.yml"))
    b = load_spec(_env(tmp_path, reordered, "b.yml"))
    assert a.digest() == b.digest()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("numpy>=1.26", "numpy>=1.27"),
        ("python=3.11", "python=3.10"),
        ("rich>=13", "rich>=14"),
        ("  - nodefaults\n", "  - nodefaults\n  - pytorch\n"),
    ],
)
def test_real_changes_change_the_digest(tmp_path: Path, old: str, new: str) -> None:
    a = load_spec(_env(tmp_path, BASE, "a.yml"))
    b = load_spec(_env(tmp_path, BASE.replace(old, new), "b.yml"))
    assert a.digest() != b.digest()


def test_channel_order_counts_because_it_is_priority(tmp_path: Path) -> None:
    a = load_spec(_env(tmp_path, BASE.replace("  - nodefaults\n", "  - pytorch\n"), "a.yml"))
    b = load_spec(
        _env(
            tmp_path,
            BASE.replace("  - conda-forge\n  - nodefaults\n", "  - pytorch\n  - conda-forge\n"),
            "b.yml",
        )
    )
    assert a.digest() != b.digest()


def test_load_spec_raises_with_every_problem(tmp_path: Path) -> None:
    path = _env(tmp_path, "name: x\ndependencies:\n  - Numpy\n  - 3.11\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert [p.line for p in err.value.problems] == [3, 4]
    assert str(err.value).startswith(f"{path}:3: 'Numpy': 'Numpy' is not a valid conda")


OPEN = "does not name a minor version, so the build takes whichever CPython is newest"
FEW = "so the build takes the newest of them installed"


@pytest.mark.parametrize(
    ("pin", "why"),
    [
        ("python>=3.10", OPEN),
        ("python=3", OPEN),
        ("python=*", OPEN),
        ("python 3.*", OPEN),
        ("python~=3.11", OPEN),
        ("python>3.10", OPEN),
        ("python[version='>=3.10']", OPEN),
        ("python<3.12", OPEN),
        # a short list is named
        ("python 3.10|3.11", f"allows 2 minor versions (3.10, 3.11), {FEW}"),
        ("python>=3.10,<3.13", f"allows 3 minor versions (3.10, 3.11, 3.12), {FEW}"),
    ],
)
def test_python_pins_without_a_minor_are_refused_wherever_the_spec_is_loaded(
    tmp_path: Path, pin: str, why: str
) -> None:
    path = _env(tmp_path, BASE.replace("python=3.11", f'"{pin}"'))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:6: '{pin}' {why}; pin one, like '- python=3.11'"
    ]


def test_the_suggested_minor_stays_within_the_pins_range(tmp_path: Path) -> None:
    path = _env(tmp_path, BASE.replace("python=3.11", "python>=3.12"))
    with pytest.raises(SpecError, match=r"pin one, like '- python=3\.12'"):
        load_spec(path)
    path = _env(tmp_path, BASE.replace("python=3.11", "python<3.11"))
    with pytest.raises(SpecError, match=r"pin one, like '- python=3\.10'"):
        load_spec(path)


@pytest.mark.parametrize(
    "pin",
    [
        "python=3.11",
        "python=3.11.4",
        "python 3.11.*",
        "python==3.11.*",
        "python>=3.11,<3.12",
        "python~=3.11.2",
        "python[version='3.11.*']",
        "python=3.11=*_cpython",
    ],
)
def test_python_pins_naming_one_minor_are_accepted(tmp_path: Path, pin: str) -> None:
    assert load_spec(_env(tmp_path, BASE.replace("python=3.11", f'"{pin}"'))).python


def test_load_spec_refuses_yaml_aliases_so_build_key_and_lock_do_too(tmp_path: Path) -> None:
    bomb = BASE.replace("  - numpy>=1.26\n", "  - &n numpy>=1.26\n  - *n\n")
    path = _env(tmp_path, bomb)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert [p.line for p in err.value.problems] == [11]
    assert "YAML alias '*n' (its anchor '&n' is on line 10)" in str(err.value)


def test_translate_expands_pip_variables_before_resolving_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip expands ${VAR} in requirement files; the builds must open what pip would."""
    (tmp_path / "pkgs" / "shop").mkdir(parents=True)
    (tmp_path / "reqs.txt").write_text("rich\n")
    monkeypatch.setenv("RECENV_PKGS", str(tmp_path / "pkgs"))
    monkeypatch.setenv("RECENV_REQS", "reqs.txt")
    pip_lines = "      - -e ${RECENV_PKGS}/shop\n      - -r ${RECENV_REQS}\n"
    text = BASE.replace("      - -e .\n", pip_lines)
    _, pip, _ = translate(load_spec(_env(tmp_path, text)))
    assert pip == [
        "rich>=13",
        f"-e {(tmp_path / 'pkgs' / 'shop').resolve()}",
        f"-r {(tmp_path / 'reqs.txt').resolve()}",
    ]


def test_the_uv_translation_refuses_an_or_version_at_its_line_and_conda_keeps_it(
    tmp_path: Path,
) -> None:
    from pytest_recenv.errors import RecenvError

    path = _env(tmp_path, BASE.replace("  - numpy>=1.26\n", "  - numpy 1.26.*|2.4.*\n"))
    spec = load_spec(path)
    with pytest.raises(RecenvError) as err:
        translate(spec)  # what the uv backend resolves: PEP 440 has no OR
    line = next(d.line for d in spec.conda if d.name == "numpy")
    assert str(err.value) == (
        f"{path}:{line}: 'numpy 1.26.*|2.4.*': version uses '|' (OR), which PEP 440 cannot "
        "express; pick one range, or build with a conda backend"
    )
    conda_lines, _, smoke = translate(spec, strict=False)  # a conda backend solves it itself
    assert not any(line.startswith("numpy") for line in conda_lines)
    assert "numpy" in smoke


def test_each_side_of_an_or_version_must_be_a_version(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a valid version constraint"):
        parse_matchspec("numpy 1.26.*|>=banana")
