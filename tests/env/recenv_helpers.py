"""Helpers shared by the environment tests (imported by name: tests/env is on sys.path)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def make_wheel(
    folder: Path, name: str, version: str, module: str | None = None, requires: tuple[str, ...] = ()
) -> Path:
    """Write a real, installable pure-Python wheel (PEP 427) holding one module."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    module_name = dist
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{module_name}.py": module if module is not None else f"VERSION = {version!r}\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: recenv-tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    wheel = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


def write_env(
    folder: Path, deps: str, pip: str = "", python: str = "3.11", name: str = "tiny-dev-tests"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    body = (
        f"name: {name}\nchannels:\n  - conda-forge\n  - nodefaults\ndependencies:\n"
        f"  - python={python}\n  - pip\n{deps}"
    )
    if pip:
        body += f"  - pip:\n{pip}"
    path = folder / "environment.yml"
    path.write_text(body)
    return path
