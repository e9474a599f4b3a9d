"""Drift rules on installed-version tables (the table is what `recenv drift` reads from an env)."""

from __future__ import annotations

from pathlib import Path

from pytest_recenv.env.locks import drift
from pytest_recenv.env.spec import load_spec

CPU = """name: shop-dev-me
channels: [conda-forge, nodefaults]
dependencies:
  - python=3.11
  - pip
  - pytorch=2.13=cpu*
  - numpy>=1.26
  - faiss-cpu=1.15
"""


def _drift(tmp_path: Path, text: str, installed: dict[str, str]) -> list[str]:
    path = tmp_path / "environment.yml"
    path.write_text(text)
    return [f"{p.line}: {p.message}" for p in drift(load_spec(path), installed, "env")]


def test_loose_pins_met_by_newer_versions_and_local_cpu_tags_are_not_drift(tmp_path: Path) -> None:
    installed = {"torch": "2.13.0+cpu", "numpy": "2.4.6", "faiss-cpu": "1.15.1"}
    assert _drift(tmp_path, CPU, installed) == []


def test_a_cuda_torch_in_a_cpu_spec_is_a_variant_clash(tmp_path: Path) -> None:
    installed = {"torch": "2.13.0+cu126", "numpy": "2.4.6", "faiss-cpu": "1.15.1"}
    assert _drift(tmp_path, CPU, installed) == [
        "6: spec asks for CPU builds ('pytorch=2.13=cpu*') but a CUDA torch is installed "
        "(torch 2.13.0+cu126); reinstall the CPU wheel"
    ]


def test_cpu_torch_in_a_cuda_spec_and_both_faiss_builds_are_reported(tmp_path: Path) -> None:
    cuda = CPU.replace("cpu*", "cuda*").replace("faiss-cpu=1.15", "faiss-gpu=1.15")
    installed = {
        "torch": "2.13.0+cpu",
        "numpy": "2.4.6",
        "faiss-gpu": "1.15.1",
        "faiss-cpu": "1.15.1",
    }
    assert _drift(tmp_path, cuda, installed) == [
        "1: faiss-cpu 1.15.1 and faiss-gpu 1.15.1 are both installed and overwrite each other's "
        "'faiss' module; uninstall one",
        "6: spec asks for CUDA ('pytorch=2.13=cuda*') but the CPU torch 2.13.0+cpu is installed",
    ]


def test_missing_and_too_old_packages_are_reported_at_their_lines(tmp_path: Path) -> None:
    installed = {"torch": "2.12.1+cpu", "numpy": "1.25.0"}
    assert _drift(tmp_path, CPU, installed) == [
        "6: 'pytorch=2.13=cpu*': torch 2.12.1+cpu does not satisfy '==2.13.*'",
        "7: 'numpy>=1.26': numpy 1.25.0 does not satisfy '>=1.26'",
        "8: 'faiss-cpu=1.15': not installed",
    ]


def test_cuda_suffixed_builds_clash_with_their_cpu_twins_and_each_other(tmp_path: Path) -> None:
    spec = CPU.replace("  - pytorch=2.13=cpu*\n", "")
    installed = {
        "numpy": "2.4.6",
        "faiss-cpu": "1.15.1",
        "faiss-gpu-cu12": "1.15.1",
        "cupy-cuda11x": "13.6.0",
        "cupy-cuda12x": "13.6.0",
    }
    assert _drift(tmp_path, spec, installed) == [
        "1: cupy-cuda11x 13.6.0 and cupy-cuda12x 13.6.0 are both installed and overwrite each "
        "other's 'cupy' module; uninstall one",
        "1: faiss-cpu 1.15.1 and faiss-gpu-cu12 1.15.1 are both installed and overwrite each "
        "other's 'faiss' module; uninstall one",
        "7: spec asks for CPU builds ('faiss-cpu=1.15') but CUDA builds are installed "
        "(cupy-cuda11x 13.6.0, cupy-cuda12x 13.6.0, faiss-gpu-cu12 1.15.1); uninstall them",
    ]


def test_nvidia_runtime_wheels_make_a_plain_torch_a_cuda_one_in_a_cpu_spec(tmp_path: Path) -> None:
    installed = {
        "torch": "2.13.0",
        "numpy": "2.4.6",
        "faiss-cpu": "1.15.1",
        "nvidia-cublas-cu12": "12.6.4.1",
    }
    assert _drift(tmp_path, CPU, installed) == [
        "6: spec asks for CPU builds ('pytorch=2.13=cpu*') but a CUDA torch is installed "
        "(torch 2.13.0); reinstall the CPU wheel"
    ]


def test_a_pip_cuda_build_makes_the_spec_a_cuda_one_for_drift(tmp_path: Path) -> None:
    spec = CPU.replace("  - pytorch=2.13=cpu*\n", "  - pytorch=2.13\n").replace(
        "  - faiss-cpu=1.15\n", "  - pip:\n      - faiss-gpu-cu12\n"
    )
    installed = {"torch": "2.13.0+cpu", "numpy": "2.4.6", "faiss-gpu-cu12": "1.15.1"}
    assert _drift(tmp_path, spec, installed) == [
        "6: spec asks for CUDA ('faiss-gpu-cu12') but the CPU torch 2.13.0+cpu is installed",
    ]


OR_SPEC = CPU.replace("  - numpy>=1.26\n", "  - numpy 1.26.*|2.4.*\n")


def test_an_or_version_is_checked_alternative_by_alternative(tmp_path: Path) -> None:
    # one translation for build, lock and drift: '|' keeps its alternatives (it used to be
    # "any version" here while the build refused it)
    base = {"torch": "2.13.0+cpu", "faiss-cpu": "1.15.1"}
    assert _drift(tmp_path, OR_SPEC, {**base, "numpy": "2.4.6"}) == []
    assert _drift(tmp_path, OR_SPEC, {**base, "numpy": "1.26.4"}) == []
    assert _drift(tmp_path, OR_SPEC, {**base, "numpy": "2.0.1"}) == [
        "7: 'numpy 1.26.*|2.4.*': numpy 2.0.1 does not satisfy '==1.26.* | ==2.4.*'"
    ]


def test_lock_freshness_reads_an_or_version_like_drift(tmp_path: Path) -> None:
    import json

    from pytest_recenv.env.locks import lock_problems

    path = tmp_path / "environment.yml"
    path.write_text(OR_SPEC)
    pins = {"torch": "2.13.0+cpu", "faiss-cpu": "1.15.1", "numpy": "2.0.1"}
    lock = {"format": 1, "spec_hash": "older", "python": "3.11.7", "packages": pins}
    (tmp_path / "environment.lock.json").write_text(json.dumps(lock))
    assert [str(p) for p in lock_problems(path, display="environment.yml")] == [
        "environment.yml:7: 'numpy 1.26.*|2.4.*' is numpy 2.0.1 does not satisfy "
        "'==1.26.* | ==2.4.*' in the lock; refresh the lock: recenv lock"
    ]
    lock["packages"]["numpy"] = "1.26.4"
    (tmp_path / "environment.lock.json").write_text(json.dumps(lock))
    assert lock_problems(path) == []
