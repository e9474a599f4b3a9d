"""Tasks of recsys-template + pytest-recenv. `python3 noxfile.py -l` lists them.

Run as `nox -s NAME` where nox is installed, or as `python3 noxfile.py -s NAME` on a machine
with nothing but Python: the script then installs nox and uv once into .nox/_bootstrap (with
your pip configuration) and re-runs itself there.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
BOOTSTRAP_REQUIREMENTS = ("nox>=2025.2.9", "uv>=0.5")


def _bootstrap_nox() -> None:
    """Install nox + uv into .nox/_bootstrap once, then exec this file with that Python."""
    import subprocess
    import venv

    if os.environ.get("RECSYS_NOX_BOOTSTRAPPED"):
        sys.exit(
            "noxfile.py: expected nox importable in .nox/_bootstrap, found it missing after "
            "installing it. Remove .nox/_bootstrap and run again, or `pip install nox`."
        )
    env_dir = ROOT / ".nox" / "_bootstrap"
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    stamp = env_dir / ".complete"
    if not stamp.exists():  # absent, or an install that was interrupted: start clean
        print("noxfile.py: installing nox and uv into .nox/_bootstrap (once)", file=sys.stderr)
        venv.create(env_dir, with_pip=True, clear=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", *BOOTSTRAP_REQUIREMENTS]
        subprocess.run(pip, check=True)
        stamp.write_text("ok\n")
    os.environ["RECSYS_NOX_BOOTSTRAPPED"] = "1"
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


if __name__ == "__main__":
    try:
        import nox
    except ModuleNotFoundError:
        _bootstrap_nox()

import nox  # noqa: E402

nox.needs_version = ">=2025.2.9"
# Sessions that install torch use pip (virtualenv backend): pip reads the user's pip config
# (find-links, mirrors, constraints), which is what picks the right torch build; uv does not.
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"

PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
OUT = ROOT / "out"


@nox.session(venv_backend="virtualenv")
def tests(session: nox.Session) -> None:
    """Run the whole test suite: plugin, environments, template bakes, baked projects' own tests."""
    session.install("-e", ".[test]")
    # Only exit 0 passes: pytest's 5 ("no tests collected") fails the session, never reads green.
    session.run("python", "-m", "pytest", *session.posargs)


# The ruff the test extra pins (pyproject.toml): an unpinned one turns lint red on its release day.
RUFF = "ruff==0.17.6"
LINTED = ("pytest_recenv", "tests", "benchmarks", "noxfile.py", "local_extensions.py")


@nox.session
def lint(session: nox.Session) -> None:
    """Run ruff check and format over the plugin, tests, benchmarks and the template's filters."""
    # Explicit paths: ruff would parse the template's Jinja pyproject.toml while discovering
    # settings; the generated project and the rendered hooks are linted by tests/template.
    session.install(RUFF)
    session.run("ruff", "check", *LINTED, *session.posargs)
    session.run("ruff", "format", "--check", *LINTED)


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """Bake a project with the defaults, build its environment, run its demo and its lint."""
    answers = demo_answers(session.posargs, PYTHON)
    if isinstance(answers, str):
        session.error(answers)
    session.install(".", "cookiecutter", "nox")
    project = bake_fresh(OUT, answers, run=lambda *cmd: session.run(*cmd))
    # The baked project's own tasks, as its README tells a user to run them: `env` checks and
    # builds environment.yml; `demo` runs data -> train -> index -> evaluate -> export -> rank,
    # then starts the server and sends one request per route; `lint` is its own ruff + recenv
    # check (a fresh project must pass its own lint). Its test suite (`tests`, 10+ minutes on
    # two cores) is the second Quickstart command's: the template's suite runs it in a bake.
    with session.chdir(project):
        session.run("nox", "-s", "env", "demo", "lint")
    # recenv and nox live in this session's virtualenv, on nobody's PATH: print a path that works.
    recenv, nox_bin = Path(session.bin) / "recenv", Path(session.bin) / "nox"
    session.log(f"Baked project: {project}")
    session.log(f"Its environment: cd {project} && {recenv} run -- python")
    session.log(f"Its tests (10+ minutes): cd {project} && {nox_bin} -s tests")


def supported_pythons(compute: str) -> tuple[str, ...] | None:
    """The Python versions the pre-gen hook accepts with `compute` (its SUPPORTED table, read
    from the hook so the two cannot drift apart); None for a compute the hook will refuse."""
    import ast
    import re

    hook = (ROOT / "hooks" / "pre_gen_project.py").read_text(encoding="utf-8")
    table = re.search(r"^SUPPORTED = (\{.*?^\})", hook, re.MULTILINE | re.DOTALL)
    if table is None:
        raise RuntimeError("expected a SUPPORTED = {...} table in hooks/pre_gen_project.py")
    return ast.literal_eval(table.group(1)).get(compute)


def demo_answers(posargs: Sequence[str], running: str) -> list[str] | str:
    """The demo's cookiecutter answers, or why the demo cannot bake with them.

    Without a `python_version=` answer the baked environment uses the Python running nox (3.11
    on the reference machine, where pip's find-links hold a CPU torch wheel for it). A Python
    the template does not support (3.13) would only fail in the pre-gen hook, after the
    installs, as if the user had passed it: say so first, with what to run instead.
    """
    answers = [arg for arg in posargs if "=" in arg]
    if any(arg.startswith("python_version=") for arg in answers):
        return answers
    compute = next((a.split("=", 1)[1] for a in answers if a.startswith("compute=")), "cpu")
    offered = supported_pythons(compute)
    if offered is not None and running not in offered:
        return (
            f"demo bakes python_version from the Python running nox, {running}, and the template "
            f"supports {', '.join(offered)} for compute={compute}. Run `python{offered[-1]} "
            f"noxfile.py -s demo` (remove .nox/_bootstrap first if another Python made it), or "
            f"pass `-- python_version=<one of them>`: the environment then uses the torch wheel "
            "your pip configuration offers for that Python (docs/environments.md)"
        )
    return [*answers, f"python_version={running}"]


def bake_fresh(out: Path, answers: list[str], run: Callable[..., object]) -> Path:
    """Bake the template into `out/<slug>`, replacing an earlier demo bake there wholesale.

    cookiecutter's --overwrite-if-exists keeps files the new bake does not write (a stale lock
    file then changes which environment gets built), so the bake goes to a fresh staging folder
    and is renamed into place. Only a folder an earlier bake wrote (it holds the replay file
    `.cookiecutter.json`) is replaced; anything else under that name is left alone and refused.
    """
    import shutil
    import tempfile

    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bake-", dir=out))
    try:
        run("cookiecutter", str(ROOT), "--no-input", "-o", str(staging), *answers)
        (baked,) = [p for p in staging.iterdir() if p.is_dir()]
        target = out / baked.name
        if target.exists():
            if not (target / ".cookiecutter.json").is_file():
                sys.exit(
                    f"noxfile.py: expected {target} to be an earlier demo bake (with a "
                    ".cookiecutter.json), found a folder without one; it is not ours to replace. "
                    "Move it away, or pass project_slug=<another name>."
                )
            shutil.rmtree(target)
        baked.rename(target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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


@nox.session(venv_backend="virtualenv", default=False)
def gpu_tests(session: nox.Session) -> None:
    """Hardware tests only, in require mode: fails unless they really ran on a GPU.

    `nox -s gpu_tests --no-venv` runs them in the current Python instead, installing nothing:
    for a GPU image that already holds CUDA builds of torch (and faiss) plus this package with
    its test extra, e.g. one with no package index access.
    """
    if problem := gpu_lane_conflict(session.posargs, os.environ):
        session.error(problem)
    if session.venv_backend != "none":
        session.install("-e", ".[test]")
        # .[test] brings faiss-cpu for the CPU lane; beside faiss-gpu it shadows the GPU build
        # (the faiss_gpu marker refuses that pair). Remove it first: both own the same files.
        session.run("python", "-m", "pip", "uninstall", "--yes", "faiss-cpu")
        # tests/plugin/test_on_gpu.py drives torch and faiss on the GPU: CUDA builds of both
        # are needed (PyPI's Linux torch wheel is a CUDA build). Override for other CUDAs.
        session.install(*os.environ.get("RECENV_GPU_STACK", "torch faiss-gpu-cu12 numpy").split())
    session.run(
        "python", "-m", "pytest", "--recenv-gpu=require", "--recenv-only-hardware",
        *session.posargs,
    )  # fmt: skip


@nox.session(name="pre-commit", default=False)
def pre_commit(session: nox.Session) -> None:
    """Validate .pre-commit-hooks.yaml; run this checkout's recenv hooks on a baked project."""
    import tempfile

    session.install("pre-commit", "cookiecutter", ".")
    session.run("pre-commit", "validate-manifest", ".pre-commit-hooks.yaml")
    # The hooks are for projects, not for this template repo (its environment.yml is Jinja):
    # bake one, make it a git repo, and try this checkout's hooks on all of its files.
    with tempfile.TemporaryDirectory() as tmp:
        session.run("cookiecutter", str(ROOT), "--no-input", "-o", tmp, silent=True)
        project = Path(tmp) / "shop-recs"
        with session.chdir(project):
            session.run("git", "init", "-q", external=True)
            session.run("git", "add", "-A", external=True)
            session.run("pre-commit", "try-repo", str(ROOT), "--all-files", *session.posargs)


BENCHMARKS = (
    "benchmarks/bench_bake.py",
    "benchmarks/bench_plugin_overhead.py",
    "benchmarks/bench_cli_startup.py",
    "benchmarks/bench_env_build.py",
)


@nox.session(venv_backend="virtualenv", default=False)
def bench(session: nox.Session) -> None:
    """Run the benchmarks (ratios measured side by side in one run); pass script names to pick."""
    session.install("-e", ".[test]")
    chosen = [b for b in BENCHMARKS if not session.posargs or Path(b).stem in session.posargs]
    for script in chosen:
        session.run("python", script)


if __name__ == "__main__":
    if not {"-f", "--noxfile"} & set(sys.argv[1:]):
        sys.argv[1:1] = ["-f", str(Path(__file__).resolve())]
    nox.main()
