"""pytest-recenv: hardware-honest test markers and environment-as-code builds.

Two products in two subpackages: :mod:`pytest_recenv.hardware` (the markers, the hardware report,
why a test is skipped) and :mod:`pytest_recenv.env` (environment.yml: checks, locks, builds, the
``recenv`` command line). :mod:`pytest_recenv.plugin` is the ``pytest11`` entry point; errors live
in :mod:`pytest_recenv.errors`, warnings in :mod:`pytest_recenv.warning_types`.

The names below are imported on first use, not here: ``recenv --help`` must not pay for pytest,
and nothing here imports torch or faiss.
"""

from __future__ import annotations

from pytest_recenv.version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "RecenvWarning": "pytest_recenv.warning_types",
    "RecenvPinningWarning": "pytest_recenv.warning_types",
    "InterpreterFallbackWarning": "pytest_recenv.warning_types",
    "BuildFallbackWarning": "pytest_recenv.warning_types",
    "device_params": "pytest_recenv.hardware.fixtures",
    "HardwareReport": "pytest_recenv.hardware.report",
    "Problem": "pytest_recenv.errors",
    "RecenvError": "pytest_recenv.errors",
    "BuildError": "pytest_recenv.errors",
    "SpecError": "pytest_recenv.errors",
    "load_spec": "pytest_recenv.env.spec",
    "parse_spec": "pytest_recenv.env.spec",
    "ensure_env": "pytest_recenv.env.builders",
    "make_plan": "pytest_recenv.env.builders",
    "check_file": "pytest_recenv.env.checks",
    "check_dockerfile": "pytest_recenv.env.dockerfile",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_recenv' has no attribute {name!r}")
    # __import__ rather than importlib: `recenv --help` does not pay for importing importlib
    value = getattr(__import__(module, fromlist=[name]), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
