"""The ``recenv`` command line."""

from __future__ import annotations

import argparse
import sys

from pytest_recenv import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recenv", description=__doc__)
    parser.add_argument("--version", action="version", version=f"recenv {__version__}")
    parser.parse_args(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
