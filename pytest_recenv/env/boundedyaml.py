"""Read a YAML file with bounded work, keeping ruamel.yaml's line numbers.

``recenv check`` runs in pre-commit hooks on whatever is committed, so one file may cost only so
much: at most ``MAX_BYTES`` are read, aliases are refused (nine lines of them expand to 9^9
strings, the "billion laughs"), and nesting stops at ``MAX_DEPTH`` (ruamel.yaml composes and
constructs recursively, so 250 levels end in a ``RecursionError``). Each refusal is a
``Refused(line, message)``; ruamel.yaml's own errors pass through.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from stat import S_ISREG
from typing import Any, BinaryIO

# A conda export of 1,000 packages is about 40 KiB; ruamel.yaml's round-trip loader reads
# ~250 KiB a second, so a file at the cap checks in about a second.
MAX_BYTES = 256 * 1024
# An environment file nests 4 collections deep (the file, dependencies, a 'pip:' mapping, its
# list).
MAX_DEPTH = 20


def read_text(path: Path) -> str:
    """The file as UTF-8 text; ``Refused`` past ``MAX_BYTES`` (only that much is ever read)."""
    with path.open("rb") as fh:
        raw = fh.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise Refused(1, _too_big(fh))
    return raw.decode("utf-8")


def load(text: str) -> Any:
    """ruamel.yaml's round-trip load (values keep ``.lc`` line numbers), aliases and deep
    nesting refused before any node is built."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.Composer = _bounded_composer()
    return yaml.load(text)


class Refused(Exception):
    """The input is refused before it is parsed further; ``line`` and ``message`` say why."""

    def __init__(self, line: int, message: str) -> None:
        self.line, self.message = line, message


@functools.cache
def _bounded_composer() -> type:
    from ruamel.yaml.composer import Composer
    from ruamel.yaml.events import AliasEvent, CollectionStartEvent

    class BoundedComposer(Composer):
        """Refuses aliases (a few lines of them expand to gigabytes: the "billion laughs") and
        nesting past ``MAX_DEPTH``, at the line where they start, before any node is built."""

        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.parser.peek_event()
            line = event.start_mark.line + 1
            if isinstance(event, AliasEvent):
                anchor = self.anchors.get(event.anchor)
                where = f" (its anchor '&{event.anchor}' is on line {anchor.start_mark.line + 1})"
                raise Refused(
                    line,
                    f"YAML alias '*{event.anchor}'{where if anchor else ''}: recenv refuses "
                    "anchors and aliases, which let a few lines expand to gigabytes, and conda's "
                    "own environment files never need them; write the value out",
                )
            if isinstance(event, CollectionStartEvent):
                if self.depth >= MAX_DEPTH:
                    raise Refused(
                        line,
                        f"YAML nested more than {MAX_DEPTH} levels deep; an environment file "
                        "needs 4 (the file, dependencies, a 'pip:' mapping, its list); flatten it",
                    )
                self.depth += 1
                try:
                    return super().compose_node(parent, index)
                finally:
                    self.depth -= 1
            return super().compose_node(parent, index)

    return BoundedComposer


def _too_big(fh: BinaryIO) -> str:
    stat = os.fstat(fh.fileno())
    if S_ISREG(stat.st_mode):
        size = f"{stat.st_size / (1 << 20):.1f} MiB"
    else:  # a pipe or a device has no size; we read one byte past the limit
        size = f"over {MAX_BYTES // 1024} KiB"
    return (
        f"the file is {size}; recenv reads environment files of up to {MAX_BYTES // 1024} KiB "
        "(a conda export of 1,000 packages is about 40 KiB); check that this is the environment "
        "file, or move long pip lists into a '-r requirements.txt' file"
    )
