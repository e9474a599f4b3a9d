"""``recenv doctor``: what this machine offers for building and testing, as one dict.

The text report and ``recenv doctor --json`` are two renderings of :func:`doctor_report`; the JSON
form is what the generated project's run snapshot stores as ``hardware.json``. Its schema
(``"schema": 1``) is documented in docs/environments.md; keys are only ever added.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_recenv.env import pipconfig
from pytest_recenv.env.backends import BACKENDS, backend_chain, make_backend
from pytest_recenv.env.builders import cache_root
from pytest_recenv.env.gc import classify
from pytest_recenv.env.interpreters import discover
from pytest_recenv.errors import RecenvError
from pytest_recenv.hardware.nvml import probe_tier0
from pytest_recenv.hardware.probe_child import probe_tier1
from pytest_recenv.hardware.report import HardwareReport
from pytest_recenv.version import __version__

SCHEMA = 1


def doctor_report(backends: Sequence[str] | None = None, libraries: bool = False) -> dict[str, Any]:
    """Tools, backends, interpreters, pip config, cache and hardware.

    ``libraries``: also probe torch and faiss (tier 1), in a child process of this interpreter,
    as the pytest plugin does for a test that needs them: seconds, not milliseconds."""
    chain = []
    try:
        names, unknown = backend_chain(backends), ""
    except RecenvError as exc:  # a bad $RECENV_BACKENDS: a finding to report, not a crash
        names = [b.strip() for b in os.environ.get("RECENV_BACKENDS", "").split(",") if b.strip()]
        unknown = str(exc)
    for name in names:
        if name not in BACKENDS:
            detail = unknown or f"unknown backend; expected some of {', '.join(BACKENDS)}"
            chain.append({"name": name, "usable": False, "version": None, "detail": detail})
            continue
        backend = make_backend(name)
        usable, detail = backend.available()
        chain.append(
            {
                "name": name,
                "usable": usable,
                "version": backend.version() if usable else None,
                "detail": detail,
            }
        )
    root = cache_root()
    cfg = pipconfig.load()
    return {
        "schema": SCHEMA,
        "recenv": __version__,
        "python": {"version": sys.version.split()[0], "executable": sys.executable},
        "platform": {
            "system": platform.system(),
            "machine": platform.machine(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
        },
        "backends": chain,
        "interpreters": [
            {
                "path": str(i.path),
                "version": i.version_str,
                "implementation": i.implementation,
                "source": i.source,
            }
            for i in discover(root / "interpreters.json") or []
        ],
        "pip_config": {"uv_args": cfg.uv_args(), "sources": list(cfg.sources)},
        "cache": {
            "path": str(root),
            "environments": _environments(root),
        },
        "hardware": _hardware(libraries),
    }


def _environments(root: Path) -> int:
    """What ``recenv gc`` lists as environments: not another tool's folders, not leftovers."""
    if not root.is_dir():
        return 0
    return sum(classify(root, p).kind == "env" for p in root.iterdir() if p.is_dir())


def _hardware(libraries: bool) -> dict[str, Any]:
    try:
        report = probe_tier0()
        if libraries:
            report = probe_tier1(report, {"torch", "faiss"})
    except Exception as exc:  # doctor reports, it never fails on a probe
        return {"error": f"probe unavailable ({exc.__class__.__name__}: {exc})"}
    data = dataclasses.asdict(report)
    data["summary"] = hardware_summary(report)
    return data


def hardware_summary(report: HardwareReport) -> str:
    """One line: how many CUDA devices, which, or why none."""
    if not report.devices:
        return f"0 CUDA devices ({report.why_no_devices})"
    names = ", ".join(d.name for d in report.devices)
    return f"{len(report.devices)} CUDA device{'s' * (len(report.devices) != 1)}: {names}"
