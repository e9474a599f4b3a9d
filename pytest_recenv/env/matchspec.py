"""conda MatchSpec strings (CEP 29) and their translation to PEP 440 specifiers.

``pkg=1.8`` means ``1.8.*``; ``pkg 1.8`` means exactly ``1.8``; ``channel::pkg``, build strings
(``pkg=2.13=cpu*`` or ``pkg 2.13 cpu*``) and the bracket form ``pkg[version='>=1.2']`` are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version


@dataclass(frozen=True)
class CondaDep:
    """A conda MatchSpec: ``[channel::]name[ version[ build]]`` or ``name=1.8=build``."""

    raw: str
    line: int
    name: str
    version: str | None = None  # conda version expression, already CEP 29-normalised
    build: str | None = None
    channel: str | None = None

    def canonical(self) -> str:
        parts = [f"{self.channel}::{self.name}" if self.channel else self.name]
        parts += [p for p in (self.version or ("*" if self.build else None), self.build) if p]
        return " ".join(parts)

    def pep440(self) -> str:
        """The version as a PEP 440 specifier ('' = any); ValueError if PEP 440 cannot say it."""
        return conda_version_to_pep440(self.version)


_NAME = re.compile(r"^[a-z0-9_][a-z0-9_.\-]*$")
_OPS = ("==", ">=", "<=", "!=", "~=", ">", "<", "=")
_BRACKET = re.compile(r"^(?P<head>[^\[]*)\[(?P<body>[^\]]*)\]\s*$")
_BRACKET_KV = re.compile(r"""(\w+)\s*=\s*(?:'([^']*)'|"([^"]*)"|([^,\s]+))""")


def parse_matchspec(text: str, line: int = 0) -> CondaDep:
    """Parse one conda dependency string; ValueError with the fix when it is not a MatchSpec."""
    raw = text
    text = text.strip()
    channel = None
    if "::" in text:
        channel, text = text.split("::", 1)
        if not channel:
            raise ValueError(f"'{raw}': empty channel before '::'; write 'conda-forge::{text}'")
    bracket: dict[str, str] = {}
    m = _BRACKET.match(text)
    if m:
        text = m.group("head").strip()
        for key, *vals in _BRACKET_KV.findall(m.group("body")):
            bracket[key] = next(v for v in vals if v)
    version: str | None = None
    build: str | None = None
    if " " in text:
        pieces = text.split()
        if len(pieces) > 3:
            raise ValueError(
                f"'{raw}': a MatchSpec has at most 'name version build'; "
                "join version constraints with ',' and no spaces"
            )
        name, version = pieces[0], _space_version(pieces[1])
        build = pieces[2] if len(pieces) == 3 else None
        if any(version.startswith(op) for op in _OPS) and version[0] == "=" and version[1] != "=":
            version = _fuzzy(version[1:])
    else:
        m2 = re.match(r"^([^=<>!~]+)(.*)$", text)
        if not m2:
            raise ValueError(f"'{raw}': expected a package name first, like 'numpy>=1.26'")
        name, rest = m2.group(1), m2.group(2)
        if rest.startswith("=") and not rest.startswith("=="):
            ver, _, build_part = rest[1:].partition("=")
            if not ver:
                raise ValueError(f"'{raw}': '=' needs a version after it, like '{name}=1.8'")
            version, build = _fuzzy(ver), build_part or None
        elif rest:
            version = rest
    name = name.strip()
    if not name or not _NAME.match(name):
        hint = f" (conda names are lowercase: '{name.lower()}')" if name.lower() != name else ""
        raise ValueError(f"'{raw}': '{name}' is not a valid conda package name{hint}")
    version = bracket.get("version", version)
    build = bracket.get("build", build)
    for alternative in (version or "").split("|"):  # each side of an OR is a version too
        try:
            conda_version_to_pep440(alternative.strip())
        except ValueError as exc:
            raise ValueError(f"'{raw}': {exc}") from None
    return CondaDep(raw=raw, line=line, name=name, version=version, build=build, channel=channel)


def _fuzzy(ver: str) -> str:
    """``pkg=1.8`` means ``1.8.*`` (CEP 29); keep explicit operators and wildcards as written."""
    if any(ver.startswith(op) for op in _OPS) or "," in ver or "|" in ver:
        return ver
    return ver if ver.endswith("*") else f"{ver}.*"


def _space_version(ver: str) -> str:
    """``pkg 1.8`` means exactly ``1.8`` (CEP 29)."""
    if any(ver.startswith(op) for op in _OPS) or "*" in ver or "," in ver or "|" in ver:
        return ver
    return f"=={ver}"


def conda_version_to_pep440(version: str | None) -> str:
    """Translate a conda version expression to a PEP 440 specifier string."""
    if not version or version == "*":
        return ""
    if "|" in version:
        raise ValueError(
            f"version '{version}' uses '|' (OR), which PEP 440 cannot express; "
            "pick one range, or build with a conda backend"
        )
    clauses = []
    for clause in version.split(","):
        clause = clause.strip()
        op = next((o for o in _OPS if clause.startswith(o)), "")
        ver = clause[len(op) :].strip()
        if op == "=":
            op, ver = "==", ver if ver.endswith("*") else f"{ver}.*"
        if ver.endswith("*") and not ver.endswith(".*"):
            ver = ver[:-1].rstrip(".") + ".*"
        if op in ("", "=="):
            op = "=="
        elif ver.endswith(".*") and op not in ("==", "!="):
            ver = ver[:-2]
        clauses.append(f"{op}{ver}")
    result = ",".join(clauses)
    try:
        SpecifierSet(result)
    except InvalidSpecifier:
        raise ValueError(f"version '{version}' is not a valid version constraint") from None
    return result


# The minors a Python pin allows are found by testing a grid of versions (and the patch levels
# its bounds name): one method for every form a pin takes (ranges, '~=', wildcards, '|',
# brackets), where reading the clauses would need a case for each.
_PY_MAJORS = (2, 3, 4)
_PY_MINORS = range(0, 60)
_SUGGEST_FROM = (3, 11)
_LISTED_MINORS = 6  # more are an open range to a reader: not listed


def python_minors(version: str | None) -> set[tuple[int, int]]:
    """The ``(major, minor)`` series a conda version expression lets a Python pin pick."""
    if not version or version.strip() in ("", "*"):
        return {(major, minor) for major in _PY_MAJORS for minor in _PY_MINORS}
    found: set[tuple[int, int]] = set()
    for alternative in version.split("|"):
        spec = SpecifierSet(conda_version_to_pep440(alternative))
        bounds = {0, 1, 999}
        for clause in spec:
            named = Version(clause.version.removesuffix(".*"))
            if len(named.release) > 2:  # the patch a bound names, and its neighbours
                patch = named.release[2]
                bounds |= {max(patch - 1, 0), patch, patch + 1}
            if spec.contains(named, prereleases=True):  # e.g. python==3.13.0rc1
                found.add((*named.release, 0)[:2])
        for major in _PY_MAJORS:
            for minor in _PY_MINORS:
                if any(
                    spec.contains(Version(f"{major}.{minor}.{patch}"), prereleases=True)
                    for patch in bounds
                ):
                    found.add((major, minor))
    return found


def python_pin_problem(pin: CondaDep) -> str | None:
    """Why a ``python`` pin does not fix one minor version (None when it does).

    A build picks the newest interpreter that satisfies the pin, so ``python>=3.10`` silently
    becomes whatever CPython is newest on the machine.
    """
    if not pin.version:
        return "'python' has no version: pin it, like '- python=3.11'"
    try:
        minors = python_minors(pin.version)
    except (ValueError, InvalidVersion):
        return None  # an invalid version was reported when the line was parsed
    if len(minors) == 1 and "|" in pin.version:
        # One minor, but as alternatives: no PEP 440 specifier (so no interpreter search, key or
        # lock) can say it, and one range always can.
        ((major, minor),) = minors
        return (
            f"'{pin.raw.strip()}' uses '|' (OR), which recenv cannot choose an interpreter by; "
            f"write one range, like '- python={major}.{minor}'"
        )
    if len(minors) <= 1:
        return None  # one minor, or none at all: the interpreter search names what it needs
    later = sorted(m for m in minors if m >= _SUGGEST_FROM)
    major, minor = later[0] if later else max(minors)
    if len(minors) <= _LISTED_MINORS:  # a short list ('3.10|3.11', '>=3.10,<3.12'): name it
        listed = ", ".join(f"{a}.{b}" for a, b in sorted(minors))
        return (
            f"'{pin.raw.strip()}' allows {len(minors)} minor versions ({listed}), so the build "
            f"takes the newest of them installed; pin one, like '- python={major}.{minor}'"
        )
    return (
        f"'{pin.raw.strip()}' does not name a minor version, so the build takes whichever "
        f"CPython is newest; pin one, like '- python={major}.{minor}'"
    )
