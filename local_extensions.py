"""Jinja filters of the template.

- Literals: `project_name` may hold quotes, apostrophes, backslashes, unicode or Jinja-looking
  text; writing it through one of these filters keeps the generated Python, TOML and YAML valid.
- RecenvSource: the default `recenv_requirement` ("auto") resolved to where this template came
  from, so a default bake builds its environment wherever it was baked (docs/template.md).
- QuietHookFailure: no cookiecutter traceback after our hook said what was wrong (below).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
from pathlib import Path

from jinja2.ext import Extension

_PY_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class QuietHookFailure(logging.Filter):
    """cookiecutter logs a failed hook with ``logger.exception``: after our pre-gen hook printed
    each invalid answer, what it expected and how to fix it, the user got a traceback of
    cookiecutter's own call stack (``FailedHookException``), which tells them nothing. This
    filter keeps cookiecutter's line ("Stopping generation because ...") and drops only that
    traceback; our hook's own output (a traceback too, were the hook itself broken) is untouched.
    cookiecutter imports this module (``_extensions``) before it runs any hook."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if type(error).__name__ == "FailedHookException":
            record.exc_info, record.exc_text = None, None
        return True


_HOOKS_LOG = logging.getLogger("cookiecutter.hooks")
if not any(isinstance(f, QuietHookFailure) for f in _HOOKS_LOG.filters):
    _HOOKS_LOG.addFilter(QuietHookFailure())


def py_str(value: object) -> str:
    """A Python string literal quoted the way ``ruff format`` keeps it: double quotes unless the
    text holds more double than single quotes (then single, fewer escapes), so a freshly
    generated project passes its own ruff-format pre-commit hook."""
    text = str(value)
    quote = "'" if text.count('"') > text.count("'") else '"'
    out = []
    for ch in text:
        if ch in ("\\", quote):
            out.append("\\" + ch)
        elif ch in _PY_ESCAPES:
            out.append(_PY_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return quote + "".join(out) + quote


def yaml_str(value: object) -> str:
    """A double-quoted YAML scalar: JSON string escapes are valid YAML 1.2 escapes (its
    double-quoted scalars are a superset of JSON strings)."""
    return json.dumps(str(value), ensure_ascii=False)


def toml_str(value: object) -> str:
    """A TOML basic string. JSON escapes are TOML escapes, except non-BMP surrogates."""
    out = []
    for ch in str(value):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def sh_str(value: object) -> str:
    """A POSIX shell word (single-quoted where needed), for commands the README shows."""
    return shlex.quote(str(value))


def md_text(value: object) -> str:
    """Text safe for a Markdown heading or paragraph (no HTML, no stray emphasis)."""
    text = str(value)
    for ch in "\\`*_<>[]":
        text = text.replace(ch, "\\" + ch)
    return text


class Literals(Extension):
    """Registers py_str, toml_str, yaml_str, sh_str and md_text."""

    def __init__(self, environment):  # type: ignore[no-untyped-def]
        super().__init__(environment)
        environment.filters.update(
            py_str=py_str, toml_str=toml_str, yaml_str=yaml_str, sh_str=sh_str, md_text=md_text
        )


literals = Literals


# --- recenv_requirement=auto ------------------------------------------------------------------

AUTO = "auto"
DISTRIBUTION = "pytest-recenv"
_SCP_LIKE = re.compile(r"^(?P<user>[\w.-]+@)?(?P<host>[\w.-]+):(?!//)(?P<path>.+)$")


class SourceError(Exception):
    """The template's source cannot give a requirement that installs pytest-recenv."""


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceError(f"`git {' '.join(args)}` failed in {repo}: {exc}") from None
    if done.returncode != 0:
        raise SourceError(f"`git {' '.join(args)}` failed in {repo}: {done.stderr.strip()}")
    return done.stdout.strip()


def pip_git_url(remote: str) -> str:
    """A git remote as pip spells it: `git+<scheme>://...`; scp-like `git@host:org/repo.git`
    becomes `git+ssh://git@host/org/repo.git`."""
    if remote.startswith("git+"):
        return remote
    if "://" in remote:
        return "git+" + remote
    if os.path.isabs(remote):  # a clone of a folder on this machine
        return "git+" + Path(remote).as_uri()
    scp = _SCP_LIKE.match(remote)
    if scp:
        return f"git+ssh://{scp['user'] or ''}{scp['host']}/{scp['path']}"
    raise SourceError(f"git remote {remote!r} is not a URL pip can install from")


def _template_root_above_cwd() -> Path:
    """The template folder when cookiecutter was given a relative path (`cookiecutter .`).

    That path is relative to a working directory cookiecutter has left by the time it renders:
    it renders hooks inside the template folder and files inside its project folder, so the
    template is the nearest folder at or above the current one that holds cookiecutter.json.
    (`__file__` would not do: another `local_extensions` earlier on sys.path wins the import.)"""
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        if (folder / "cookiecutter.json").is_file():
            return folder
    raise SourceError(f"no cookiecutter.json at or above {cwd}")


def template_source(context: dict) -> tuple[str, Path]:
    """('local' | 'git', folder of the template) from cookiecutter's own context keys.

    cookiecutter passes a local template folder through unchanged as `_repo_dir`; a git source
    (`gh:org/repo`, an https/ssh/file URL) is cloned into its cookiecutters_dir first, so the
    repo dir is then a clone that is not the `_template` argument."""
    template = str(context.get("_template") or "")
    repo_dir = str(context.get("_repo_dir") or "")
    if not repo_dir:
        raise SourceError("cookiecutter did not say where the template is (cookiecutter < 2.2?)")
    folder = Path(repo_dir) if os.path.isabs(repo_dir) else _template_root_above_cwd()
    local = bool(template) and (
        repo_dir == template or repo_dir.startswith(template.rstrip("/\\") + os.sep)
    )
    return ("local" if local else "git"), folder


def resolve_requirement(context: dict) -> str:
    """The pip requirement for pytest-recenv that a bake writes for the answer "auto".

    - a local checkout: `pytest-recenv @ file:///.../recsys-template` (its working tree);
    - a git source: `pytest-recenv @ git+<url>@<ref>`, the ref being the `--checkout` tag when
      one was given, else the commit the clone is at (a branch moves; a commit does not);
    - anything else (a zip archive): SourceError, with the fix.
    Any other answer is returned as it was given."""
    answer = str(context.get("recenv_requirement", AUTO)).strip()
    if answer != AUTO:
        return answer
    kind, folder = template_source(context)
    if kind == "local":
        return f"{DISTRIBUTION} @ {folder.resolve().as_uri()}"
    if not (folder / ".git").exists():
        raise SourceError(
            f"template {context.get('_template')!r} is neither a local checkout nor a git "
            "repository (a zip archive?), so there is no source to install pytest-recenv from"
        )
    url = pip_git_url(_git(folder, "remote", "get-url", "origin"))
    commit = _git(folder, "rev-parse", "HEAD")
    checkout = str(context.get("_checkout") or "")
    tags = _git(folder, "tag", "--points-at", "HEAD").split() if checkout else []
    return f"{DISTRIBUTION} @ {url}@{checkout if checkout in tags else commit}"


def recenv_requirement(context: dict) -> str:
    """Filter: `{{ cookiecutter | recenv_requirement }}`; an unresolvable source renders as a
    text the pre-gen hook refuses (it calls `recenv_source_problem` to say why)."""
    try:
        return resolve_requirement(context)
    except SourceError:
        return AUTO


def recenv_source_problem(context: dict) -> str:
    """Filter: "" when `recenv_requirement` resolves, else the reason and the fix."""
    try:
        resolve_requirement(context)
    except SourceError as exc:
        return (
            f"recenv_requirement 'auto': {exc}. Pass recenv_requirement='pytest-recenv>=0.1' "
            "(a release on your package index) or "
            "'pytest-recenv @ git+https://host/org/recsys-template@<tag>'."
        )
    return ""


def recenv_resolved(context: dict) -> dict:
    """Filter: the context with `recenv_requirement` resolved, plus `_recenv_source_problem`
    (for the pre-gen hook, which validates what the files will get)."""
    problem = recenv_source_problem(context)
    return {
        **context,
        "recenv_requirement": recenv_requirement(context),
        "_recenv_source_problem": problem,
    }


class RecenvSource(Extension):
    """Registers recenv_requirement, recenv_source_problem and recenv_resolved."""

    def __init__(self, environment):  # type: ignore[no-untyped-def]
        super().__init__(environment)
        environment.filters.update(
            recenv_requirement=recenv_requirement,
            recenv_source_problem=recenv_source_problem,
            recenv_resolved=recenv_resolved,
        )


source = RecenvSource
