"""Import-check records: what an earlier build already proved importable, by content.

The import smoke test is most of a cold build's verification (torch or onnxscript take seconds to
import for the first time). Most of what it imports is byte-identical from one build to the next:
a second project with the same torch, the CI rebuild of a changed spec. So each successful import
check leaves a record named by a fingerprint of everything the import could depend on, and a
build finding the record of the same fingerprint does not import that distribution again:

* the interpreter (its resolved path, size and modification time) and ``PYTHONPATH``;
* every ``.pth`` file of the environment's site-packages (they change what imports);
* the ``RECORD`` of the distribution and of everything it requires, transitively, extras
  included (``RECORD`` lists the sha256 of every installed file).

A distribution without a ``RECORD`` (some conda packages) is always imported. A failed import is
never recorded. The records live in ``$RECENV_VERIFY_CACHE`` (default: the user cache folder's
``recenv/verified``), are a few hundred bytes each, and ``RECENV_VERIFY_CACHE=off`` turns them
off. The build says how many imports came from records, and which, in its stamp.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pytest_recenv.env.names import canonical

RECORDS_ENV = "RECENV_VERIFY_CACHE"
_OFF = ("off", "0", "no", "false")
_REQ_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def records_dir() -> Path | None:
    """Where import-check records are kept; None when ``RECENV_VERIFY_CACHE=off``."""
    raw = os.environ.get(RECORDS_ENV, "").strip()
    if raw.lower() in _OFF:
        return None
    if raw:
        return Path(raw)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("recenv")) / "verified"


@dataclass
class Installed:
    """One installed distribution, read from its ``.dist-info``."""

    name: str  # canonical
    py_bytes: int = 0  # bytes of its .py files (RECORD sizes)
    requires: list[str] = field(default_factory=list)  # unconditional requirements
    optional: list[str] = field(default_factory=list)  # requirements under an extra
    record: bytes | None = None  # the RECORD file: sha256 and size of every file installed


def site_packages(prefix: Path) -> list[Path]:
    found = [*prefix.glob("lib/python3*/site-packages"), prefix / "Lib" / "site-packages"]
    return [p for p in found if p.is_dir()]


def scan(prefix: Path) -> dict[str, Installed]:
    """Every distribution installed under ``prefix``, by canonical name.

    Read by hand, not through ``importlib.metadata``: its e-mail header parser and RECORD
    objects took 0.3 s for the template's 118 distributions, ahead of every import; this
    takes 0.04 s."""
    found: dict[str, Installed] = {}
    for site in site_packages(prefix):
        for info in sorted(site.glob("*.dist-info")):
            dist = read_dist_info(info)
            if dist is not None:
                found.setdefault(dist.name, dist)
    return found


def read_dist_info(info: Path) -> Installed | None:
    """Name, requirements and RECORD of one installed distribution (None without METADATA)."""
    try:
        head = (info / "METADATA").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    dist = Installed("")
    for line in head.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        if key.lower() == "name":
            dist.name = canonical(value.strip())
        elif key.lower() == "requires-dist" and (match := _REQ_NAME.match(value.strip())):
            group = dist.optional if "extra ==" in value else dist.requires
            group.append(canonical(match.group()))
    if not dist.name:
        return None
    try:
        dist.record = (info / "RECORD").read_bytes()
    except OSError:
        return dist
    for line in dist.record.decode("utf-8", errors="replace").splitlines():
        path, _, size_text = [*line.rsplit(",", 2), "", ""][:3]
        if path.endswith(".py") and size_text.isdigit():
            dist.py_bytes += int(size_text)
    return dist


def closure(installed: dict[str, Installed], dist: str, optional: bool = False) -> set[str]:
    """``dist`` and everything installed it requires, transitively (with ``optional``: extras'
    requirements too, where installed)."""
    seen: set[str] = set()
    stack = [canonical(dist)]
    while stack:
        name = stack.pop()
        if name not in seen and name in installed:
            seen.add(name)
            stack += installed[name].requires
            if optional:
                stack += installed[name].optional
    return seen


def fingerprints(
    python: Path, installed: dict[str, Installed], dists: list[str], env: dict[str, str]
) -> dict[str, str]:
    """The fingerprint of each of ``dists`` that can have one (see the module docstring)."""
    base = hashlib.sha256()
    real = Path(os.path.realpath(python))
    try:
        st = real.stat()
    except OSError:
        return {}
    base.update(f"{real}|{st.st_size}|{st.st_mtime_ns}|{env.get('PYTHONPATH', '')}\n".encode())
    for site in site_packages(python.parent.parent):
        for pth in sorted(site.glob("*.pth")):
            try:
                base.update(pth.name.encode() + b"\0" + pth.read_bytes() + b"\0")
            except OSError:
                return {}
    found: dict[str, str] = {}
    for dist in dists:
        names = closure(installed, dist, optional=True)
        if canonical(dist) not in names or any(installed[n].record is None for n in names):
            continue
        digest = base.copy()
        for name in sorted(names):
            digest.update(name.encode() + b"\0" + (installed[name].record or b"") + b"\0")
        found[dist] = digest.hexdigest()
    return found


def known(folder: Path | None, fingerprint: str) -> bool:
    return folder is not None and (folder / f"{fingerprint}.json").is_file()


def remember(folder: Path | None, fingerprint: str, dist: str, seconds: float) -> None:
    """Record a successful import check; a folder that cannot be written only costs the cache."""
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{fingerprint}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"dist": dist, "import_seconds": round(seconds, 3)}))
        os.replace(tmp, folder / f"{fingerprint}.json")
    except OSError:
        pass
