"""Tasks for this project. `nox -l` lists them; `nox` runs lint and tests.

Every session runs its commands inside the environment built from environment.yml by
`recenv run`, which builds it on first use (micromamba/mamba/conda, or uv where no conda is
installed) and reuses it while environment.yml is unchanged. So nox itself creates no
virtualenvs here: the environment is code, and there is exactly one of it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]

ENV_FILE = "environment.yml"
PACKAGE = "{{ cookiecutter.package_name }}"
RECENV_REQUIREMENT = {{ cookiecutter|recenv_requirement|py_str }}
# The ruff of .pre-commit-config.yaml's ruff-pre-commit rev: formatting changes between releases.
RUFF = "ruff==0.17.6"
# Every file the ruff pre-commit hooks see (Python and notebooks), so both lanes agree.
PYTHON_PATHS = ("src", "tests", "benchmarks", "notebooks", "noxfile.py")


def _stop_like_ctrl_c(signum: int, frame: object) -> None:
    """SIGTERM to nox would end nox alone and leave its command (a server) running: take it
    as Ctrl-C instead, so nox stops the command (a wait, then SIGTERM, then SIGKILL)."""
    raise KeyboardInterrupt


def recenv(session: nox.Session, *args: str, **run: float) -> None:
    """Run the recenv CLI, with a clear error when pytest-recenv is not installed."""
    if shutil.which("recenv") is None:
        session.error(
            "expected the `recenv` command (pytest-recenv) on PATH, found none. "
            f"Install it next to nox: pip install '{RECENV_REQUIREMENT}'"
        )
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)  # here, not at import: only under nox
    session.run("recenv", *args, external=True, **run)


def in_env(session: nox.Session, *args: str, **run: float) -> None:
    """Run a command inside the project's environment (built or reused first).

    `recenv run` passes signals on to the command and ends the way it ended.
    """
    recenv(session, "run", "--file", ENV_FILE, "--", *args, **run)


@nox.session
def env(session: nox.Session) -> None:
    """Check environment.yml, then build the environment (or reuse the cached one)."""
    recenv(session, "check", ENV_FILE)
    recenv(session, "build", ENV_FILE)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite; hardware tests run or skip with a reason (--recenv-gpu=auto)."""
    in_env(session, "python", "-m", "pytest", *session.posargs)


def gpu_lane_conflict(args: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """Why these pytest arguments (or RECENV_GPU, PYTEST_ADDOPTS) would run the GPU lane
    outside require mode, where a CPU host passes with zero hardware tests; None if they don't."""
    found = []
    if environ.get("RECENV_GPU", "").strip().lower() not in ("", "require"):
        found.append(f"RECENV_GPU={environ['RECENV_GPU']}")
    tokens = [*shlex.split(environ.get("PYTEST_ADDOPTS", "")), *args]
    for i, token in enumerate(tokens):
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        # `--name=value`, `--name value`, `-pvalue` and `-p value` spell the same option.
        if token.startswith("--"):
            name, equals, value = token.partition("=")
        else:
            name, equals, value = token[:2], "", token[2:]
        if not equals and not value:
            value = following
        key, _, setting = value.partition("=")
        if name == "--recenv-gpu" and value != "require":
            found.append(f"--recenv-gpu={value}")
        elif name == "-p" and value.startswith("no:") and "recenv" in value:
            found.append(f"-p {value}")  # the plugin off: no mode at all
        elif name in ("-o", "--override-ini") and key == "recenv_gpu" and setting != "require":
            found.append(f"-o {value}")
    if not found:
        return None
    return (
        "nox -s gpu_tests always runs in require mode (a hardware test that skips is an "
        f"error); refusing {', '.join(found)}. To run the suite without a GPU, use "
        "`nox -s tests` (add `-- --recenv-gpu=skip` to leave the hardware tests out)"
    )


@nox.session(default=False)
def gpu_tests(session: nox.Session) -> None:
    """Run only the hardware tests in require mode: fails unless they really ran on a GPU."""
    if problem := gpu_lane_conflict(session.posargs, os.environ):
        session.error(problem)
    in_env(
        session,
        "python", "-m", "pytest", "--recenv-gpu=require", "--recenv-only-hardware",
        *session.posargs,
    )  # fmt: skip


@nox.session(venv_backend="uv|virtualenv")
def lint(session: nox.Session) -> None:
    """Lint and format-check the code with ruff, and environment.yml with recenv check."""
    session.install(RUFF)
    session.run("ruff", "check", *PYTHON_PATHS, *session.posargs)
    session.run("ruff", "format", "--check", *PYTHON_PATHS)
    recenv(session, "check", ENV_FILE)


@nox.session(default=False)
def lock(session: nox.Session) -> None:
    """Write or refresh the lock file for environment.yml."""
    recenv(session, "lock", ENV_FILE)


@nox.session(default=False)
def demo(session: nox.Session) -> None:
{%- if cookiecutter.include_serving %}
    """Pipeline on the synthetic sample, metrics table, then the server answering every route."""
    in_env(session, "python", "-m", PACKAGE, "demo", *session.posargs)
    in_env(session, "python", "tests/servers.py", "--artifacts", "artifacts")
{%- else %}
    """Run the whole pipeline on the embedded synthetic sample and print the metrics."""
    in_env(session, "python", "-m", PACKAGE, "demo", *session.posargs)
{%- endif %}
{%- if cookiecutter.include_serving %}


@nox.session(default=False)
def serve(session: nox.Session) -> None:
    """Serve artifacts/ over HTTP on 127.0.0.1:8000 (args go to `python -m {{ cookiecutter.package_name }} serve`)."""
    # After Ctrl-C the server has a second to finish on its own before nox sends SIGTERM,
    # then ten to shut down gracefully before SIGKILL.
    in_env(
        session,
        "python",
        "-m",
        PACKAGE,
        "serve",
        *session.posargs,
        interrupt_timeout=1.0,
        terminate_timeout=10.0,
    )
{%- endif %}


@nox.session(default=False)
def stress(session: nox.Session) -> None:
    """Two-process (gloo) training, repeated beside CPU hogs; any rank that fails fails it."""
    args = session.posargs or ["--runs", "30", "--hogs", "2"]
    in_env(session, "python", "benchmarks/stress_ddp.py", *args)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: training, retrieval, ML-100K, router{% if cookiecutter.include_serving %}, load and fuzz on loopback{% endif %}."""
    results = Path("benchmarks/results")
    results.mkdir(parents=True, exist_ok=True)
    for script in ("bench_training", "bench_retrieval", "bench_ml100k"):
        in_env(
            session,
            "python",
            f"benchmarks/{script}.py",
            "--json",
            str(results / f"{script[6:]}.json"),
        )
    in_env(session, "python", "benchmarks/bench_router.py")
{%- if cookiecutter.include_serving %}
    if not Path("artifacts/manifest.json").is_file():
        session.error("expected artifacts/manifest.json; run `nox -s demo` first to build them")
    in_env(session, "python", "benchmarks/load.py", "--artifacts", "artifacts", *session.posargs)
    in_env(session, "python", "benchmarks/fuzz.py", "--artifacts", "artifacts")
{%- endif %}
