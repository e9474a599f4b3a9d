"""``recenv`` subcommands beyond check/build/key/run: lock, drift, gc, doctor, dockerfile."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_FILE = "environment.yml"


def backend_chain_arg(args: argparse.Namespace) -> list[str] | None:
    """``--backend a,b`` as a list; None leaves the choice to $RECENV_BACKENDS or the default."""
    return args.backend.split(",") if args.backend else None


def _non_negative(text: str) -> float:
    """``--older-than``/``--max-size``: a negative (or NaN) budget would remove every env."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"expected a number >= 0, found {text!r}")
    return value


def _env_files(files: list[str]) -> list[str]:
    """pre-commit passes whatever matched: map lock files back to their environment file."""
    out: list[str] = []
    for name in files or [DEFAULT_FILE]:
        if name.endswith(".lock.json"):
            for ext in (".yml", ".yaml"):
                candidate = name[: -len(".lock.json")] + ext
                if Path(candidate).is_file():
                    name = candidate
                    break
        if name not in out:
            out.append(name)
    return out


def _cmd_lock(args: argparse.Namespace) -> int:
    from pytest_recenv.env.builders import write_uv_lock
    from pytest_recenv.env.locks import lock_problems

    files = _env_files(args.files)
    if args.check:
        from pytest_recenv.env.locks import uv_lock_path

        if args.missing_ok:  # a project without a lock has nothing to keep fresh
            files = [name for name in files if uv_lock_path(Path(name)).is_file()]
        problems = [p for name in files for p in lock_problems(Path(name), display=name)]
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    for name in files:
        out = write_uv_lock(Path(name), python_policy=args.python_policy)
        packages = len(json.loads(out.read_text())["packages"])
        print(f"{out}: {packages} packages locked")
    return 0


def _cmd_drift(args: argparse.Namespace) -> int:
    from pytest_recenv.env.locks import drift, installed_distributions
    from pytest_recenv.env.spec import load_spec
    from pytest_recenv.errors import RecenvError

    spec = load_spec(Path(args.file))
    python = Path(args.python) if args.python else Path(sys.executable)
    given = f"--python {args.python}" if args.python else None
    if args.prefix:
        given, prefix = f"--prefix {args.prefix}", Path(args.prefix)
        if not prefix.is_dir():
            raise RecenvError(
                f"{given}: expected an environment folder, found nothing there; pass an "
                "environment's prefix (what 'recenv build' prints)"
            )
        candidates = [prefix / "bin" / "python", prefix / "python.exe"]
        candidates.append(prefix / "Scripts" / "python.exe")  # a venv on Windows
        python = next((c for c in candidates if c.exists()), candidates[0])
        if not python.exists():
            raise RecenvError(
                f"{given}: expected an interpreter at {python}, found none; is it an "
                "environment's prefix (what 'recenv build' prints)?"
            )
    problems = drift(spec, installed_distributions(python, given), args.file)
    for problem in problems:
        print(problem)
    if problems:
        print(
            f"recenv drift: {len(problems)} difference{'s' * (len(problems) != 1)} between "
            f"{args.file} and {python}",
            file=sys.stderr,
        )
    return 1 if problems else 0


def _cmd_gc(args: argparse.Namespace) -> int:
    from pytest_recenv.env.builders import cache_root
    from pytest_recenv.env.gc import run_gc

    root = cache_root(args.cache_dir)
    for line in run_gc(root, args.older_than, args.max_size, args.dry_run):
        print(line)
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from pytest_recenv.env.doctor import doctor_report

    libraries = args.json if args.libraries is None else args.libraries
    report = doctor_report(backend_chain_arg(args), libraries=libraries)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    python = report["python"]
    print(f"recenv {report['recenv']} on python {python['version']} ({python['executable']})")
    print("backends (in chain order):")
    for b in report["backends"]:
        state = "usable" if b["usable"] else "unusable"
        print(f"  {b['name']:10} {state:8} {b['version'] or ''}  {b['detail']}")
    print("interpreters:")
    for i in report["interpreters"]:
        print(f"  {i['implementation']} {i['version']} ({i['path']}, {i['source']})")
    pip = report["pip_config"]
    print(f"pip config passed to uv: {' '.join(pip['uv_args']) or '(none)'}")
    print(f"  read from: {', '.join(pip['sources']) or '(no pip config found)'}")
    cache = report["cache"]
    print(f"cache: {cache['path']} ({cache['environments']} environments; prune with 'recenv gc')")
    hardware = report["hardware"]
    print(f"hardware: {hardware.get('summary') or hardware.get('error')}")
    if libraries:
        for lib in ("torch", "faiss"):
            info = hardware.get(lib) or {}
            error = f" ({info['error']})" if info.get("error") else ""
            print(f"  {lib}: {info.get('version') or 'missing'}{error}")
    return 0


def _cmd_dockerfile(args: argparse.Namespace) -> int:
    from pytest_recenv.env.dockerfile import check_dockerfile

    files = args.files or ["Dockerfile"]
    problems = [p for name in files for p in check_dockerfile(Path(name), display=name)]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lock", help="write the uv lock (environment.lock.json), or --check it")
    p.add_argument("files", nargs="*", help=f"environment files (default: {DEFAULT_FILE})")
    p.add_argument(
        "--check",
        action="store_true",
        help="only check the lock is fresh for the spec (the recenv-lock hook)",
    )
    p.add_argument(
        "--missing-ok",
        action="store_true",
        help="with --check: pass for environment files that have no lock yet",
    )
    p.add_argument("--python-policy", choices=("strict", "warn"), default="strict")
    p.set_defaults(handler=_cmd_lock)

    p = sub.add_parser("drift", help="compare the spec with an installed environment")
    p.add_argument("file", nargs="?", default=DEFAULT_FILE)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--python", help="interpreter of the env (default: this one)")
    where.add_argument("--prefix", help="prefix of the env (its bin/python is used)")
    p.set_defaults(handler=_cmd_drift)

    p = sub.add_parser("gc", help="list cached environments; prune by age or size")
    p.add_argument(
        "--older-than",
        type=_non_negative,
        metavar="DAYS",
        help="remove environments not used for DAYS days",
    )
    p.add_argument(
        "--max-size",
        type=_non_negative,
        metavar="GIB",
        help="keep the most recently used environments within GIB",
    )
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    p.add_argument(
        "--cache-dir", help="cache folder (default: $RECENV_CACHE_DIR or the user cache dir)"
    )
    p.set_defaults(handler=_cmd_gc)

    p = sub.add_parser("doctor", help="tools, backends, interpreters, pip config, hardware")
    p.add_argument("--backend", help="backend chain to report on")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON (schema in docs/environments.md), nothing else on stdout",
    )
    p.add_argument(
        "--libraries",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also probe torch and faiss in a child process (default: with --json only)",
    )
    p.set_defaults(handler=_cmd_doctor)

    p = sub.add_parser("dockerfile", help="conda rules for Dockerfiles that hadolint lacks")
    p.add_argument("files", nargs="*", help="Dockerfiles (default: Dockerfile)")
    p.set_defaults(handler=_cmd_dockerfile)
