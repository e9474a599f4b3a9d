"""Old import path of :mod:`pytest_recenv.env.builders`: importing it gives that module itself, so
existing imports keep working (the generated project's tests and the template tests use it)."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("pytest_recenv.env.builders")
