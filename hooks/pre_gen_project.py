"""Validate every answer before cookiecutter writes a single file.

Each failure prints ``'<value>': <rule>. <how to fix>`` naming the variable, and the hook
exits 1 (cookiecutter then removes the half-made project folder). All problems are reported
in one run, not one at a time.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from pathlib import Path

# The answers, rendered by cookiecutter as a JSON text inside a Python string literal, so any
# quote, backslash or unicode in them survives intact.
# recenv_requirement is as the files get it: "auto" resolved to this template's source, and
# `_recenv_source_problem` says why it could not be, if so (local_extensions.py).
CONTEXT: dict = json.loads({{ cookiecutter | recenv_resolved | jsonify | py_str }})  # noqa: E501

SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
PACKAGE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# No hyphen in the owner: env names split from the right into <project>-<stage>-<owner>.
OWNER_RE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
PYTHON_RE = re.compile(r"^3\.(\d+)$")
REQUIREMENT_NAME_RE = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")

STAGES = ("dev", "exp", "prod")
CI_CHOICES = ("github", "none")
LICENSES = ("MIT", "Apache-2.0", "Proprietary")
# compute -> the Python minors for which PyTorch, faiss and onnxruntime publish the builds this
# template installs (conda-forge and PyPI) and which the template's CI bakes.
SUPPORTED = {
    "cpu": ("3.10", "3.11", "3.12"),
    "cuda12": ("3.10", "3.11", "3.12"),
}
# Package names that would shadow a dependency the generated project imports.
SHADOWED = {
    "torch", "faiss", "numpy", "pytest", "fastapi", "uvicorn", "pydantic", "onnx",
    "onnxruntime", "rich", "matplotlib", "yaml", "nox", "pytest_recenv", "tests", "src",
}  # fmt: skip
# The project's own modules that tests and benchmarks import by their bare name (pytest puts
# tests/ first on sys.path; a script's own folder comes first for benchmarks/*.py): a package of
# the same name would collide with one of them. tests/template/test_invalid_answers.py checks that
# every module in the template's tests/ and benchmarks/ is listed.
OWN_MODULES = {
    "bench_ml100k", "bench_retrieval", "bench_router", "bench_sequence_training", "bench_training",
    "conftest", "fuzz", "hostile", "load", "ml100k_common", "ml100k_temporal", "reload", "servers",
    "stress_ddp", "test_artifacts", "test_benchmarks", "test_channels", "test_cli", "test_data",
    "test_ddp_teardown", "test_dockerfile", "test_ease", "test_evaluation", "test_export",
    "test_gpu", "test_ml100k", "test_models", "test_notebook", "test_noxfile", "test_precommit",
    "test_project", "test_ranking", "test_retrieval", "test_router", "test_sasrec",
    "test_server_process", "test_serving", "test_serving_matches_evaluation", "test_snapshot",
    "test_temporal", "test_training", "test_workflow", "tune_two_tower",
}  # fmt: skip
# Characters conda refuses in an environment name (conda's validate_prefix_name).
CONDA_FORBIDDEN = ("/", " ", ":", "#")
CONDA_RESERVED = ("base", "root")
# (This file is itself rendered by Jinja, hence the raw block.)
{% raw %}TEMPLATE_LOOKING = ("{{", "}}", "{%", "%}", "{#", "#}", "${{"){% endraw %}


def _control_chars(text: str) -> list[str]:
    return [repr(ch) for ch in text if ord(ch) < 0x20 or ord(ch) == 0x7F]


def check_text(name: str, value: object, *, max_len: int) -> list[str]:
    """Free text that lands in Python, TOML, YAML and Markdown files."""
    if not isinstance(value, str) or not value.strip():
        return [f"{name} {value!r}: must be non-empty text. Give a short {name.replace('_', ' ')}."]
    errors = []
    if bad := _control_chars(value):
        errors.append(
            f"{name} {value!r}: must be one line without control characters, found "
            f"{', '.join(sorted(set(bad)))}. Remove them."
        )
    if len(value) > max_len:
        errors.append(
            f"{name} {value!r}: must be at most {max_len} characters, found {len(value)}. "
            "Shorten it."
        )
    if found := [t for t in TEMPLATE_LOOKING if t in value]:
        errors.append(
            f"{name} {value!r}: must not contain template delimiters, found {found[0]!r} "
            "(generated files and GitHub Actions would evaluate them). Remove the braces."
        )
    return errors


def check_slug(slug: object) -> list[str]:
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        return [
            f"project_slug {slug!r}: must be lowercase letters and digits in hyphen-separated "
            "words, starting with a letter (e.g. 'shop-recs'). Pass project_slug=<slug>, or a "
            "project_name with at least one ASCII letter."
        ]
    if len(slug) > 40:
        return [f"project_slug {slug!r}: must be at most 40 characters. Pass a shorter slug."]
    return []


def check_package(package: object) -> list[str]:
    if not isinstance(package, str) or not PACKAGE_RE.match(package):
        return [
            f"package_name {package!r}: must be a lowercase Python identifier "
            "([a-z][a-z0-9_]*). Pass package_name=<name>."
        ]
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        return [f"package_name {package!r}: is a Python keyword. Pass another package_name."]
    if package in getattr(sys, "stdlib_module_names", ()) or package in SHADOWED:
        return [
            f"package_name {package!r}: would shadow the module {package!r} that the project "
            "imports. Pass another package_name (e.g. 'shop_recs')."
        ]
    if package in OWN_MODULES:
        return [
            f"package_name {package!r}: is the name of the project's own module {package!r} "
            "(in tests/ or benchmarks/), which would shadow the package. Pass another "
            f"package_name (e.g. '{package}_recs')."
        ]
    return []


def check_owner(owner: object) -> list[str]:
    if not isinstance(owner, str) or not OWNER_RE.match(owner):
        return [
            f"owner {owner!r}: must be a plain handle of 2-32 lowercase letters, digits or "
            "underscores, starting with a letter (no hyphens: env names split on them). "
            "Pass owner=<handle>, e.g. owner=mlteam."
        ]
    return []


def check_env_name(env_name: object, slug: object, stage: object, owner: object) -> list[str]:
    if not isinstance(env_name, str) or not env_name:
        return [f"env_name {env_name!r}: must be non-empty. Leave it to its derived default."]
    if bad := [ch for ch in CONDA_FORBIDDEN if ch in env_name]:
        return [
            f"env_name {env_name!r}: conda refuses {', '.join(repr(c) for c in bad)} in an "
            "environment name. Use <project_slug>-<stage>-<owner>."
        ]
    if env_name in CONDA_RESERVED:
        return [
            f"env_name {env_name!r}: is conda's own environment and must never be a project's. "
            "Use <project_slug>-<stage>-<owner>."
        ]
    expected = f"{slug}-{stage}-{owner}"
    if env_name != expected:
        return [
            f"env_name {env_name!r}: must follow the convention <project_slug>-<stage>-<owner>, "
            f"here {expected!r}, so environments can be listed and reclaimed by owner and stage. "
            "Leave env_name to its default, or change project_slug, stage or owner."
        ]
    return []


def check_python(version: object, compute: object) -> list[str]:
    match = PYTHON_RE.match(version) if isinstance(version, str) else None
    if match is None:
        return [
            f"python_version {version!r}: must be a CPython minor like '3.10'. "
            f"Pass one of {', '.join(SUPPORTED['cpu'])}."
        ]
    if int(match.group(1)) < 10:
        return [
            f"python_version {version!r}: must be 3.10 or newer (the request router uses "
            "structural pattern matching, `match`). Pass python_version=3.10 or newer."
        ]
    offered = SUPPORTED.get(compute) if isinstance(compute, str) else None
    if offered is not None and version not in offered:
        return [
            f"python_version {version!r}: compute={compute} has no tested PyTorch/faiss builds "
            f"for Python {version}. Pass one of {', '.join(offered)}."
        ]
    return []


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> list[str]:
    if value not in choices:
        allowed = ", ".join(choices)
        return [f"{name} {value!r}: must be one of {allowed}. Pass {name}=<one of them>."]
    return []


def check_bool(name: str, value: object) -> list[str]:
    if not isinstance(value, bool):
        return [f"{name} {value!r}: must be true or false. Pass {name}=yes or {name}=no."]
    return []


def check_requirement(value: object) -> list[str]:
    if value == "auto":  # unresolved: CONTEXT["_recenv_source_problem"] says why
        return []
    if not isinstance(value, str) or _control_chars(value) or not value.strip():
        return [
            f"recenv_requirement {value!r}: must be one pip requirement line. "
            "Pass e.g. 'pytest-recenv>=0.1' or 'pytest-recenv @ git+https://host/org/repo@v0.1'."
        ]
    name = REQUIREMENT_NAME_RE.match(value)
    normalized = re.sub(r"[-_.]+", "-", name.group(1)).lower() if name else ""
    if normalized != "pytest-recenv":
        return [
            f"recenv_requirement {value!r}: must be a requirement for the distribution "
            f"'pytest-recenv', found {normalized or 'no name'!r}. "
            "Pass e.g. 'pytest-recenv>=0.1' or 'pytest-recenv @ <url>'."
        ]
    return []


def validate(ctx: dict) -> list[str]:
    """Every rule, every answer; returns the messages (empty when all answers are valid)."""
    errors = check_text("project_name", ctx.get("project_name"), max_len=80)
    errors += check_text("description", ctx.get("description"), max_len=200)
    errors += check_slug(ctx.get("project_slug"))
    errors += check_package(ctx.get("package_name"))
    errors += check_owner(ctx.get("owner"))
    errors += check_choice("stage", ctx.get("stage"), STAGES)
    errors += check_env_name(
        ctx.get("env_name"), ctx.get("project_slug"), ctx.get("stage"), ctx.get("owner")
    )
    errors += check_choice("compute", ctx.get("compute"), tuple(SUPPORTED))
    errors += check_python(ctx.get("python_version"), ctx.get("compute"))
    errors += check_bool("include_serving", ctx.get("include_serving"))
    errors += check_bool("include_docker", ctx.get("include_docker"))
    errors += check_choice("ci", ctx.get("ci"), CI_CHOICES)
    errors += check_choice("license", ctx.get("license"), LICENSES)
    errors += check_requirement(ctx.get("recenv_requirement"))
    return errors


def check_rebake(ctx: dict, root: Path) -> list[str]:
    """Refuse to bake over files a switched-off part would delete.

    The post-gen hook removes the parts the answers switch off (`_optional_parts` in
    cookiecutter.json). Baking with --overwrite-if-exists into an existing project, those paths
    may hold the user's own files: this hook runs in the project folder before anything is
    written, so whatever is there now was not written by this bake."""
    errors = []
    for part in ctx.get("_optional_parts", ()):
        answer, off = part["answer"], part["off"]
        if ctx.get(answer) != off:
            continue
        paths = [p.format(package=ctx["package_name"]) for p in part["paths"]]
        there = [p for p in paths if (root / p).exists()]
        if there:
            errors.append(
                f"{answer} {off!r}: would delete {', '.join(there)} in {root}, which this bake "
                "did not write. Move them away, bake into a new folder, or switch the part on."
            )
    return errors


def main() -> int:
    problem = CONTEXT.get("_recenv_source_problem", "")
    errors = [problem] if problem else []
    errors += validate(CONTEXT)
    if not errors:
        errors += check_rebake(CONTEXT, Path.cwd())
    for message in errors:
        print(f"ERROR: {message}", file=sys.stderr)
    if errors:
        print(
            f"recsys-template: {len(errors)} invalid answer(s); nothing was generated.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
