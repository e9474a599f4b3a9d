"""The ``recenv`` command line: check, build, key, run, lock, drift, gc, doctor, dockerfile.

Each subcommand is a thin wrapper; the work lives in spec/checks/builders.  Heavy modules are
imported inside the handlers so ``recenv check`` (a pre-commit hook) starts fast.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_recenv.env import cli_tools
from pytest_recenv.env.cli_tools import DEFAULT_FILE, backend_chain_arg
from pytest_recenv.version import __version__

if TYPE_CHECKING:
    from pytest_recenv.env.builders import Env


def _cmd_check(args: argparse.Namespace) -> int:
    from pytest_recenv.env.checks import Policy, check_file

    policy = Policy(allow_defaults=args.allow_defaults, check_name=not args.no_name_check)
    files = args.files or [DEFAULT_FILE]
    count = 0
    for name in files:
        for problem in check_file(Path(name), policy, display=name):
            print(problem)
            count += 1
    if count:
        print(
            f"recenv check: {count} error{'s' * (count != 1)} in {len(files)} "
            f"file{'s' * (len(files) != 1)}",
            file=sys.stderr,
        )
    return 1 if count else 0


def _ensure(args: argparse.Namespace, lease: bool = False) -> Env:
    from pytest_recenv.env.builders import ensure_env

    backends = backend_chain_arg(args)
    return ensure_env(
        Path(args.file),
        backends=backends,
        python_policy=args.python_policy,
        progress=not args.quiet,
        lease=lease,
    )


def _cmd_build(args: argparse.Namespace) -> int:
    env = _ensure(args)
    verb = "created" if env.created else "reused"
    print(f"{env.prefix}")
    print(f"key={env.key} backend={env.backend} {verb} in {env.seconds:.1f} s", file=sys.stderr)
    if env.created:
        from pytest_recenv.env.smoke import describe

        print(f"verified: {describe(env.verified)}", file=sys.stderr)
    return 0


def _cmd_key(args: argparse.Namespace) -> int:
    from pytest_recenv.env.builders import make_plan

    backends = backend_chain_arg(args)
    print(make_plan(Path(args.file), backends=backends, python_policy=args.python_policy).key)
    return 0


def _cmd_translate(args: argparse.Namespace) -> int:
    from pytest_recenv.env import names
    from pytest_recenv.env.builders import make_plan

    plan = make_plan(Path(args.file), backends=["uv"], python_policy=args.python_policy)
    for dep in plan.spec.conda:
        pypi = names.pypi_name(dep.name)
        if pypi is None:
            why = names.DROPPED[dep.name]
            print(f"{args.file}:{dep.line}: {dep.raw.strip():30} dropped: {why}")
        else:
            build = f" (build '{dep.build}' ignored)" if dep.build else ""
            print(f"{args.file}:{dep.line}: {dep.raw.strip():30} -> {pypi}{dep.pep440()}{build}")
    for line in plan.pip_requirements:
        print(f"pip section: {line}")
    interp = plan.interpreter.describe() if plan.interpreter else "-"
    print(f"interpreter: {interp}")
    print(f"pip config for uv: {' '.join(plan.pip.uv_args()) or '(none)'}")
    print(f"key: {plan.key}")
    from pytest_recenv.env.variants import cpu_marks, cuda_requests, spec_cuda_major

    if cuda_requests(plan.spec):
        major = spec_cuda_major(plan.spec)
        print(
            f"cuda: the spec asks for CUDA{f' {major[0]}' if major else ''}; lock and build "
            "refuse a CPU build of torch or faiss (build strings are not seen by uv)"
        )
    elif cpu_marks(plan.spec):
        print(
            "cpu: the spec asks for CPU builds; lock and build prefer a CPU torch, and warn where "
            "only a CUDA build is offered "
            "(build strings are not seen by uv)"
        )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print(
            "recenv run: expected a command after '--', like 'recenv run -- pytest -q'",
            file=sys.stderr,
        )
        return 2
    env = _ensure(args, lease=True)  # recenv gc leaves the env alone while the command runs
    import shutil

    from pytest_recenv.env import runner

    exe = shutil.which(command[0], path=str(env.bin)) or command[0]
    try:
        # passes signals on, ends the way the command ended (see runner.py)
        with env:
            return runner.run([exe, *command[1:]], env.environ())
    except FileNotFoundError:
        print(
            f"recenv run: expected '{command[0]}' in {env.bin} or on PATH, found neither; "
            f"add it to {args.file} or check the spelling",
            file=sys.stderr,
        )
        return 127
    except PermissionError:
        print(f"recenv run: '{exe}' is not executable; check its permissions", file=sys.stderr)
        return 126
    except OSError as exc:  # Exec format error, say: exit 126 as a shell would
        print(
            f"recenv run: cannot start '{exe}' ({exc.strerror}); expected a program or a script "
            "starting with '#!'",
            file=sys.stderr,
        )
        return 126


def _add_build_options(p: argparse.ArgumentParser, positional: bool = True) -> None:
    if positional:
        p.add_argument("file", nargs="?", default=DEFAULT_FILE, help="environment file")
    else:
        p.add_argument("--file", "-f", default=DEFAULT_FILE, help="environment file")
    p.add_argument(
        "--backend",
        help="comma-separated backend chain, e.g. 'uv' or "
        "'micromamba,uv' (default: $RECENV_BACKENDS or micromamba,mamba,conda,uv)",
    )
    p.add_argument(
        "--python-policy",
        choices=("strict", "warn"),
        default="strict",
        help="when the pinned Python is not installed: fail (strict) or use the "
        "closest one with a warning",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recenv", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"recenv {__version__}")
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND")

    p = sub.add_parser("check", help="check environment files (all errors at once)")
    p.add_argument("files", nargs="*", help=f"environment files (default: {DEFAULT_FILE})")
    p.add_argument(
        "--allow-defaults", action="store_true", help="allow Anaconda's 'defaults' channel"
    )
    p.add_argument(
        "--no-name-check",
        action="store_true",
        help="skip the '<project>-<stage>-<owner>' env name convention",
    )
    p.set_defaults(handler=_cmd_check)

    p = sub.add_parser("build", help="build (or reuse) the environment; prints its prefix")
    _add_build_options(p)
    p.set_defaults(handler=_cmd_build)

    p = sub.add_parser("key", help="print the cache key (for CI caches)")
    _add_build_options(p)
    p.set_defaults(handler=_cmd_key)

    p = sub.add_parser("translate", help="show how the uv backend translates the file")
    _add_build_options(p)
    p.set_defaults(handler=_cmd_translate)

    p = sub.add_parser("run", help="build or reuse the environment, then run a command in it")
    _add_build_options(p, positional=False)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    p.set_defaults(handler=_cmd_run)

    cli_tools.add_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from pytest_recenv.errors import RecenvError

    try:
        with warnings.catch_warnings():
            # ours are shown (a -W error or a test run's filters would raise them mid-build)
            warnings.filterwarnings("default", module=r"pytest_recenv\.")
            warnings.showwarning = _warning_printer(args.command_name)
            return int(args.handler(args) or 0)
    except RecenvError as exc:
        print(f"recenv {args.command_name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _warning_printer(command: str) -> Callable[..., None]:
    """Our own warnings as one line, ``recenv build: warning: <message>``, like our errors;
    any other warning as Python prints it."""
    default = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *rest: Any, **kw: Any) -> None:
        if category.__module__.startswith("pytest_recenv."):
            print(f"recenv {command}: warning: {message}", file=sys.stderr)
        else:
            default(message, category, *rest, **kw)

    return show


if __name__ == "__main__":
    sys.exit(main())
