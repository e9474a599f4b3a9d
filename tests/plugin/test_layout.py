"""The package's layout holds: no import cycles (imports inside functions included), the CLI
starts without pytest, and the public names of DESIGN.md still import from ``pytest_recenv``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import pytest_recenv

PACKAGE = Path(pytest_recenv.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """Every module of the package ``name`` imports, wherever the import statement is: at the
    top, inside a function, under ``if TYPE_CHECKING``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module
                for alias in node.names
            ]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name}
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_walk_sees_imports_inside_functions_and_type_checking_blocks() -> None:
    # the walk itself: a cycle hidden in a function must count
    assert "pytest_recenv.env.builders" in GRAPH["pytest_recenv.env.cli"]  # inside _cmd_build
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_of_the_package_takes_part_in_an_import_cycle() -> None:
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_module_imports_from_the_package_init_which_re_exports_lazily() -> None:
    # pytest_recenv/__init__ imports its re-exports on first use; a module importing a name from
    # it would close a cycle through that lazy import
    users = sorted(n for n, targets in GRAPH.items() if "pytest_recenv" in targets)
    assert users == [], f"modules importing from pytest_recenv/__init__: {users}"


def test_the_two_products_do_not_import_each_other_except_doctor_and_names() -> None:
    # env -> hardware only where `recenv doctor` reports the hardware; hardware -> env only for
    # the one name normaliser
    def side(module: str) -> str:
        return [*module.split("."), ""][1]

    crossing = sorted(
        (a, b)
        for a, targets in GRAPH.items()
        for b in targets
        if {side(a), side(b)} == {"env", "hardware"}
    )
    assert crossing == [
        ("pytest_recenv.env.doctor", "pytest_recenv.hardware.nvml"),
        ("pytest_recenv.env.doctor", "pytest_recenv.hardware.probe_child"),
        ("pytest_recenv.env.doctor", "pytest_recenv.hardware.report"),
        ("pytest_recenv.hardware.text", "pytest_recenv.env.names"),
    ]


def _modules_after(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import pytest_recenv.env.cli",
        "from pytest_recenv.env.cli import build_parser; build_parser()",
        "import pytest_recenv; pytest_recenv.RecenvError, pytest_recenv.load_spec",
    ],
)
def test_the_cli_and_the_package_import_without_pytest(code: str) -> None:
    loaded = _modules_after(code)
    assert "pytest_recenv.env.cli" in loaded or "pytest_recenv.errors" in loaded
    assert "pytest" not in loaded and "_pytest" not in loaded


def test_recenv_help_runs_without_importing_pytest() -> None:
    loaded = _modules_after(
        "import contextlib, io, sys\n"
        "from pytest_recenv.env.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])"
    )
    assert "pytest" not in loaded


@pytest.mark.parametrize(
    "name",
    [
        "__version__",
        "RecenvWarning",
        "RecenvPinningWarning",
        "device_params",
        "HardwareReport",
        "RecenvError",
        "ensure_env",
        "load_spec",
    ],
)
def test_public_names_import_from_the_package(name: str) -> None:
    assert getattr(pytest_recenv, name) is not None
    assert name in dir(pytest_recenv)


def test_the_warning_base_is_a_pytest_warning_and_an_unknown_name_is_an_attribute_error() -> None:
    assert issubclass(pytest_recenv.RecenvPinningWarning, pytest.PytestWarning)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pytest_recenv.nope  # noqa: B018


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("pytest_recenv.spec", "pytest_recenv.env.spec"),
        ("pytest_recenv.builders", "pytest_recenv.env.builders"),
        ("pytest_recenv.dockerfile", "pytest_recenv.env.dockerfile"),
    ],
)
def test_old_module_paths_give_the_moved_modules(old: str, new: str) -> None:
    # the generated project's tests import pytest_recenv.dockerfile; template tests the others
    import importlib

    assert importlib.import_module(old) is importlib.import_module(new)


def test_the_error_types_still_import_from_their_documented_home_before_the_split() -> None:
    # docs/environments.md said "Errors are pytest_recenv.spec.RecenvError" before errors.py
    from pytest_recenv import errors
    from pytest_recenv.spec import BuildError, Problem, RecenvError, SpecError

    assert (RecenvError, BuildError, SpecError, Problem) == (
        errors.RecenvError,
        errors.BuildError,
        errors.SpecError,
        errors.Problem,
    )


@pytest.mark.parametrize(("xdist", "registered"), [((), False), (("-p", "xdist.plugin"), True)])
def test_the_xdist_hooks_are_registered_only_where_xdist_is_loaded(
    pytester: pytest.Pytester,
    run: Callable[..., pytest.RunResult],
    xdist: tuple[str, ...],
    registered: bool,
) -> None:
    pytester.makepyfile(
        "def test_hooks(pytestconfig):\n"
        "    print('xdist hooks:', pytestconfig.pluginmanager.has_plugin('recenv-xdist-hooks'))\n"
    )
    result = run(*xdist, "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*xdist hooks: {registered}*"])


def test_marker_help_and_usage_come_from_the_parsers_signatures() -> None:
    from pytest_recenv.hardware.markers import MARKERS

    assert [m.help_line.split(":")[0] for m in MARKERS.values()] == [
        "cuda(min_devices=1, min_memory=None, min_capability=None)",
        "multi_gpu(n)",
        "faiss",
        "faiss_gpu(min_devices=1)",
    ]
    assert MARKERS["multi_gpu"].usage == "multi_gpu(n) with n >= 2"
