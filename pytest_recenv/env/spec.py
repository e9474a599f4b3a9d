"""Parse ``environment.yml`` keeping line numbers (CEP 24 structure, CEP 29 MatchSpec semantics).

``parse_spec(path)`` never raises for bad input: it returns the spec it could read plus a list of
``Problem(path, line, message)``, so ``recenv check`` can report every error in one run (conda
stops at the first).  ``load_spec(path)`` is the strict form for builders: it raises
``SpecError`` carrying all problems.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from pytest_recenv.env import boundedyaml, names
from pytest_recenv.env.matchspec import CondaDep, parse_matchspec, python_pin_problem

# BuildError and RecenvError: this module (as pytest_recenv.spec) was their documented home
# before errors.py, so old imports of them from here keep working.
from pytest_recenv.errors import BuildError, Problem, RecenvError, SpecError  # noqa: F401

TOP_LEVEL_KEYS = ("name", "channels", "dependencies", "variables", "prefix")


@dataclass(frozen=True)
class PipDep:
    """One line of the ``pip:`` section: a requirement, an editable, or a pip option."""

    raw: str
    line: int
    kind: str  # "requirement" | "editable" | "option"
    name: str | None = None  # PEP 503 canonical name of a requirement
    requirement: Requirement | None = None

    def canonical(self) -> str:
        if self.requirement is not None:
            req = Requirement(str(self.requirement))
            req.name = names.canonical(req.name)
            return str(req)
        return " ".join(self.raw.split())


@dataclass
class Spec:
    path: Path
    name: str | None = None
    name_line: int = 1
    channels: list[tuple[str, int]] = field(default_factory=list)
    channels_line: int | None = None
    conda: list[CondaDep] = field(default_factory=list)
    pip: list[PipDep] = field(default_factory=list)
    pip_line: int | None = None
    dependencies_line: int | None = None
    dependencies_ok: bool = False  # 'dependencies' present and a list
    variables: dict[str, str] = field(default_factory=dict)
    prefix: str | None = None
    key_lines: dict[str, int] = field(default_factory=dict)
    is_mapping: bool = False  # the file read as a YAML mapping: the rules of recenv check apply

    @property
    def python(self) -> CondaDep | None:
        pins = [d for d in self.conda if d.name == "python"]
        return pins[0] if pins else None

    def normalised(self) -> dict[str, Any]:
        """Canonical content: dependency order, comments, whitespace and the env name do not count.

        Channel order does count: it is conda's priority order.
        """
        return {
            "channels": [c for c, _ in self.channels],
            "conda": sorted(d.canonical() for d in self.conda),
            "pip": sorted(d.canonical() for d in self.pip),
            "variables": dict(sorted(self.variables.items())),
        }

    def digest(self) -> str:
        blob = json.dumps(self.normalised(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


# --- pip section -------------------------------------------------------------------------------


def parse_pip_line(text: str, line: int = 0) -> PipDep:
    stripped = text.strip()
    if stripped.startswith(("-e ", "--editable ", "--editable=")):
        return PipDep(raw=text, line=line, kind="editable")
    if stripped.startswith("-"):
        return PipDep(raw=text, line=line, kind="option")
    try:
        req = Requirement(stripped)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0].rstrip(".")
        raise ValueError(
            f"'{text}' is not a valid pip requirement ({reason}); expected "
            "'name', 'name>=1.0', 'name @ URL', '-e PATH' or a pip option"
        ) from None
    return PipDep(
        raw=text, line=line, kind="requirement", name=names.canonical(req.name), requirement=req
    )


# pip expands ${NAME} in requirement lines, NAME being upper-case letters, digits and '_', and
# only when the variable is set and not empty; anything else ($NAME, ${name}) stays as written.
_PIP_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")


def pip_var_names(text: str) -> list[str]:
    """The ``${VAR}`` names pip would try to expand in ``text``, each once, in order."""
    return list(dict.fromkeys(_PIP_VAR.findall(text)))


def expand_pip_vars(text: str, environ: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """``text`` with ``${VAR}`` expanded as pip does, and the names pip would leave unexpanded."""
    env = os.environ if environ is None else environ
    unset = [name for name in pip_var_names(text) if not env.get(name)]
    return _PIP_VAR.sub(lambda m: env.get(m.group(1)) or m.group(0), text), unset


# --- the file ----------------------------------------------------------------------------------


def parse_spec(path: Path | str, display: str | None = None) -> tuple[Spec, list[Problem]]:
    """Read ``path``; return what could be understood plus every structural problem found."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    path = Path(path)
    shown = display or str(path)
    spec = Spec(path=path)
    problems: list[Problem] = []

    def add(line: int, message: str) -> None:
        problems.append(Problem(shown, line, message))

    try:
        text = boundedyaml.read_text(path)
    except boundedyaml.Refused as exc:
        add(exc.line, exc.message)
        return spec, problems
    except (OSError, UnicodeDecodeError) as exc:
        add(
            1,
            f"cannot read the file ({exc.__class__.__name__}: {exc}); "
            "expected a UTF-8 conda environment file",
        )
        return spec, problems
    if "\t" in text:
        lineno = next(i for i, ln in enumerate(text.splitlines(), 1) if "\t" in ln)
        add(lineno, "tab character: YAML indentation must use spaces; replace tabs with spaces")
        return spec, problems
    try:
        data = boundedyaml.load(text)
    except boundedyaml.Refused as exc:
        add(exc.line, exc.message)
        return spec, problems
    except MarkedYAMLError as exc:
        # An unclosed quote or bracket is reported at the end of the file; its start (the
        # context mark) is the line a user must fix.
        eof = "end of stream" in (exc.problem or "")
        mark = (exc.context_mark if eof else None) or exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = (exc.problem or "invalid YAML").strip()
        if "duplicate key" in what or "found duplicate key" in str(exc):
            what = f"duplicate key {_dup_key(str(exc))}; keep one of them"
        else:
            context = f"{exc.context.strip()}, " if exc.context else ""
            what = f"invalid YAML: {context}{what}; check indentation and quoting on this line"
        add(line, what)
        return spec, problems
    except YAMLError as exc:
        add(1, f"invalid YAML: {exc}")
        return spec, problems
    if data is None:
        add(1, "empty file: expected a mapping with 'name', 'channels' and 'dependencies'")
        return spec, problems
    if not isinstance(data, dict):
        add(
            1, f"expected a mapping with 'name', 'channels' and 'dependencies', found {_kind(data)}"
        )
        return spec, problems
    spec.is_mapping = True

    for key in data:
        spec.key_lines[str(key)] = _key_line(data, key)
        if key not in TOP_LEVEL_KEYS:
            hint = _close(str(key), TOP_LEVEL_KEYS)
            add(
                _key_line(data, key),
                f"unknown key '{key}': an environment file has only "
                f"{', '.join(TOP_LEVEL_KEYS)}{hint}",
            )

    if "name" in data:
        spec.name_line = _key_line(data, "name")
        if isinstance(data["name"], str) and data["name"].strip():
            spec.name = data["name"].strip()
        else:
            add(spec.name_line, f"'name' must be a non-empty string, found {_kind(data['name'])}")
    if "prefix" in data:
        spec.prefix = str(data["prefix"])

    if "channels" in data:
        spec.channels_line = _key_line(data, "channels")
        chans = data["channels"]
        if not isinstance(chans, list):
            add(
                spec.channels_line,
                f"'channels' must be a list, found {_kind(chans)}; "
                "write '- conda-forge' on the next line",
            )
        else:
            for i, ch in enumerate(chans):
                ln = _item_line(chans, i, spec.channels_line)
                if isinstance(ch, str) and " - " in ch:
                    add(ln, _joined(ch))
                elif isinstance(ch, str) and ch.strip():
                    spec.channels.append((ch.strip(), ln))
                else:
                    add(ln, f"channel must be a name or URL, found {_kind(ch)}")

    if "variables" in data:
        var = data["variables"]
        if isinstance(var, dict):
            spec.variables = {str(k): str(v) for k, v in var.items()}
        else:
            add(
                _key_line(data, "variables"),
                f"'variables' must be a mapping of NAME: value, found {_kind(var)}",
            )

    if "dependencies" not in data:
        add(1, "missing 'dependencies': list the packages under 'dependencies:'")
        return spec, problems
    spec.dependencies_line = _key_line(data, "dependencies")
    deps = data["dependencies"]
    if not isinstance(deps, list):
        add(
            spec.dependencies_line,
            f"'dependencies' must be a list, found {_kind(deps)}; "
            "put each package on its own '- ' line",
        )
        return spec, problems
    spec.dependencies_ok = True
    for i, dep in enumerate(deps):
        ln = _item_line(deps, i, spec.dependencies_line)
        if isinstance(dep, str) and " - " in dep:
            add(ln, _joined(dep))
        elif isinstance(dep, str):
            try:
                spec.conda.append(parse_matchspec(dep, ln))
            except ValueError as exc:
                add(ln, str(exc))
        elif isinstance(dep, dict):
            _parse_pip_section(dep, ln, spec, add)
        else:
            found = "an empty item" if dep is None else f"{_kind(dep)} {dep!r}"
            fix = f"; quote it: '- \"{dep}\"'" if isinstance(dep, (int, float)) else ""
            add(ln, f"expected a package spec string, found {found}{fix}")
    # Here rather than among the check rules, so that build, key and lock refuse it as well.
    if spec.python is not None and (problem := python_pin_problem(spec.python)):
        add(spec.python.line, problem)
    return spec, problems


def _parse_pip_section(dep: dict, ln: int, spec: Spec, add: Any) -> None:
    for key in dep:
        if key != "pip":
            add(
                ln,
                f"unknown dependency section '{key}': only 'pip:' may appear as a mapping "
                "in dependencies",
            )
    if "pip" not in dep:
        return
    if spec.pip_line is not None:
        add(ln, f"second 'pip:' section (first on line {spec.pip_line}); merge them into one")
    spec.pip_line = ln
    reqs = dep["pip"]
    if not isinstance(reqs, list):
        add(ln, f"'pip:' must be a list of requirements, found {_kind(reqs)}")
        return
    for j, req in enumerate(reqs):
        rl = _item_line(reqs, j, ln)
        if not isinstance(req, str) or not req.strip():
            found = "an empty item" if req is None or req == "" else f"{_kind(req)} {req!r}"
            add(rl, f"expected a pip requirement string, found {found}")
            continue
        try:
            spec.pip.append(parse_pip_line(req, rl))
        except ValueError as exc:
            add(rl, str(exc))


def load_spec(path: Path | str) -> Spec:
    """Parse strictly: raise ``SpecError`` listing every problem."""
    spec, problems = parse_spec(path)
    if problems:
        raise SpecError(problems)
    return spec


def _key_line(data: Any, key: Any) -> int:
    try:
        return data.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return 1


def _item_line(seq: Any, index: int, default: int) -> int:
    try:
        return seq.lc.item(index)[0] + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return default


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    for kind, name in (
        (bool, "a boolean"),
        (dict, "a mapping"),
        (list, "a list"),
        (str, "a string"),
        ((int, float), "a number"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _joined(text: str) -> str:
    first, second = text.split(" - ", 1)
    return (
        f"'{first} - {second}' reads as one item: the '- {second}' line is indented deeper "
        "than the '- ' line above it; align the '- ' of both items"
    )


def _close(key: str, options: tuple[str, ...]) -> str:
    import difflib

    match = difflib.get_close_matches(key, options, n=1)
    return f"; did you mean '{match[0]}'?" if match else ""


def _dup_key(text: str) -> str:
    m = re.search(r'duplicate key "?([^"\s]+)"?', text)
    return f"'{m.group(1)}'" if m else ""
