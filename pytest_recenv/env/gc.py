"""``recenv gc``: list the cache's environments and prune them, removing only what is provably
recenv's own.

The cache dir may be shared (``$RECENV_CACHE_DIR`` pointed at a project or CI folder), so gc
removes a folder only when it can prove recenv made it:

* an **environment**: named like a cache key (20 hex digits) and holding a readable stamp
  (``.recenv-stamp.json``) for that same key; removed by age or size, and only while nobody
  holds a lease on it (``pytest_recenv.env.lease``): it is renamed to the unfinished-build naming
  first, so no reader ever sees half of it, then deleted;
* an **unfinished build**: ``.tmp-<key>-<pid>`` (the uv backend's build folder), or an
  unstamped ``<key>`` beside a ``<key>.unfinished`` marker (a conda-family build in place);
  removed only while nobody holds the build lock ``<key>.lock`` (a live build does), after
  killing any process the dead build left writing into it.

Everything else is left alone and listed: a ``<key>`` folder whose stamp cannot be read is
``corrupt`` (the next build of that key replaces it), any other folder is ``not recenv's``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_recenv.env.lease import SUFFIX, exclusive
from pytest_recenv.env.leftovers import UNFINISHED, remove_unfinished

STAMP = ".recenv-stamp.json"  # the same name as builders.STAMP, without importing the builders
KEY = re.compile(r"[0-9a-f]{20}")
TMP = re.compile(r"\.tmp-([0-9a-f]{20})-\d+")


@dataclass
class Entry:
    path: Path
    kind: str  # env | unfinished | corrupt | foreign
    key: str = ""
    size: int = 0
    used: float = 0.0
    backend: str = "?"
    spec: str = "?"
    why: str = ""


def folder_size(path: Path) -> int:
    total = 0
    for item in path.rglob("*"):
        try:
            if item.is_file() and not item.is_symlink():
                total += item.stat().st_size
        except OSError:
            continue
    return total


def classify(root: Path, folder: Path) -> Entry:
    """What ``folder`` (a child of the cache dir) is, from what recenv itself writes."""
    if folder.is_symlink():
        return Entry(folder, "foreign", why="a symbolic link (recenv never makes one)")
    tmp = TMP.fullmatch(folder.name)
    if tmp:
        return Entry(folder, "unfinished", key=tmp.group(1))
    if not KEY.fullmatch(folder.name):
        return Entry(folder, "foreign", why="not named like a recenv cache key")
    key = folder.name
    stamp_file = folder / STAMP
    if not stamp_file.exists():
        if (root / f"{key}{UNFINISHED}").is_file():
            return Entry(folder, "unfinished", key=key)
        return Entry(folder, "foreign", why=f"no {STAMP}")
    try:
        stamp: Any = json.loads(stamp_file.read_text(encoding="utf-8"))
        used = stamp_file.stat().st_mtime
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        why = f"{STAMP} unreadable ({exc.__class__.__name__}: {str(exc)[:80]})"
        return Entry(folder, "corrupt", key=key, why=why)
    if not isinstance(stamp, dict) or stamp.get("key") != key:
        found = stamp.get("key") if isinstance(stamp, dict) else type(stamp).__name__
        return Entry(folder, "corrupt", key=key, why=f"{STAMP} names key {found!r}, not {key!r}")
    return Entry(
        folder,
        "env",
        key=key,
        used=used,
        backend=str(stamp.get("backend", "?")),
        spec=str(stamp.get("spec_file", "?")),
    )


def _remove_env(root: Path, entry: Entry) -> str | None:
    """Remove one environment unless it is leased; None when removed, else why not."""
    try:
        with exclusive(root, entry.key) as free:
            if not free:
                return "in use (a recenv run or pytest session holds its lease)"
            doomed = root / f".tmp-{entry.key}-{os.getpid()}"
            try:  # atomic: a reader sees the whole env or none, never half of it
                os.rename(entry.path, doomed)
            except OSError as exc:
                return f"could not move it aside ({exc.strerror or exc})"
            shutil.rmtree(doomed, ignore_errors=True)
    except OSError as exc:  # the lease file cannot be opened: no proof nobody uses the env
        return f"could not lock {entry.key}{SUFFIX} ({exc.strerror or exc})"
    return None


def run_gc(
    root: Path,
    older_than_days: float | None = None,
    max_size_gib: float | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Prune ``root``; returns the report, one line per folder and a total."""
    if not root.is_dir():
        return [f"{root}: no cached environments"]
    out: list[str] = []
    verb = "would remove" if dry_run else "removed"
    entries = [classify(root, p) for p in sorted(root.iterdir()) if p.is_dir()]
    for entry in entries:
        if entry.kind == "unfinished":
            held = remove_unfinished(root, entry.key, entry.path, dry_run)
            out.append(
                f"skipped {entry.path.name}: a build is running"
                if held
                else f"{verb} unfinished build {entry.path.name}"
            )
        elif entry.kind == "corrupt":
            out.append(
                f"corrupt      {entry.path.name}: {entry.why}; left alone (the next build of "
                "this key replaces it; delete it by hand to reclaim the space now)"
            )
        elif entry.kind == "foreign":
            out.append(f"not recenv's {entry.path.name}: {entry.why}; left alone")
    envs = [e for e in entries if e.kind == "env"]
    for e in envs:
        e.size = folder_size(e.path)
    envs.sort(key=lambda e: e.used, reverse=True)
    now = time.time()
    remove: set[Path] = set()
    if older_than_days is not None:
        remove |= {e.path for e in envs if now - e.used > older_than_days * 86400}
    if max_size_gib is not None:
        kept = 0.0
        for e in envs:  # most recently used first: keep while under the budget
            kept += e.size
            if kept > max_size_gib * 1024**3:
                remove.add(e.path)
    for e in envs:
        action, note = "keep", ""
        if e.path in remove:
            action = verb
            if not dry_run and (why := _remove_env(root, e)):
                action, note = "in use", f"  kept: {why}"
        days = (now - e.used) / 86400
        out.append(
            f"{action:12} {e.path.name}  {e.size / 1024**2:9.1f} MiB  used "
            f"{days:5.1f} d ago  {e.backend:5}  {e.spec}{note}"
        )
    total = sum(e.size for e in envs) / 1024**3
    out.append(f"{len(envs)} environments, {total:.2f} GiB in {root}")
    return out
