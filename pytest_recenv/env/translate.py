"""The one conda -> PyPI translation: every line of a spec as a PyPI distribution and the versions
it allows, used alike by the uv backend (requirement lines), lock freshness and drift.

A conda version with ``|`` (OR, e.g. ``numpy 1.26.*|1.27.*``) is a set of alternatives. Checking
an installed or locked version against it is exact (any alternative may match); a PEP 440
requirement line cannot say OR, so :meth:`Constraint.requirement_line` refuses it with the line
and the fix: the uv backend and ``recenv translate`` refuse such a spec, conda backends resolve
it themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from pytest_recenv.env import names
from pytest_recenv.env.matchspec import CondaDep, conda_version_to_pep440
from pytest_recenv.env.spec import Spec
from pytest_recenv.errors import RecenvError


@dataclass(frozen=True)
class Constraint:
    """One line of a spec as PyPI sees it: a canonical distribution name and the versions it
    allows, as alternatives (``()`` = any version; several = conda's ``|``)."""

    name: str
    alternatives: tuple[SpecifierSet, ...]
    line: int
    raw: str

    def allows(self, version: str) -> bool:
        """Does ``version`` (installed or locked) satisfy the line? An unparsable one does not."""
        if not self.alternatives:
            return True
        try:
            parsed = Version(version)
        except InvalidVersion:
            return False
        return any(spec.contains(parsed, prereleases=True) for spec in self.alternatives)

    def shown(self) -> str:
        """The allowed versions as written in messages: ``>=1.26`` or ``==1.26.* | ==1.27.*``."""
        return " | ".join(str(s) for s in self.alternatives)

    def requirement_line(self, path: object) -> str:
        """The PEP 440 requirement line (``numpy==1.26.*``); a ``RecenvError`` at ``path:line``
        where the line has alternatives, which PEP 440 cannot express."""
        if len(self.alternatives) > 1:
            raise RecenvError(
                f"{path}:{self.line}: '{self.raw}': version uses '|' (OR), which PEP 440 cannot "
                "express; pick one range, or build with a conda backend"
            )
        return f"{self.name}{self.alternatives[0] if self.alternatives else ''}"


def conda_constraint(dep: CondaDep) -> Constraint | None:
    """A conda dependency through the name table; None for what is not a Python distribution."""
    pypi = names.pypi_name(dep.name)
    if pypi is None:
        return None
    version = dep.version or ""
    alternatives = tuple(
        SpecifierSet(pep440)
        for alternative in version.split("|")
        if (pep440 := conda_version_to_pep440(alternative.strip()))
    )
    if len(alternatives) < len(version.split("|")):  # one alternative is "any version"
        alternatives = ()
    return Constraint(names.canonical(pypi), alternatives, dep.line, dep.raw.strip())


def constraints(spec: Spec) -> list[Constraint]:
    """Every versioned line of ``spec``: conda deps through the name table, then pip
    requirements (editables, URLs and pip options have no version to check)."""
    found = [c for dep in spec.conda if (c := conda_constraint(dep)) is not None]
    for dep in spec.pip:
        if dep.requirement is not None and dep.requirement.url is None and dep.name:
            specifier = dep.requirement.specifier
            found.append(
                Constraint(dep.name, (specifier,) if specifier else (), dep.line, dep.raw.strip())
            )
    return found
