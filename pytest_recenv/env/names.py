"""The curated conda -> PyPI name table, written by us (not scraped), versioned into the cache key.

Three kinds of entry:

* ``CONDA_TO_PYPI``: conda packages whose PyPI distribution has another name.  A conda name that is
  not in any table is assumed to be the same project on PyPI (true for most conda-forge Python
  packages: numpy, rich, fastapi, ...).
* ``DROPPED``: conda packages that are not Python distributions (the interpreter, compilers, CUDA
  runtime pieces, BLAS); the uv backend leaves them out and says why.
* ``PYPI_TRAPS``: PyPI names that exist but are the wrong project; listing them under ``pip:`` is
  an error with the fix.
"""

from __future__ import annotations

import re

# Bump whenever a table below changes: it is part of every cache key, so a corrected mapping
# never serves an environment built with the old one.
TABLE_VERSION = "2026.11.1"

CONDA_TO_PYPI: dict[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "pytorch-cuda": "torch",
    "faiss": "faiss-cpu",
    "libfaiss": "faiss-cpu",
    "py-opencv": "opencv-python-headless",
    "opencv": "opencv-python-headless",
    "pytables": "tables",
    "matplotlib-base": "matplotlib",
    "pyqt": "PyQt5",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "tensorflow-base": "tensorflow",
    "msgpack-python": "msgpack",
    "python-graphviz": "graphviz",
    "pillow-simd": "pillow",
    "onnxruntime-cpp": "onnxruntime",
    "cupy-core": "cupy",
    "arrow-cpp": "pyarrow",
}

# Not Python distributions: nothing to install from PyPI.  The value is the reason shown.
DROPPED: dict[str, str] = {
    "python": "the interpreter is chosen by the spec's python pin",
    "pip": "uv installs the pip section itself; list 'pip' under 'pip:' to get pip in the env",
    "cudatoolkit": "CUDA runtime pieces come inside the PyPI wheels",
    "cuda-version": "CUDA runtime pieces come inside the PyPI wheels",
    "cuda-toolkit": "CUDA runtime pieces come inside the PyPI wheels",
    "cuda-nvcc": "CUDA runtime pieces come inside the PyPI wheels",
    "cuda-runtime": "CUDA runtime pieces come inside the PyPI wheels",
    "cudnn": "CUDA runtime pieces come inside the PyPI wheels",
    "nccl": "CUDA runtime pieces come inside the PyPI wheels",
    "cpuonly": "a conda build selector; the CPU wheel is chosen by version and find-links",
    "pytorch-mutex": "a conda build selector",
    "mkl": "BLAS ships inside the PyPI wheels",
    "mkl-service": "BLAS ships inside the PyPI wheels",
    "blas": "BLAS ships inside the PyPI wheels",
    "libblas": "BLAS ships inside the PyPI wheels",
    "openblas": "BLAS ships inside the PyPI wheels",
    "libopenblas": "BLAS ships inside the PyPI wheels",
    "compilers": "compilers are not Python packages",
    "c-compiler": "compilers are not Python packages",
    "cxx-compiler": "compilers are not Python packages",
    "gcc": "compilers are not Python packages",
    "gxx": "compilers are not Python packages",
    "gxx_linux-64": "compilers are not Python packages",
    "make": "build tools are not Python packages",
    "cmake": "build tools are not Python packages",
    "libgcc-ng": "system libraries are not Python packages",
    "libstdcxx-ng": "system libraries are not Python packages",
    "openssl": "system libraries are not Python packages",
    "ca-certificates": "system libraries are not Python packages",
    "libfaiss-avx2": "faiss-cpu wheels carry their own kernels",
    "git": "system tools are not Python packages",
}

# Packages that mean "CUDA" on the conda side; a CPU environment must not ask for them.
CUDA_PACKAGES = frozenset(
    {
        "cudatoolkit",
        "cuda-version",
        "cuda-toolkit",
        "cuda-nvcc",
        "cuda-runtime",
        "cudnn",
        "nccl",
        "pytorch-cuda",
        "pytorch-gpu",
        "faiss-gpu",
    }
)

PYPI_TRAPS: dict[str, str] = {
    "faiss": "'faiss' on PyPI is an unofficial 2019 release; use 'faiss-cpu' or 'faiss-gpu'",
    "pytorch": "'pytorch' on PyPI is a placeholder that fails to install; use 'torch'",
    "mamba": "'mamba' on PyPI is an unrelated project, not the conda solver; install mamba "
    "with conda or use micromamba",
    "pixi": "'pixi' on PyPI is an unrelated project, not the package manager; install pixi "
    "from pixi.sh",
    "sklearn": "'sklearn' on PyPI is a deprecated dummy package; use 'scikit-learn'",
    "cv2": "'cv2' is an import name, not a PyPI distribution; use 'opencv-python-headless'",
}

_NORMALISE = re.compile(r"[-_.]+")


def canonical(name: str) -> str:
    """PEP 503 normalised form, the one PyPI and ``packaging`` compare by."""
    return _NORMALISE.sub("-", name).lower()


def pypi_name(conda_name: str) -> str | None:
    """The PyPI distribution for a conda package, or None when it is not a Python package."""
    if conda_name in DROPPED:
        return None
    return CONDA_TO_PYPI.get(conda_name) or conda_name


def identity(name: str, section: str) -> str:
    """One name per project across both sections, so ``pytorch`` (conda) clashes with ``torch``."""
    if section == "conda":
        mapped = pypi_name(name)
        return canonical(mapped if mapped else name)
    name = canonical(name)
    if name == "faiss":
        return "faiss-cpu"
    if name == "pytorch":
        return "torch"
    # builds of one project per CUDA version, installing the same module: faiss-gpu-cu12 is
    # faiss-gpu, cupy-cuda12x (or cupy-cuda117) is cupy
    if _FAISS_GPU_CU.match(name):
        return "faiss-gpu"
    if _CUPY_CUDA.match(name):
        return "cupy"
    return name


_FAISS_GPU_CU = re.compile(r"^faiss-gpu-cu\d+$")
_CUPY_CUDA = re.compile(r"^cupy-cuda\d+x?$")
