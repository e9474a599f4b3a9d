"""A spec that asks for CUDA never locks or builds a CPU torch/faiss (issue 12, item 10).

Real uv resolutions: the machine's local CPU torch wheel (find-links) where it exists, and tiny
wheels built on the spot that stand in for CPU and CUDA builds of torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recenv_helpers import make_wheel, write_env

from pytest_recenv.env import pipconfig
from pytest_recenv.env.cli import main
from pytest_recenv.env.matchspec import parse_matchspec
from pytest_recenv.env.spec import Spec
from pytest_recenv.env.variants import spec_cuda_major, torch_variant

pytestmark = pytest.mark.slow


def _local_folder(link: str) -> Path | None:
    path = Path(link[len("file://") :] if link.startswith("file://") else link)
    return path if "://" not in link or link.startswith("file://") else None


# The user's own pip configuration (as recenv reads it) says where a CPU torch wheel and a local
# index may be; nothing of this machine is written here.
USER_PIP = pipconfig.load()
CPU_TORCH = sorted(
    wheel
    for link in USER_PIP.find_links
    if (folder := _local_folder(link)) and folder.is_dir()
    for wheel in folder.glob("torch-2.13.0+cpu-cp311-*.whl")
)
LOCAL_WHEELS = CPU_TORCH[0].parent if CPU_TORCH else None
LOCAL_INDEX = next(
    (
        folder
        for url in [USER_PIP.index_url or "", *USER_PIP.extra_index_urls]
        if url.startswith("file://") and (folder := _local_folder(url)) and folder.is_dir()
    ),
    None,
)
CUDA12 = "  - cuda-version=12.6\n  - pytorch=2.13=cuda*\n"


def _pip_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, body: str) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\n{body}")
    empty = tmp_path / "no-xdg"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(empty))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(empty))
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("PIP_NO_INDEX", raising=False)


@pytest.fixture
def machine_torch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """This machine's CPU torch wheel (find-links) and its local index for torch's
    dependencies; no PyPI, so the result does not depend on the network."""
    if LOCAL_WHEELS is None or LOCAL_INDEX is None:
        pytest.skip(
            "needs a torch 2.13.0+cpu cp311 wheel in a local find-links folder and a local "
            f"(file://) index in your pip config; found find-links {USER_PIP.find_links}, "
            f"indexes {[USER_PIP.index_url, *USER_PIP.extra_index_urls]}"
        )
    _pip_config(
        monkeypatch,
        tmp_path,
        f"index-url = {LOCAL_INDEX.as_uri()}\nfind-links = {LOCAL_WHEELS}\n",
    )


@pytest.fixture
def torch_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A find-links folder (and nothing else) with stand-ins for a CPU torch and CUDA 12 and 13
    torch builds: the CPU build is the newest by PEP 440 (a local label sorts last)."""
    house = tmp_path / "torch-builds"
    make_wheel(house, "torch", "2.13.0+cpu")
    make_wheel(house, "torch", "2.13.0", requires=("nvidia-cuda-runtime-cu12==12.6.77",))
    make_wheel(house, "nvidia-cuda-runtime-cu12", "12.6.77")
    _pip_config(monkeypatch, tmp_path, f"no-index = true\nfind-links = {house}\n")
    return house


def test_lock_of_a_cuda12_spec_refuses_the_local_cpu_torch_wheel(
    tmp_path: Path, machine_torch: None, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_env(tmp_path / "proj", CUDA12)
    assert main(["lock", str(spec)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"recenv lock: {spec}:9: 'pytorch=2.13=cuda*' resolved to torch 2.13.0+cpu (a CPU "
        f"build, from {LOCAL_WHEELS.as_uri()}) but this spec asks for CUDA 12 "
        "('cuda-version=12.6', line 8); your indexes offer no other build of it. Offer a CUDA "
        "build: add the PyTorch CUDA index to your pip config (extra-index-url = "
        "https://download.pytorch.org/whl/cu126) or remove the CPU wheel from your find-links, "
        "or build this on a CPU stage (drop the CUDA lines: cpuonly / compute=cpu)\n"
    )
    assert not (spec.parent / "environment.lock.json").exists()


def test_translate_says_a_cuda_spec_gets_cuda_builds_only(
    tmp_path: Path, torch_builds: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["translate", str(write_env(tmp_path / "proj", CUDA12))]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "cuda: the spec asks for CUDA 12; lock and build refuse a CPU build of torch or faiss "
        "(build strings are not seen by uv)"
    )
    assert main(["translate", str(write_env(tmp_path / "cpu", "  - pytorch=2.13=cpu*\n"))]) == 0
    out = capsys.readouterr().out
    assert "cuda:" not in out
    assert out.splitlines()[-1] == (
        "cpu: the spec asks for CPU builds; lock and build prefer a CPU torch, and warn where "
        "only a CUDA build is offered "
        "(build strings are not seen by uv)"
    )


def test_lock_of_a_cpu_spec_still_locks_the_local_cpu_torch_wheel(
    tmp_path: Path, machine_torch: None, cache_dir: Path
) -> None:
    spec = write_env(tmp_path / "proj", "  - pytorch=2.13=cpu*\n  - cpuonly\n")
    assert main(["lock", str(spec)]) == 0
    lock = json.loads((spec.parent / "environment.lock.json").read_text())
    assert lock["packages"]["torch"] == "2.13.0+cpu"


def test_build_of_a_cuda12_spec_refuses_the_cpu_torch_before_installing_anything(
    tmp_path: Path, machine_torch: None, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_env(tmp_path / "proj", CUDA12)
    assert main(["build", "-q", str(spec)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"recenv build: {spec}:9: 'pytorch=2.13=cuda*' resolved to torch 2.13.0+cpu (a CPU build"
    ), err
    assert "Traceback" not in err
    # refused at resolution: no venv, no half-built env, nothing fetched into an env
    assert [p.name for p in cache_dir.iterdir() if not p.name.endswith((".lock", ".json"))] == []


def test_a_cuda_build_the_indexes_offer_is_locked_and_built_instead_of_the_cpu_wheel(
    tmp_path: Path, torch_builds: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_env(tmp_path / "proj", CUDA12)
    assert main(["lock", str(spec)]) == 0, capsys.readouterr().err
    lock = json.loads((spec.parent / "environment.lock.json").read_text())
    assert lock["packages"]["torch"] == "2.13.0"
    assert lock["packages"]["nvidia-cuda-runtime-cu12"] == "12.6.77"
    (spec.parent / "environment.lock.json").unlink()  # build from the spec, not the lock
    capsys.readouterr()
    assert main(["build", "-q", str(spec)]) == 0, capsys.readouterr().err
    prefix = Path(capsys.readouterr().out.strip())
    freeze = (prefix / ".recenv" / "freeze.txt").read_text()
    assert "torch==2.13.0\n" in freeze


def test_a_cuda_build_of_another_major_is_refused_naming_both_builds(
    tmp_path: Path, torch_builds: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (torch_builds / "torch-2.13.0-py3-none-any.whl").unlink()
    make_wheel(torch_builds, "torch", "2.13.0", requires=("nvidia-cuda-runtime==13.0.96",))
    make_wheel(torch_builds, "nvidia-cuda-runtime", "13.0.96")
    spec = write_env(tmp_path / "proj", CUDA12)
    assert main(["lock", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "resolved to torch 2.13.0+cpu (a CPU build, from " in err
    assert "the other builds offered: torch 2.13.0 (a CUDA 13 build, from " in err
    assert "asks for CUDA 12 ('cuda-version=12.6', line 8)" in err


def test_faiss_cpu_standing_in_for_faiss_gpu_is_refused(
    tmp_path: Path, torch_builds: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_wheel(torch_builds, "faiss-gpu", "1.15.1", requires=("faiss-cpu",))
    make_wheel(torch_builds, "faiss-cpu", "1.15.1")
    spec = write_env(tmp_path / "proj", CUDA12 + "  - faiss-gpu=1.15\n")
    assert main(["lock", str(spec)]) == 1
    err = capsys.readouterr().err
    assert f"{spec}:10: 'faiss-gpu=1.15' resolved to faiss-cpu 1.15.1 (a CPU build, from " in err


@pytest.mark.parametrize(
    ("pins", "expected"),
    [
        ({"torch": "2.13.0+cpu"}, ("cpu", None)),
        ({"torch": "2.13.0+cu126"}, ("cuda", 12)),
        ({"torch": "2.13.0+cu130"}, ("cuda", 13)),
        ({"torch": "2.13.0+rocm6.4"}, ("rocm6.4", None)),
        ({"torch": "2.13.0"}, ("cpu", None)),  # macOS/Windows: no CUDA libraries resolved
        ({"torch": "2.13.0", "nvidia-cuda-runtime": "13.0.96"}, ("cuda", 13)),
        ({"torch": "2.13.0", "nvidia-cublas-cu12": "12.9.3.13"}, ("cuda", 12)),
    ],
    ids=["cpu", "cu126", "cu130", "rocm", "plain", "plain-cuda13", "plain-cu12"],
)
def test_torch_variant_reads_the_build_from_the_resolution(
    pins: dict[str, str], expected: tuple[str, int | None]
) -> None:
    assert torch_variant(pins) == expected


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["cuda-version=12.6", "pytorch=2.13=cuda*"], 12),
        (["pytorch-cuda=12.1"], 12),
        (["cudatoolkit>=11.8"], 11),
        (["cudatoolkit<13"], None),  # an upper bound names no major
        (["pytorch=2.13=cuda126*"], 12),
        (["pytorch=2.13=cuda*"], None),
        (["faiss-gpu=1.15"], None),
    ],
    ids=["cuda-version", "pytorch-cuda", "lower-bound", "upper-bound", "build", "any", "none"],
)
def test_spec_cuda_major_reads_the_cuda_version_a_spec_names(
    tmp_path: Path, lines: list[str], expected: int | None
) -> None:
    spec = Spec(path=tmp_path / "environment.yml", conda=[parse_matchspec(t) for t in lines])
    found = spec_cuda_major(spec)
    assert (found[0] if found else None) == expected


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("faiss-gpu", "", ("cuda", None)),
        ("faiss-gpu-cu11", "", ("cuda", 11)),
        ("faiss_gpu_cu12", "==1.9.0", ("cuda", 12)),
        ("faiss-cpu", "", ("cpu", None)),
        ("cupy-cuda12x", "", ("cuda", 12)),
        ("cupy-cuda117", "", ("cuda", 11)),
        ("cupy-cuda80", "", ("cuda", 8)),
        ("nvidia-cudnn-cu12", "9.1.0.70", ("cuda", 12)),
        ("nvidia-cuda-runtime-cu11", "", ("cuda", 11)),
        ("torch", "==2.3.1+cu121", ("cuda", 12)),
        ("torchvision", "0.18.1+cu118", ("cuda", 11)),
        ("torch", "2.13.0+cpu", ("cpu", None)),
        ("torch", "==2.13.*", None),
        ("cupy", "", None),
        ("numpy", "2.4.6", None),
    ],
)
def test_distribution_variant_reads_cuda_and_cpu_builds_from_pypi_names(
    name: str, version: str, expected: tuple[str, int | None] | None
) -> None:
    from pytest_recenv.env.variants import distribution_variant

    assert distribution_variant(name, version) == expected


# --- the mirror case: a spec that asks for CPU builds never locks or builds a CUDA torch ---

CPU_SPEC = "  - pytorch=2.13=cpu*\n"  # line 8, as a compute=cpu bake writes it


@pytest.fixture
def cuda_only_torch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A find-links folder (and nothing else) whose only torch is a plain 2.13.0 that pulls an
    NVIDIA runtime wheel: PyPI's Linux (CUDA) build, all a CPU spec gets where the pip config
    offers no CPU wheel for its Python."""
    house = tmp_path / "cuda-only"
    make_wheel(house, "torch", "2.13.0", requires=("nvidia-cublas-cu12==12.9.1.4",))
    make_wheel(house, "nvidia-cublas-cu12", "12.9.1.4")
    _pip_config(monkeypatch, tmp_path, f"no-index = true\nfind-links = {house}\n")
    return house


def _cpu_fallback(spec: Path, house: Path, rest: str) -> str:
    return (
        f"{spec}:8: 'pytorch=2.13=cpu*' resolved to torch 2.13.0 (a CUDA 12 build, from "
        f"{house.as_uri()}) but this spec asks for CPU builds ('pytorch=2.13=cpu*', line 8); "
        f"{rest}. Using it: a CUDA build runs on the CPU too, but brings the NVIDIA libraries "
        "(gigabytes). Offer a CPU build: add the PyTorch CPU index to your pip config "
        "(extra-index-url = https://download.pytorch.org/whl/cpu) or a find-links folder with a "
        "CPU torch wheel for Python 3.11, or choose a Python your pip config has a CPU wheel for, "
        "or make this a CUDA spec (compute=cuda12)"
    )


# A CPU spec whose indexes offer no CPU torch (a default bake, Python 3.10, where pip's config
# has a CPU wheel only for 3.11; PyPI has none for Linux) is built with the CUDA build and a
# warning, not refused: refusing stopped a default bake's `nox -s tests` (a CUDA spec with only
# a CPU torch is still refused, above: that torch could not use the GPU).
def test_lock_of_a_cpu_spec_with_only_a_cuda_torch_offered_locks_it_and_says_so(
    tmp_path: Path, cuda_only_torch: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_env(tmp_path / "proj", CPU_SPEC)
    assert main(["lock", str(spec)]) == 0
    err = capsys.readouterr().err
    expected = _cpu_fallback(spec, cuda_only_torch, "your indexes offer no other build of it")
    assert err == f"recenv lock: warning: {expected}\n"
    lock = json.loads((spec.parent / "environment.lock.json").read_text())
    assert lock["packages"]["torch"] == "2.13.0"
    assert lock["packages"]["nvidia-cublas-cu12"] == "12.9.1.4"


def test_build_of_a_cpu_spec_with_only_a_cuda_torch_offered_builds_it_and_says_so(
    tmp_path: Path, cuda_only_torch: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_env(tmp_path / "proj", CPU_SPEC)
    assert main(["build", "-q", str(spec)]) == 0
    out, err = capsys.readouterr()
    expected = _cpu_fallback(spec, cuda_only_torch, "your indexes offer no other build of it")
    assert err.splitlines()[0] == f"recenv build: warning: {expected}"
    assert err.count("warning") == 1  # not again for the installed set
    freeze = (Path(out.strip()) / ".recenv" / "freeze.txt").read_text()
    assert "torch==2.13.0\n" in freeze and "nvidia-cublas-cu12==12.9.1.4\n" in freeze
    # a second build is a cache hit of the same env
    assert main(["build", "-q", str(spec)]) == 0
    again = capsys.readouterr()
    assert again.out == out and "warning" not in again.err


def test_a_cpu_spec_names_every_cuda_build_it_passed_over_and_uses_the_first(
    tmp_path: Path, cuda_only_torch: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_wheel(cuda_only_torch, "torch", "2.13.1", requires=("nvidia-cublas-cu12",))
    spec = write_env(tmp_path / "proj", CPU_SPEC)
    assert main(["lock", str(spec)]) == 0
    err = capsys.readouterr().err
    assert err.startswith(
        f"recenv lock: warning: {spec}:8: 'pytorch=2.13=cpu*' resolved to torch 2.13.1 "
        "(a CUDA 12 build, from "
    )
    assert "; the other builds offered: torch 2.13.0 (a CUDA 12 build, from " in err
    lock = json.loads((spec.parent / "environment.lock.json").read_text())
    assert lock["packages"]["torch"] == "2.13.1"


def test_the_fallback_is_a_python_warning_under_pytest(
    tmp_path: Path, cuda_only_torch: Path, cache_dir: Path
) -> None:
    from pytest_recenv import BuildFallbackWarning
    from pytest_recenv.env.builders import write_uv_lock

    spec = write_env(tmp_path / "proj", CPU_SPEC)
    with pytest.warns(BuildFallbackWarning, match=r"proj/environment.yml:8: 'pytorch=2.13=cpu\*'"):
        write_uv_lock(spec)


def test_a_cpu_build_the_find_links_offer_is_locked_and_built_instead_of_pypis_cuda_torch(
    tmp_path: Path, cuda_only_torch: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # PyPI has a newer patch release (CUDA) than the CPU wheel in the user's find-links folder:
    # the resolver picks 2.13.1 first; excluding it leaves 2.13.0+cpu (above the plain 2.13.0)
    make_wheel(cuda_only_torch, "torch", "2.13.1", requires=("nvidia-cublas-cu12==12.9.1.4",))
    make_wheel(cuda_only_torch, "torch", "2.13.0+cpu")
    spec = write_env(tmp_path / "proj", CPU_SPEC)
    assert main(["lock", str(spec)]) == 0, capsys.readouterr().err
    lock = json.loads((spec.parent / "environment.lock.json").read_text())
    assert lock["packages"]["torch"] == "2.13.0+cpu"
    assert not [n for n in lock["packages"] if n.startswith("nvidia-")]
    (spec.parent / "environment.lock.json").unlink()  # build from the spec, not the lock
    capsys.readouterr()
    assert main(["build", "-q", str(spec)]) == 0, capsys.readouterr().err
    prefix = Path(capsys.readouterr().out.strip())
    freeze = (prefix / ".recenv" / "freeze.txt").read_text()
    assert "torch==2.13.0+cpu\n" in freeze
    assert "nvidia" not in freeze


def test_a_spec_that_asks_for_neither_still_locks_pypis_plain_torch(
    tmp_path: Path, cuda_only_torch: Path, cache_dir: Path
) -> None:
    spec = write_env(tmp_path / "proj", "  - pytorch=2.13\n")
    assert main(["lock", str(spec)]) == 0
    lock = json.loads((spec.parent / "environment.lock.json").read_text())
    assert lock["packages"]["torch"] == "2.13.0"
    assert lock["packages"]["nvidia-cublas-cu12"] == "12.9.1.4"
