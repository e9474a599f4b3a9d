"""Jinja filters that render answers as valid literals of the file they land in.

`project_name` may hold quotes, apostrophes, backslashes, unicode or Jinja-looking text;
writing it through one of these filters keeps the generated Python, TOML and YAML valid.
"""

from __future__ import annotations

import json

from jinja2.ext import Extension


_PY_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


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


def md_text(value: object) -> str:
    """Text safe for a Markdown heading or paragraph (no HTML, no stray emphasis)."""
    text = str(value)
    for ch in "\\`*_<>[]":
        text = text.replace(ch, "\\" + ch)
    return text


class Literals(Extension):
    """Registers py_str, toml_str, yaml_str and md_text."""

    def __init__(self, environment):  # type: ignore[no-untyped-def]
        super().__init__(environment)
        environment.filters.update(
            py_str=py_str, toml_str=toml_str, yaml_str=yaml_str, md_text=md_text
        )


literals = Literals
