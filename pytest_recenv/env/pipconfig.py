"""Read the user's pip configuration the way pip does, and hand the relevant parts to uv.

uv does not read pip.conf.  Corporate mirrors and local wheel folders are configured there, so
the uv backend reads the same files in pip's order (global, user, site, ``PIP_CONFIG_FILE``,
then ``PIP_*`` variables; ``[install]`` overrides ``[global]``; later sources replace earlier
values) and passes find-links, index URLs, constraints, trusted hosts and the CA bundle on.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEYS = (
    "index-url",
    "extra-index-url",
    "find-links",
    "constraint",
    "cert",
    "trusted-host",
    "no-index",
)


@dataclass(frozen=True)
class PipConfig:
    values: dict[str, str] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    # uv's default is to take each package from the first index that has it; pip merges all
    # indexes and picks the best version.  We ask uv for pip's behaviour unless the user chose
    # a strategy for uv themselves (UV_INDEX_STRATEGY).
    uv_strategy_chosen: bool = False

    def _list(self, key: str) -> list[str]:
        return self.values.get(key, "").split()

    @property
    def index_url(self) -> str | None:
        return self.values.get("index-url") or None

    @property
    def extra_index_urls(self) -> list[str]:
        return self._list("extra-index-url")

    @property
    def find_links(self) -> list[str]:
        return self._list("find-links")

    @property
    def constraints(self) -> list[str]:
        return self._list("constraint")

    @property
    def trusted_hosts(self) -> list[str]:
        return self._list("trusted-host")

    @property
    def no_index(self) -> bool:
        return self.values.get("no-index", "").lower() in ("1", "true", "yes", "on")

    def uv_args(self) -> list[str]:
        """Command-line flags for ``uv pip install`` / ``uv pip compile``."""
        args: list[str] = []
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        for path in self.constraints:
            args += ["--constraint", path]
        for host in self.trusted_hosts:
            args += ["--allow-insecure-host", host]
        if self.no_index:
            args.append("--no-index")
        elif self.extra_index_urls and not self.uv_strategy_chosen:
            args += ["--index-strategy", "unsafe-best-match"]
        return args

    def uv_env(self) -> dict[str, str]:
        cert = self.values.get("cert")
        return {"SSL_CERT_FILE": cert} if cert else {}

    def fingerprint(self) -> dict[str, Any]:
        """What changes resolution: the URLs, the wheels in local find-links folders, the
        constraint files' contents.  Part of the cache key."""
        local: dict[str, list[str]] = {}
        for link in self.find_links:
            folder = Path(link.removeprefix("file://"))
            if folder.is_dir():
                local[link] = sorted(p.name for p in folder.iterdir())
        constraints = {}
        for path in self.constraints:
            try:
                constraints[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            except OSError:
                constraints[path] = "missing"
        return {
            "values": {k: v for k, v in sorted(self.values.items()) if k != "cert"},
            "uv_strategy_chosen": self.uv_strategy_chosen,
            "find_links": local,
            "constraints": constraints,
        }


def config_files(environ: dict[str, str]) -> list[Path]:
    """pip's configuration files on this platform, lowest priority first."""
    env_file = environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []  # pip: PIP_CONFIG_FILE=/dev/null disables every config file
    home = Path(environ.get("HOME") or Path.home())
    files: list[Path] = []
    if sys.platform == "win32":
        files.append(Path(environ.get("ProgramData", "C:/ProgramData")) / "pip" / "pip.ini")
        appdata = Path(environ.get("APPDATA", home / "AppData" / "Roaming"))
        files += [home / "pip" / "pip.ini", appdata / "pip" / "pip.ini"]
        site_name = "pip.ini"
    else:
        dirs = environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
        files += [Path(d) / "pip" / "pip.conf" for d in reversed(dirs.split(os.pathsep)) if d]
        files.append(Path("/etc/pip.conf"))
        if sys.platform == "darwin":
            files.append(home / "Library" / "Application Support" / "pip" / "pip.conf")
        files.append(home / ".pip" / "pip.conf")
        xdg_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
        files.append(xdg_home / "pip" / "pip.conf")
        site_name = "pip.conf"
    files.append(Path(sys.base_prefix) / site_name)
    if env_file:
        files.append(Path(env_file))
    return files


def load(environ: dict[str, str] | None = None) -> PipConfig:
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, str] = {}
    sources: list[str] = []
    for path in config_files(environ):
        if not path.is_file():
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue  # pip would refuse the file too; nothing sane to pass on
        for section in ("global", "install"):
            if parser.has_section(section):
                for key, value in parser.items(section):
                    key = key.replace("_", "-").lstrip("-")
                    if key in KEYS:
                        values[key] = " ".join(value.split())
        sources.append(str(path))
    for key in KEYS:
        var = "PIP_" + key.upper().replace("-", "_")
        if environ.get(var):
            values[key] = " ".join(environ[var].split())
            sources.append(f"${var}")
    return PipConfig(
        values=values,
        sources=tuple(sources),
        uv_strategy_chosen=bool(environ.get("UV_INDEX_STRATEGY")),
    )


__all__ = ["KEYS", "PipConfig", "config_files", "load"]
