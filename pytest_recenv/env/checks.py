"""The rules behind ``recenv check`` and the ``recenv-check`` pre-commit hook.

Every rule returns ``Problem``s (``file:line: message`` with the fix); ``check_file`` runs them all
so one run reports every error, unlike conda's one-at-a-time failures.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_recenv.env import names, variants
from pytest_recenv.env.spec import (
    CondaDep,
    PipDep,
    Spec,
    expand_pip_vars,
    parse_spec,
    pip_var_names,
)
from pytest_recenv.errors import Problem

STAGES = ("dev", "exp", "prod")
NAME_CONVENTION = re.compile(r"^[a-z0-9][a-z0-9-]*-(dev|exp|prod)-[a-z0-9][a-z0-9_.-]*$")
DEFAULTS_CHANNELS = ("defaults", "main", "anaconda", "r", "msys2")
_UPGRADE = re.compile(r"^(-U|--upgrade|--upgrade-strategy\b.*|--force-reinstall)$")


@dataclass(frozen=True)
class Policy:
    """What a project allows; the defaults are the template's conventions."""

    allow_defaults: bool = False
    check_name: bool = True


def check_file(
    path: Path | str, policy: Policy | None = None, display: str | None = None
) -> list[Problem]:
    """All problems of one environment file, sorted by line."""
    policy = policy or Policy()
    spec, problems = parse_spec(path, display=display)
    shown = display or str(path)
    if spec.is_mapping:  # an unreadable, refused or non-mapping file has nothing to check
        problems += [Problem(shown, line, msg) for line, msg in _rules(spec, policy)]
    return sorted(set(problems), key=lambda p: (p.line, p.message))


def _rules(spec: Spec, policy: Policy) -> Iterator[tuple[int, str]]:
    yield from _python_pin(spec)
    yield from _pip_listed(spec)
    yield from _channels(spec, policy)
    if policy.check_name:
        yield from _env_name(spec)
    yield from _duplicates(spec)
    yield from _traps(spec)
    yield from _pip_options(spec)
    if spec.prefix is not None:
        yield (
            spec.key_lines.get("prefix", 1),
            f"'prefix: {spec.prefix}' is a path on one machine; remove it so the file "
            "works everywhere (use 'recenv build' or 'conda env create -p' instead)",
        )


def _python_pin(spec: Spec) -> Iterator[tuple[int, str]]:
    pins = [d for d in spec.conda if d.name == "python"]
    if not pins and spec.dependencies_ok:
        yield (
            spec.dependencies_line,
            "no 'python' pin: add '- python=3.11' (or your version) to dependencies",
        )
    for extra in pins[1:]:
        yield (extra.line, f"second 'python' pin (first on line {pins[0].line}); keep exactly one")
    # a first pin without a minor version is refused by parse_spec, for build and lock too
    for dep in spec.pip:
        if dep.name == "python":
            yield (
                dep.line,
                "'python' under 'pip:' cannot change the interpreter; pin it on the "
                "conda side, like '- python=3.11'",
            )


def _pip_listed(spec: Spec) -> Iterator[tuple[int, str]]:
    if spec.pip_line is not None and not any(d.name == "pip" for d in spec.conda):
        yield (
            spec.pip_line,
            "'pip:' section without 'pip' in dependencies: add '- pip' "
            "before it, or conda uses whatever pip it finds on PATH",
        )


def _channels(spec: Spec, policy: Policy) -> Iterator[tuple[int, str]]:
    if "channels" in spec.key_lines and not spec.channels:
        return  # malformed channels were reported by the parser
    if not spec.channels:
        line = 1
        yield (
            line,
            "no channels: add 'channels: [conda-forge, nodefaults]', otherwise conda "
            "falls back to the 'defaults' channel",
        )
        return
    chans = [c for c, _ in spec.channels]
    for chan, line in spec.channels:
        base = chan.rstrip("/").rsplit("/", 1)[-1]
        is_defaults = chan in DEFAULTS_CHANNELS or "repo.anaconda.com" in chan
        if is_defaults and not policy.allow_defaults:
            yield (
                line,
                f"channel '{chan}' is Anaconda's 'defaults' (commercial licence terms, "
                "mixes badly with conda-forge); use conda-forge and 'nodefaults', or pass "
                "--allow-defaults",
            )
        if base == "nodefaults" and chan != chans[-1]:
            yield (line, "'nodefaults' should be the last channel; move it to the end")
    has_defaults = any(c in DEFAULTS_CHANNELS or "repo.anaconda.com" in c for c in chans)
    if "nodefaults" not in chans and not policy.allow_defaults and not has_defaults:
        yield (
            spec.channels[-1][1],
            "channels lack 'nodefaults': conda adds 'defaults' "
            "implicitly; add '- nodefaults' as the last channel",
        )
    for dep in spec.conda:
        if dep.channel and dep.channel not in chans:
            yield (
                dep.line,
                f"'{dep.raw.strip()}' pins channel '{dep.channel}', which is not "
                "in channels; add it to channels or drop the 'channel::' prefix",
            )


def _env_name(spec: Spec) -> Iterator[tuple[int, str]]:
    if spec.name is None:
        if "name" not in spec.key_lines:
            yield (
                1,
                "no 'name': add 'name: <project>-<stage>-<owner>', like 'shop-recs-dev-mlteam'",
            )
        return
    if not NAME_CONVENTION.match(spec.name):
        yield (
            spec.name_line,
            f"env name '{spec.name}' does not follow "
            f"'<project>-<stage>-<owner>' with stage {', '.join(STAGES)}; rename it, like "
            "'shop-recs-dev-mlteam'",
        )


def _duplicates(spec: Spec) -> Iterator[tuple[int, str]]:
    seen: dict[str, CondaDep] = {}
    for dep in spec.conda:
        if dep.name in seen and dep.name != "python":  # python has its own rule
            yield (
                dep.line,
                f"'{dep.name}' is listed twice (also line {seen[dep.name].line}); keep one entry",
            )
        else:
            seen[dep.name] = dep
    conda_ids = {
        names.identity(d.name, "conda"): d
        for d in spec.conda
        if names.pypi_name(d.name) is not None
    }
    pip_seen: dict[str, int] = {}
    pip_ids: dict[str, PipDep] = {}
    for dep in spec.pip:
        if dep.name is None:
            continue
        if dep.name in pip_seen:
            yield (
                dep.line,
                f"'{dep.name}' is listed twice under 'pip:' (also line "
                f"{pip_seen[dep.name]}); keep one entry",
            )
        pip_seen.setdefault(dep.name, dep.line)
        ident = names.identity(dep.name, "pip")
        first = pip_ids.setdefault(ident, dep)
        if first.name != dep.name and dep.name not in names.PYPI_TRAPS:  # faiss-gpu-cu11/-cu12
            yield (
                dep.line,
                f"'{dep.name}' and '{first.name}' (line {first.line}) are builds of one project "
                f"that install the same '{ident.split('-')[0]}' module over each other; keep one",
            )
        if ident in conda_ids and dep.name not in names.PYPI_TRAPS:
            other = conda_ids[ident]
            yield (
                dep.line,
                f"'{dep.name}' is in both sections (conda '{other.name}' on line "
                f"{other.line}); pip would replace conda's build: keep it in one section",
            )


def _traps(spec: Spec) -> Iterator[tuple[int, str]]:
    for dep in spec.pip:
        if dep.name in names.PYPI_TRAPS:
            yield (dep.line, names.PYPI_TRAPS[dep.name])
    ids = {}
    for dep in spec.conda:
        if names.pypi_name(dep.name):
            ids.setdefault(names.identity(dep.name, "conda"), dep.line)
    for dep in spec.pip:
        if dep.name and dep.name not in names.PYPI_TRAPS:
            ids.setdefault(names.identity(dep.name, "pip"), dep.line)
    if "faiss-cpu" in ids and "faiss-gpu" in ids:
        line = max(ids["faiss-cpu"], ids["faiss-gpu"])
        yield (
            line,
            "faiss-cpu and faiss-gpu together install two 'faiss' modules that "
            "overwrite each other; keep faiss-gpu for CUDA environments, faiss-cpu otherwise",
        )
    yield from _cpu_cuda_clashes(spec, ids)


def _cpu_cuda_clashes(spec: Spec, ids: dict[str, int]) -> Iterator[tuple[int, str]]:
    """CUDA lines in a CPU environment, CPU builds under ``pip:`` in a CUDA one, and builds
    for another CUDA major than the one the spec names (``variants`` decides what is what)."""
    cpu, cuda = variants.cpu_marks(spec), variants.cuda_requests(spec)

    def faiss_pair(dep: CondaDep | PipDep, other: str) -> bool:
        # faiss-gpu beside faiss-cpu has its own, more precise message above
        section = "conda" if isinstance(dep, CondaDep) else "pip"
        return (
            dep.name is not None
            and other in ids
            and names.identity(dep.name, section)
            == {"faiss-cpu": "faiss-gpu", "faiss-gpu": "faiss-cpu"}.get(other)
        )

    conda_cpu = [d for d in cpu if isinstance(d, CondaDep)]
    if conda_cpu:
        mark = conda_cpu[0]
        for dep in cuda:
            if not faiss_pair(dep, "faiss-cpu"):
                yield (
                    dep.line,
                    f"'{dep.raw.strip()}' asks for CUDA in a CPU environment "
                    f"('{mark.raw.strip()}' on line {mark.line}); drop it, or make the "
                    "whole environment a CUDA one",
                )
    elif cpu and cuda:  # only pip lines make it a CPU environment: they are the odd ones
        want = cuda[0]
        for dep in cpu:
            if not faiss_pair(dep, "faiss-gpu"):
                yield (
                    dep.line,
                    f"'{dep.raw.strip()}' is a CPU build but this environment asks for CUDA "
                    f"('{want.raw.strip()}' on line {want.line}); use a CUDA build, or make "
                    "the whole environment a CPU one",
                )
    wanted = variants.spec_cuda_major(spec)
    if wanted is None:
        return
    major, named = wanted
    for pdep in spec.pip:
        variant = variants.pip_variant(pdep)
        if variant is None or variant[0] != "cuda" or variant[1] in (None, major):
            continue
        if isinstance(named, PipDep) and names.identity(named.name or "", "pip") == names.identity(
            pdep.name or "", "pip"
        ):
            continue  # faiss-gpu-cu11 beside faiss-gpu-cu12: reported above as two builds
        fix = variants.renamed_for(pdep.name or "", major)
        yield (
            pdep.line,
            f"'{pdep.raw.strip()}' is built for CUDA {variant[1]} but this environment "
            f"asks for CUDA {major} ('{named.raw.strip()}' on line {named.line}); use {fix}",
        )


def _pip_options(spec: Spec) -> Iterator[tuple[int, str]]:
    folder = spec.path.parent
    for dep in spec.pip:
        words = dep.raw.split()
        if dep.kind == "option" and _UPGRADE.match(dep.raw.strip()):
            yield (
                dep.line,
                f"pip option '{dep.raw.strip()}' upgrades what conda installed "
                "(conda#11559); remove it and pin versions instead",
            )
        elif dep.kind == "option" and words[0] in ("-r", "--requirement", "-c", "--constraint"):
            written = words[1] if len(words) > 1 else ""
            target, unset = expand_pip_vars(written)
            if not written or not (folder / target).is_file():
                yield (dep.line, _not_found(dep.raw.strip(), "file", written, target, unset))
        elif dep.kind == "editable":
            written = dep.raw.strip().split(None, 1)[-1].removeprefix("--editable=")
            target, unset = expand_pip_vars(written)
            if "://" not in target and not (folder / target).is_dir():
                yield (dep.line, _not_found(dep.raw.strip(), "folder", written, target, unset))


def _not_found(line: str, kind: str, written: str, target: str, unset: list[str]) -> str:
    """pip expands ``${VAR}`` in these lines (see ``expand_pip_vars``); say what it would open."""
    if unset:
        names_ = ", ".join(f"${{{name}}}" for name in unset)
        verb = "is" if len(unset) == 1 else "are"
        return (
            f"'{line}': {names_} {verb} not set, so pip keeps it as written and finds no "
            f"{kind} '{target}'; set the variable, or write the path"
        )
    if target != written:
        used = ", ".join(f"${{{name}}}" for name in pip_var_names(written))
        return f"'{line}': {kind} '{target}' ({used} expanded) not found; fix the path"
    return f"'{line}': {kind} '{target}' not found next to the environment file; fix the path"
