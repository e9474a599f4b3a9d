"""``recenv dockerfile``: the conda-image rules hadolint does not have.

* every conda/mamba/micromamba install or create is followed by ``clean`` in the same RUN
  (otherwise the package cache stays in the layer, often gigabytes);
* the final stage runs as a non-root user;
* base images are pinned (a tag other than ``latest``, or a digest), ARG defaults included;
* the environment file is copied (and the env created) before the sources, so a code edit does
  not rebuild the environment layer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pytest_recenv.errors import Problem

_CONDA_INSTALL = re.compile(r"\b(conda|mamba|micromamba)\s+(?:env\s+)?(install|create|update)\b")
_CONDA_CLEAN = re.compile(r"\b(conda|mamba|micromamba)\s+clean\b")
_ENV_FILE = re.compile(r"(environment[^\s/]*\.ya?ml|conda-lock\.yml|\.lock\b)")
_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}?")
_NON_ROOT_IMAGES = ("mambaorg/micromamba",)  # images whose default user is not root


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass
class Stage:
    line: int
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages; continuation lines joined, comments dropped."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    pending: list[str] = []
    start = 0
    # the empty line after the last one ends a continuation left open at the end of the file
    for number, raw in enumerate([*text.splitlines(), ""], 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        pending.append(stripped.rstrip("\\").strip())
        if stripped.endswith("\\"):
            continue
        joined = " ".join(p for p in pending if p)
        pending = []
        keyword, _, rest = joined.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            image = words[0] if words else ""
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(start, image, name))
        elif keyword == "ARG" and not stages:
            key, _, value = rest.partition("=")
            args[key.strip()] = value.strip().strip("\"'")
        elif stages:
            stages[-1].instructions.append(Instruction(start, keyword, rest))
    return args, stages


def _expand(value: str, args: dict[str, str]) -> str:
    return _VAR.sub(lambda m: args.get(m.group(1), m.group(0)), value)


def check_dockerfile(path: Path | str, display: str | None = None) -> list[Problem]:
    shown = display or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(shown, 1, f"cannot read the file ({exc.__class__.__name__}: {exc})")]
    args, stages = parse(text)
    if not stages:
        return [Problem(shown, 1, "no FROM instruction: expected a Dockerfile")]
    if bare := [s for s in stages if not s.image]:
        # no rule below means anything for a stage without an image (docker refuses it too)
        return [
            Problem(shown, s.line, "FROM names no image; write 'FROM <image>:<tag>'") for s in bare
        ]
    problems: list[Problem] = []
    names = set()
    for stage in stages:
        problems += [Problem(shown, ln, m) for ln, m in _pinned(stage, args, names)]
        if stage.name:
            names.add(stage.name)
        problems += [Problem(shown, ln, m) for ln, m in _clean_after_install(stage)]
        problems += [Problem(shown, ln, m) for ln, m in _env_before_sources(stage)]
    problems += [Problem(shown, ln, m) for ln, m in _non_root(stages[-1], args, stages)]
    return sorted(problems, key=lambda p: p.line)


def _pinned(stage: Stage, args: dict[str, str], stage_names: set[str]) -> Iterator[tuple[int, str]]:
    image = _expand(stage.image, args)
    if image in stage_names or image == "scratch":
        return
    if "$" in image:
        yield (
            stage.line,
            f"base image '{stage.image}' comes from an ARG without a default; "
            "give the ARG a pinned default so the build is reproducible",
        )
        return
    if "@sha256:" in image:
        return
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if not tag or tag == "latest":
        yield (
            stage.line,
            f"base image '{image}' is not pinned; use a version tag or digest, "
            f"like '{image.partition(':')[0]}:<version>@sha256:<digest>'",
        )


def _clean_after_install(stage: Stage) -> Iterator[tuple[int, str]]:
    for ins in stage.instructions:
        if ins.keyword != "RUN":
            continue
        m = _CONDA_INSTALL.search(ins.args)
        if m and not _CONDA_CLEAN.search(ins.args[m.end() :]):
            tool = m.group(1)
            yield (
                ins.line,
                f"'{tool} {m.group(2)}' without '{tool} clean --all --yes' in the "
                "same RUN leaves the package cache in the layer; append "
                f"'&& {tool} clean --all --yes'",
            )


def _env_before_sources(stage: Stage) -> Iterator[tuple[int, str]]:
    sources_line = None
    reported = False  # one finding per stage: the RUN finding would repeat the COPY one
    for ins in stage.instructions:
        if ins.keyword in ("COPY", "ADD"):
            words = [w for w in ins.args.split() if not w.startswith("--")]
            srcs = words[:-1]
            if any(s in (".", "./") for s in srcs) and sources_line is None:
                sources_line = ins.line
            if any(_ENV_FILE.search(s) for s in srcs) and sources_line is not None:
                if any(s in (".", "./") for s in srcs):
                    continue
                reported = True
                yield (
                    ins.line,
                    f"environment file copied after the sources (line "
                    f"{sources_line}); COPY environment.yml and create the env first, then "
                    "COPY the sources, so a code edit does not rebuild the env layer",
                )
        elif (
            ins.keyword == "RUN"
            and sources_line is not None
            and not reported
            and _CONDA_INSTALL.search(ins.args)
            and re.search(r"(-f|--file)\s+\S*environment", ins.args)
        ):
            yield (
                ins.line,
                f"the env is created after the sources are copied (line "
                f"{sources_line}); COPY only environment.yml before this RUN, and the "
                "sources after it",
            )


def _non_root(final: Stage, args: dict[str, str], stages: list[Stage]) -> list[tuple[int, str]]:
    local_args = dict(args)
    user = None
    user_line = final.line
    for ins in final.instructions:
        if ins.keyword == "ARG":
            key, _, value = ins.args.partition("=")
            local_args[key.strip()] = value.strip().strip("\"'")
        if ins.keyword == "USER":
            user, user_line = ins.args.strip(), ins.line
    if user is None:
        base = _expand(final.image, args)
        # a FROM sees only earlier stages ('FROM app AS app' is the image app): no loop
        earlier = stages[: next(i for i, s in enumerate(stages) if s is final)]
        parents = {s.name: s for s in earlier if s.name}
        if base in parents:  # inherit the parent stage's last USER
            return _non_root(parents[base], args, stages) and [
                (
                    final.line,
                    f"final stage '{final.name or final.image}' inherits a root user "
                    "from its parent stage; add 'USER <non-root>' to it",
                )
            ]
        if base.startswith(_NON_ROOT_IMAGES):
            return []
        return [
            (
                final.line,
                f"final stage '{final.name or final.image}' runs as root; add "
                "'USER <non-root user>' (create one with useradd --system)",
            )
        ]
    name = _expand(user, local_args).split(":")[0]
    if name in ("root", "0"):
        return [
            (
                user_line,
                f"final stage runs as '{user}'; switch to a non-root user at the end (USER app)",
            )
        ]
    return []
