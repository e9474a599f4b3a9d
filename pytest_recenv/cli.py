"""Old import path of the ``recenv`` command line (:mod:`pytest_recenv.env.cli`): console scripts
installed before the move still say ``from pytest_recenv.cli import main``."""

import sys

from pytest_recenv.env.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
