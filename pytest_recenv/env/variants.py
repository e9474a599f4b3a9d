"""CUDA or CPU builds: what a spec asks for, and whether a uv resolution delivers it.

The uv backend drops conda build strings (``pytorch=2.13=cuda*`` becomes ``torch==2.13.*``), so a
local CPU wheel (``torch 2.13.0+cpu`` from find-links) satisfies a CUDA spec as far as the
resolver knows: ``+cpu`` even sorts above the plain ``2.13.0`` of PyPI.  After every resolution
of a spec that asks for CUDA we therefore look at what was picked: a CPU torch is excluded and
the spec resolved once more (so a CUDA build the user's indexes offer, e.g. the PyTorch CUDA
index, wins); if none is offered, or a faiss CPU build stands in for the requested faiss-gpu,
the lock or build is refused with the line, what was found, where from, and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pytest_recenv.env import names
from pytest_recenv.env.spec import CondaDep, PipDep, Spec
from pytest_recenv.errors import RecenvError

# conda packages whose version is a CUDA version (``cuda-version=12.6`` -> CUDA 12)
_CUDA_VERSIONED = ("cuda-version", "cudatoolkit", "cuda-toolkit", "cuda-runtime", "pytorch-cuda")
_NVIDIA_CU = re.compile(r"^nvidia-[a-z0-9-]+-cu(\d+)$")
_MAX_RETRIES = 3


@dataclass
class Resolution:
    """Pinned distributions (canonical name -> version) and, where uv said, the index or
    find-links location each came from."""

    pins: dict[str, str]
    sources: dict[str, str] = field(default_factory=dict)


# PyPI distributions whose *name* says CUDA or CPU: faiss-gpu, faiss-gpu-cu11/-cu12,
# cupy-cuda12x/-cuda11x/-cuda117/-cuda80, nvidia-cublas-cu12 and the other NVIDIA runtime
# wheels; torch, torchvision and torchaudio say it in a local version (+cu121, +cpu).
_FAISS_GPU = re.compile(r"^faiss-gpu(?:-cu(\d+))?$")
_CUPY_CUDA = re.compile(r"^cupy-cuda(\d+)(x?)$")
_LOCAL_LABELED = ("torch", "torchvision", "torchaudio")
_LOCAL = re.compile(r"\+([A-Za-z0-9.]+)")


def distribution_variant(name: str, version: str = "") -> tuple[str, int | None] | None:
    """``('cuda', major or None)``, ``('cpu', None)``, or None where a PyPI distribution's name
    and version say neither.  ``version`` may be a version or a specifier (``==2.3.1+cu121``)."""
    name = names.canonical(name)
    if match := _FAISS_GPU.match(name):
        return "cuda", int(match.group(1)) if match.group(1) else None
    if name == "faiss-cpu":
        return "cpu", None
    if match := _CUPY_CUDA.match(name):  # 12x, 11x: the major; 117, 102: 3 digits; 80, 92: 1
        digits, wildcard = match.groups()
        return "cuda", int(digits if wildcard else digits[:-1])
    if match := _NVIDIA_CU.match(name):
        return "cuda", int(match.group(1))
    if name in _LOCAL_LABELED and (local := _LOCAL.search(version)):
        label = local.group(1).lower()
        if label.startswith("cpu"):
            return "cpu", None
        if label.startswith("cu") and label[2:].isdigit() and len(label) > 3:
            return "cuda", int(label[2:-1])
    return None


def pip_variant(dep: PipDep) -> tuple[str, int | None] | None:
    """What a ``pip:`` requirement line asks for: CUDA (with its major), CPU, or neither."""
    if dep.name is None or dep.requirement is None:
        return None
    return distribution_variant(dep.name, str(dep.requirement.specifier))


def cuda_requests(spec: Spec) -> list[CondaDep | PipDep]:
    """The lines that ask for CUDA (the same test ``recenv check`` and drift use): CUDA conda
    packages and ``*cuda*`` builds, and pip lines of CUDA builds (``faiss-gpu-cu12``,
    ``cupy-cuda12x``, ``nvidia-*-cu12``, ``torch==2.3.1+cu121``)."""
    conda: list[CondaDep | PipDep] = [
        d for d in spec.conda if d.name in names.CUDA_PACKAGES or (d.build and "cuda" in d.build)
    ]
    return conda + [d for d in spec.pip if (pip_variant(d) or ("",))[0] == "cuda"]


def cpu_marks(spec: Spec) -> list[CondaDep | PipDep]:
    """The lines that make an environment a CPU one: ``cpuonly``, ``pytorch-cpu``,
    ``faiss-cpu`` and ``*cpu*`` builds on the conda side; ``faiss-cpu`` and ``+cpu`` builds
    of torch under ``pip:``."""
    conda: list[CondaDep | PipDep] = [
        d
        for d in spec.conda
        if d.name in ("cpuonly", "pytorch-cpu", "faiss-cpu") or (d.build and "cpu" in d.build)
    ]
    return conda + [d for d in spec.pip if (pip_variant(d) or ("",))[0] == "cpu"]


def spec_cuda_major(spec: Spec) -> tuple[int, CondaDep | PipDep] | None:
    """The CUDA major version a spec names (``cuda-version=12.6`` -> 12), with its line."""
    for dep in spec.conda:
        # '12.6.*', '==12.6', '>=12.4', '~=12.1': the major; '<13' or '!=12' name none
        match = re.match(r"(?:==|>=|~=|=)?\s*(\d+)", dep.version or "")
        if dep.name in _CUDA_VERSIONED and match:
            return int(match.group(1)), dep
    for dep in spec.conda:  # a build string such as 'cuda126*' or 'cuda12*'
        match = re.match(r"cuda(\d\d)", dep.build or "")
        if match:
            return int(match.group(1)), dep
    for pdep in spec.pip:  # faiss-gpu-cu12, cupy-cuda12x, torch==2.3.1+cu121
        variant = pip_variant(pdep)
        if variant and variant[0] == "cuda" and variant[1] is not None:
            return variant[1], pdep
    return None


def renamed_for(name: str, major: int) -> str:
    """How to ask for the CUDA ``major`` build of the same project: ``faiss-gpu-cu12``."""
    name = names.canonical(name)
    if _FAISS_GPU.match(name):
        return f"'faiss-gpu-cu{major}'"
    if _CUPY_CUDA.match(name):
        return f"'cupy-cuda{major}x'"
    if match := _NVIDIA_CU.match(name):
        return f"'{name[: match.start(1)]}{major}'"
    return f"a CUDA {major} build of {name}"


def torch_variant(pins: dict[str, str]) -> tuple[str, int | None]:
    """('cuda', major), ('cpu', None) or (another local label such as 'rocm6.2', None) for the
    resolved torch.  A plain version is a CUDA build only where CUDA libraries were resolved
    with it (PyPI's Linux wheels); elsewhere (macOS, Windows) it is the CPU build."""
    version = pins.get("torch", "")
    local = version.partition("+")[2].lower()
    if local.startswith("cu") and local[2:].isdigit() and len(local) > 3:
        return "cuda", int(local[2:-1])
    if local:
        return ("cpu" if local.startswith("cpu") else local), None
    majors = resolved_cuda_majors(pins)
    if majors:
        return "cuda", max(majors)
    return "cpu", None


def resolved_cuda_majors(pins: dict[str, str]) -> set[int]:
    """CUDA majors of the NVIDIA runtime distributions in a resolution."""
    majors = set()
    for name, version in pins.items():
        match = _NVIDIA_CU.match(name)
        if match:
            majors.add(int(match.group(1)))
        elif name in ("nvidia-cuda-runtime", "cuda-toolkit") and version.split(".")[0].isdigit():
            majors.add(int(version.split(".")[0]))
    return majors


def _torch_line(spec: Spec) -> tuple[int, str]:
    for dep in spec.conda:
        if names.pypi_name(dep.name) == "torch":
            return dep.line, dep.raw.strip()
    for pdep in spec.pip:
        if pdep.name == "torch":
            return pdep.line, pdep.raw.strip()
    return 1, "torch"


def _faiss_gpu_line(spec: Spec) -> tuple[int, str] | None:
    for dep in spec.conda:
        if dep.name == "faiss-gpu" or (
            names.pypi_name(dep.name) == "faiss-cpu" and dep.build and "cuda" in dep.build
        ):
            return dep.line, dep.raw.strip()
    for pdep in spec.pip:
        if pdep.name and pdep.name.startswith("faiss-gpu"):
            return pdep.line, pdep.raw.strip()
    return None


def _cuda_index(spec: Spec) -> str:
    for dep in spec.conda:
        match = re.match(r"=?(\d+)\.(\d+)", dep.version or "")
        if dep.name in _CUDA_VERSIONED and match:
            return f"https://download.pytorch.org/whl/cu{match.group(1)}{match.group(2)}"
    major = spec_cuda_major(spec)
    return f"https://download.pytorch.org/whl/cu{major[0] if major else 12}x"


def _found(name: str, res: Resolution, words: str) -> str:
    """``torch 2.13.0+cpu (a CPU build, from file:///<a find-links folder>)``"""
    where = res.sources.get(name)
    return f"{name} {res.pins[name]} ({words}" + (f", from {where})" if where else ")")


def _variant_words(res: Resolution) -> str:
    kind, major = torch_variant(res.pins)
    if kind == "cuda":
        return f"a CUDA {major} build"
    return "a CPU build" if kind == "cpu" else f"a {kind} build"


def ensure_cuda_builds(
    spec: Spec,
    resolve: Callable[[Sequence[str]], Resolution],
    display: str,
    retry: bool = True,
) -> tuple[Resolution, list[str]]:
    """Resolve a spec (``resolve(extra_requirement_lines)``) and make sure that, where it asks
    for CUDA, torch and faiss resolved to CUDA builds of the CUDA major it names.

    Returns the resolution and the extra requirement lines it needed (exclusions of CPU torch
    builds), which an install must pass too.  Raises ``RecenvError`` naming the CPU build found,
    where it came from, and the fix.  A spec that does not ask for CUDA is resolved once and
    never checked.  ``retry=False`` checks an installed set as it is (after an install).
    """
    first = resolve([])
    requests = cuda_requests(spec)
    if not requests or ("torch" not in first.pins and "faiss-cpu" not in first.pins):
        return first, []
    wanted = spec_cuda_major(spec)
    asks = f"CUDA {wanted[0]}" if wanted else "CUDA"
    because = wanted[1] if wanted else requests[0]
    asks_for = f"this spec asks for {asks} ('{because.raw.strip()}', line {because.line})"

    def acceptable(res: Resolution) -> bool:
        kind, major = torch_variant(res.pins)
        return kind == "cuda" and (wanted is None or major == wanted[0])

    res: Resolution | None = first
    extra: list[str] = []
    passed_over: list[Resolution] = []
    while "torch" in first.pins and res is not None and not acceptable(res):
        passed_over.append(res)
        if not retry or len(passed_over) > _MAX_RETRIES:
            res = None
            break
        # Exclude this build and resolve again, so a CUDA build the user's indexes offer wins.
        # ('!=2.13.0' would also exclude '2.13.0+cu126'; a CUDA index the user lists first is
        # picked before PyPI's plain version, so that case does not arise in practice.)
        extra = [*extra, f"torch!={res.pins['torch']}"]
        try:
            res = resolve(extra)
        except RecenvError:
            res = None  # no other build of torch satisfies the spec
    if res is None:
        line, raw = _torch_line(spec)
        found, *others = passed_over
        rest = (
            "the other builds offered: "
            + ", ".join(_found("torch", r, _variant_words(r)) for r in others)
            if others
            else "your indexes offer no other build of it"
            if retry
            else "it is installed"
        )
        raise RecenvError(
            f"{display}:{line}: '{raw}' resolved to "
            f"{_found('torch', found, _variant_words(found))} but {asks_for}; {rest}. "
            "Offer a CUDA build: add the PyTorch CUDA index to your pip config "
            f"(extra-index-url = {_cuda_index(spec)}) or remove the CPU wheel from your "
            "find-links, or build this on a CPU stage (drop the CUDA lines: cpuonly / "
            "compute=cpu)"
        )
    faiss = _faiss_gpu_line(spec)
    if faiss and "faiss-cpu" in res.pins:
        line, raw = faiss
        raise RecenvError(
            f"{display}:{line}: '{raw}' resolved to {_found('faiss-cpu', res, 'a CPU build')} but "
            f"{asks_for}. Ask for the CUDA build by its PyPI name ('faiss-gpu' or "
            "'faiss-gpu-cu12'), drop whatever pulls in faiss-cpu, or build this on a CPU stage"
        )
    return res, extra
