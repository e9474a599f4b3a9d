"""Command-line flags declared once, on the config dataclasses.

A config field made with ``setting(default, "help", choices=..., at_least=...)`` is a flag of
every command that takes that config: ``--field-name`` (``--name/--no-name`` for booleans), its
type from the annotation, its help, default and choices from the field. ``problems`` checks a
config's values against the same choices and bounds, so the command line, the validation and
``--help`` cannot disagree. A new model's config declares its fields the same way and its
command calls ``add_flags(parser, ThatConfig)``.

Flags default to "not given" (None), so a command can layer the dataclass defaults, a saved or
``--config`` file and then only the flags typed (``given``).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Collection, Iterator, Mapping
from typing import Any


def setting(
    default: Any,
    help: str,
    *,
    choices: Collection[str] = (),
    at_least: float | None = None,
    above: float | None = None,
) -> Any:
    """A config field that is also a command-line flag (see the module docstring)."""
    metadata = {"help": help, "choices": tuple(choices), "at_least": at_least, "above": above}
    return dataclasses.field(default=default, metadata=metadata)


def _flag_fields(
    cls: type, only: Collection[str] | None = None
) -> Iterator[tuple[dataclasses.Field[Any], type]]:
    """The fields of ``cls`` made with ``setting``, with their scalar type."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if "help" in f.metadata and (only is None or f.name in only):
            yield f, _scalar(hints[f.name], f"{cls.__name__}.{f.name}")


def _scalar(hint: Any, where: str) -> type:
    """``int`` for ``int``, ``str`` for ``str | None``; a flag holds one scalar."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = (a for a in typing.get_args(hint) if a is not type(None))
    if hint not in (bool, int, float, str):
        raise TypeError(f"{where}: a flag holds bool, int, float or str, not {hint}")
    return hint


def add_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    only: Collection[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """One flag per ``setting`` field of ``cls`` (or of those named in ``only``).

    ``defaults`` gives a command its own default for a field (the demo trains fewer epochs):
    that value is then passed as if typed, and ``--help`` shows it.
    """
    defaults = dict(defaults or {})
    for f, kind in _flag_fields(cls, only):
        default = defaults.pop(f.name, None)
        shown = f.default if default is None else default
        text = f.metadata["help"] + ("" if shown is None else f" (default: {shown})")
        name = "--" + f.name.replace("_", "-")
        if kind is bool:
            parser.add_argument(
                name, action=argparse.BooleanOptionalAction, default=default, help=text
            )
        else:
            choices = f.metadata["choices"] or None
            parser.add_argument(name, type=kind, choices=choices, default=default, help=text)
    if defaults:
        raise TypeError(f"defaults for fields that are not flags of {cls.__name__}: {defaults}")


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The ``cls`` fields set on this command line (flags left out are not in the dict)."""
    return {
        f.name: getattr(args, f.name)
        for f, _ in _flag_fields(cls)
        if getattr(args, f.name, None) is not None
    }


def problems(config: object) -> list[str]:
    """Each value of ``config`` outside its field's choices or bounds, as ``name=value: expected ...``."""
    found = []
    for f, _ in _flag_fields(type(config)):
        value, meta = getattr(config, f.name), f.metadata
        if value is None:
            continue
        if meta["choices"] and value not in meta["choices"]:
            expected = " or ".join(repr(c) for c in meta["choices"])
            found.append(f"{f.name}={value!r}: expected {expected}")
        elif meta["at_least"] is not None and value < meta["at_least"]:
            found.append(f"{f.name}={value!r}: expected >= {meta['at_least']}")
        elif meta["above"] is not None and value <= meta["above"]:
            found.append(f"{f.name}={value!r}: expected > {meta['above']}")
    return found
