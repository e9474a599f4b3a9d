"""CUDA or CPU builds: what a spec asks for, and whether a uv resolution delivers it.

The uv backend drops conda build strings (``pytorch=2.13=cuda*`` and ``pytorch=2.13=cpu*`` both
become ``torch==2.13.*``), so the resolver may pick either kind: a local CPU wheel
(``torch 2.13.0+cpu`` from find-links) satisfies a CUDA spec, since ``+cpu`` even sorts above
the plain ``2.13.0`` of PyPI; and where no CPU wheel is offered for this Python, PyPI's plain
``2.13.0`` (on Linux the CUDA build, with gigabytes of ``nvidia-*`` wheels) satisfies a CPU one.
After every resolution of a spec that asks for either (``wanted_builds``) we therefore look at
what was picked: a torch of the other kind is excluded and the spec resolved again (so a build
of the wanted kind that the user's indexes offer wins).

If none is offered, the two directions differ:
- a CUDA spec is refused (the line, what was found, where from, and the fix): a CPU torch on a GPU
  machine is the PyTorch that imports but cannot use the GPU; so is a faiss CPU build standing in
  for the requested faiss-gpu;
- a CPU spec is built with the CUDA torch, with a ``BuildFallbackWarning`` saying so and how to
  get a CPU build: a CUDA build runs on the CPU too, so the project works, at the price of the
  NVIDIA wheels (gigabytes). Refusing stopped a default bake (Python 3.10) on any machine whose
  pip config offers a CPU wheel only for another Python — PyPI itself offers none for Linux.
"""

from __future__ import annotations

import re
import warnings
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


@dataclass(frozen=True)
class Wanted:
    """The builds a spec asks for: ``kind`` 'cuda' (with the major it names, if any) or 'cpu',
    and the line that asks."""

    kind: str
    major: int | None
    line: CondaDep | PipDep

    def words(self) -> str:
        if self.kind == "cpu":
            return "CPU builds"
        return f"CUDA {self.major}" if self.major is not None else "CUDA"

    def accepts(self, res: Resolution) -> bool:
        kind, major = torch_variant(res.pins)
        return kind == self.kind and (self.major is None or major == self.major)


def wanted_builds(spec: Spec) -> Wanted | None:
    """CUDA where any line asks for it (``cuda_requests``), else CPU where a line marks a CPU
    environment (``cpu_marks``), else None: a spec that says neither is not checked.  (A spec
    with both is refused by ``recenv check``; resolution treats it as a CUDA one.)"""
    if requests := cuda_requests(spec):
        named = spec_cuda_major(spec)
        return Wanted("cuda", named[0], named[1]) if named else Wanted("cuda", None, requests[0])
    if marks := cpu_marks(spec):
        return Wanted("cpu", None, marks[0])
    return None


def _fix(spec: Spec, wanted: Wanted, python: str | None) -> str:
    if wanted.kind == "cuda":
        return (
            "Offer a CUDA build: add the PyTorch CUDA index to your pip config "
            f"(extra-index-url = {_cuda_index(spec)}) or remove the CPU wheel from your "
            "find-links, or build this on a CPU stage (drop the CUDA lines: cpuonly / "
            "compute=cpu)"
        )
    for_python = f" for Python {python}" if python else ""
    return (
        "Offer a CPU build: add the PyTorch CPU index to your pip config (extra-index-url = "
        f"https://download.pytorch.org/whl/cpu) or a find-links folder with a CPU torch wheel"
        f"{for_python}, or choose a Python your pip config has a CPU wheel for, or make this a "
        "CUDA spec (compute=cuda12)"
    )


def ensure_builds(
    spec: Spec,
    resolve: Callable[[Sequence[str]], Resolution],
    display: str,
    retry: bool = True,
    python: str | None = None,
) -> tuple[Resolution, list[str]]:
    """Resolve a spec (``resolve(extra_requirement_lines)``) and make sure torch (and, for CUDA,
    faiss) resolved to the builds it asks for (``wanted_builds``): CUDA builds of the CUDA major
    it names, or CPU builds.

    A torch of the other kind is excluded and the spec resolved again (at most
    ``_MAX_RETRIES`` times), so a build of the right kind that the user's indexes or find-links
    offer wins.  Returns the resolution and the extra requirement lines it needed (those
    exclusions), which an install must pass too.  Where no build of the wanted kind is offered,
    a CUDA spec raises ``RecenvError`` naming the line, the build found, where it came from, and
    the fix; a CPU spec gets the first resolution (the CUDA build) and a ``BuildFallbackWarning``
    saying the same.  A spec that asks for neither is resolved once
    and never checked.  ``retry=False`` checks an installed set as it is (after an install);
    ``python`` (``3.10``) goes into the fix.
    """
    first = resolve([])
    wanted = wanted_builds(spec)
    if wanted is None or ("torch" not in first.pins and "faiss-cpu" not in first.pins):
        return first, []
    asks_for = (
        f"this spec asks for {wanted.words()} ('{wanted.line.raw.strip()}', "
        f"line {wanted.line.line})"
    )

    res: Resolution | None = first
    extra: list[str] = []
    passed_over: list[Resolution] = []
    while "torch" in first.pins and res is not None and not wanted.accepts(res):
        passed_over.append(res)
        if not retry or len(passed_over) > _MAX_RETRIES:
            res = None
            break
        # Exclude this build and resolve again, so a build of the wanted kind wins.  By PEP 440,
        # '!=2.13.0' also excludes '2.13.0+cpu' and '2.13.0+cu126'; but a local build of the
        # same version sorts above the plain one and would have been picked first had it been
        # offered (for this Python and platform), so nothing the user offers is lost.
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
        what = (
            f"{display}:{line}: '{raw}' resolved to "
            f"{_found('torch', found, _variant_words(found))} but {asks_for}; {rest}."
        )
        if wanted.kind == "cuda":
            raise RecenvError(f"{what} {_fix(spec, wanted, python)}")
        # A CPU spec: the CUDA build runs on the CPU too (module docstring); said once, where
        # it is chosen (an installed set checked after the install was warned about then).
        if retry:
            from pytest_recenv.warning_types import BuildFallbackWarning

            warnings.warn(
                BuildFallbackWarning(
                    f"{what} Using it: a CUDA build runs on the CPU too, but brings the NVIDIA "
                    f"libraries (gigabytes). {_fix(spec, wanted, python)}"
                ),
                stacklevel=2,
            )
        return first, []
    faiss = _faiss_gpu_line(spec)
    if wanted.kind == "cuda" and faiss and "faiss-cpu" in res.pins:
        line, raw = faiss
        raise RecenvError(
            f"{display}:{line}: '{raw}' resolved to {_found('faiss-cpu', res, 'a CPU build')} but "
            f"{asks_for}. Ask for the CUDA build by its PyPI name ('faiss-gpu' or "
            "'faiss-gpu-cu12'), drop whatever pulls in faiss-cpu, or build this on a CPU stage"
        )
    return res, extra
