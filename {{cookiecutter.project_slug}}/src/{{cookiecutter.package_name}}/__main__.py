"""Command line: ``python -m {{ cookiecutter.package_name }} data|train|index|evaluate|export|{% if cookiecutter.include_serving %}serve|{% endif %}demo``.

This module only parses arguments and routes; the work lives in the package modules.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

# Wide and unwrapped when not a terminal (CI logs, pipes): tables and paths stay on one line.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m {{ cookiecutter.package_name }}",
        description=__doc__,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="write the synthetic sample as an interactions file")
    data.add_argument(
        "--out", default="data/generated/interactions.csv", help="CSV or .parquet path"
    )
    data.add_argument("--n-users", type=int, default=2000)
    data.add_argument("--n-items", type=int, default=1000)
    data.add_argument("--seed", type=int, default=0)

    train = sub.add_parser("train", help="train the two-tower model (torchrun-compatible)")
    _train_args(train)

    index = sub.add_parser("index", help="embed items, build the faiss index, write artifacts")
    index.add_argument("--run", help="run folder (default: latest under --runs-dir)")
    index.add_argument("--runs-dir", default="runs")
    index.add_argument("--out", default="artifacts", help="artifacts folder")
    index.add_argument("--kind", default="auto", choices=["auto", "flat", "ivf", "hnsw"])
    index.add_argument("--device", default="cpu", help="cpu or cuda[:N] (GPU faiss when available)")

    evaluate = sub.add_parser(
        "evaluate", help="full-ranking metrics of every channel on the test split"
    )
    evaluate.add_argument("--run", help="run folder (default: latest under --runs-dir)")
    evaluate.add_argument("--runs-dir", default="runs")
    evaluate.add_argument("--k", type=int, nargs="+", default=[5, 10, 20, 50])
    evaluate.add_argument("--out", help="where evaluation.json/.png go (default: the run folder)")

    export = sub.add_parser(
        "export", help="towers as torch.export (.pt2) and ONNX programs, parity checked"
    )
    export.add_argument("--run", help="run folder (default: latest under --runs-dir)")
    export.add_argument("--runs-dir", default="runs")
    export.add_argument("--out", default="artifacts/export")
    _export_args(export)

    demo = sub.add_parser(
        "demo", help="data -> train -> index -> evaluate -> export on the synthetic sample"
    )
    demo.add_argument("--workdir", default=".", help="runs/ and artifacts/ are created here")
    demo.add_argument("--n-users", type=int, default=2000)
    demo.add_argument("--n-items", type=int, default=1000)
    demo.add_argument("--epochs", type=int, default=10)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="auto")
    _export_args(demo)
{%- if cookiecutter.include_serving %}

    # --- serve: added by the serving module (FastAPI) -----------------------------------------
    serve = sub.add_parser("serve", help="serve recommendations over HTTP")
    serve.add_argument(
        "--artifacts", default="artifacts", help="folder written by `index` or `demo`"
    )
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to listen beyond this machine")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--routes", help="YAML routes file overriding the built-in router rules")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
{%- endif %}
    return parser


def _export_args(p: argparse.ArgumentParser) -> None:
    """The format flags shared by ``export`` and ``demo``."""
    p.add_argument(
        "--formats",
        type=_formats,
        default="pt2,onnx",
        help="comma-separated: pt2 (torch.export), onnx, torchscript (deprecated upstream; "
        "only when asked for). Default pt2,onnx",
    )
    p.add_argument("--no-onnx", action="store_true", help="drop onnx from --formats")


def _formats(text: str) -> tuple[str, ...]:
    """``--formats`` as a tuple; an unknown name is a usage error that lists the choices."""
    from .export import parse_formats

    try:
        return parse_formats(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _export_formats(args: argparse.Namespace) -> tuple[str, ...]:
    """--formats less onnx under --no-onnx (the older flag, kept so existing scripts still run)."""
    return tuple(f for f in args.formats if not (args.no_onnx and f == "onnx"))


def _train_args(p: argparse.ArgumentParser) -> None:
    from .training import TrainConfig

    d = TrainConfig()
    p.add_argument("--config", help="JSON file of TrainConfig fields; flags given here override it")
    p.add_argument("--data", help=f"synthetic, ml-100k or a CSV/Parquet path (default {d.data})")
    p.add_argument("--split", choices=["random", "temporal"])
    for name, typ in (
        ("n_users", int),
        ("n_items", int),
        ("events_per_user", float),
        ("epochs", int),
        ("batch_size", int),
        ("lr", float),
        ("dim", int),
        ("hidden", int),
        ("temperature", float),
        ("weight_decay", float),
        ("eval_k", int),
        ("patience", int),
        ("seed", int),
        ("history_len", int),
    ):
        p.add_argument(f"--{name.replace('_', '-')}", type=typ, help=f"default {getattr(d, name)}")
    p.add_argument("--negatives", choices=["in_batch", "full"])
    p.add_argument("--no-logq", dest="logq", action="store_const", const=False)
    p.add_argument("--device", help="auto, cpu, mps, cuda or cuda:N (default auto)")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"])
    p.add_argument("--deterministic", action="store_const", const=True)
    p.add_argument("--runs-dir")
    p.add_argument("--run-id")
    p.add_argument(
        "--resume",
        help="run folder or checkpoint.pt to continue, with that run's config.json "
        "(flags given here override it)",
    )
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False)


def _train_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The config to train with, each layer overriding the one before it:

    the defaults; with --resume, the resumed run's saved ``config.json`` (so a run continues
    with the settings it started with); the --config file; the flags given on this command line.
    """
    from .training import TrainConfig

    values: dict[str, Any] = _resumed_config(args.resume) if args.resume else {}
    if args.config:
        values.update(json.loads(Path(args.config).read_text(encoding="utf-8")))
    skip = {"command", "config"}
    values.update({k: v for k, v in vars(args).items() if k not in skip and v is not None})
    return TrainConfig.from_dict(values)


def _resumed_config(resume: str) -> dict[str, Any]:
    """The ``config.json`` of the run folder ``resume`` names (or holds the checkpoint ``resume``).

    Without one (a checkpoint copied elsewhere), nothing: the defaults and flags then apply, and
    ``train`` refuses the checkpoint if they disagree with the settings it was trained with.
    """
    folder = Path(resume) if Path(resume).is_dir() else Path(resume).parent
    path = folder / "config.json"
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text(encoding="utf-8"))
    saved.pop("resume", None)  # where that run came from is not where this one resumes
    return saved


def _run_dir(args: argparse.Namespace) -> Path:
    from .pipeline import latest_run

    return Path(args.run) if args.run else latest_run(args.runs_dir)


def _print_metrics(results: dict[str, dict[str, float]], title: str) -> None:
    from .evaluation import format_table

    console.print(format_table(results, title=title))


def demo(args: argparse.Namespace) -> int:
    """The whole pipeline on the synthetic sample, timed step by step."""
    from .data import generate_synthetic, write_interactions
    from .pipeline import run_evaluate, run_export, run_index
    from .training import TrainConfig, train

    work = Path(args.workdir)
    t0 = time.perf_counter()
    data = generate_synthetic(n_users=args.n_users, n_items=args.n_items, seed=args.seed)
    csv = write_interactions(data, work / "data" / "generated" / "interactions.csv")
    console.print(
        f"[bold]data[/]    {len(data)} events, {data.n_users} users, {data.n_items} items -> {csv}"
    )
    cfg = TrainConfig(
        data=str(csv),
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        runs_dir=str(work / "runs"),
    )
    metrics = train(cfg)
    console.print(
        f"[bold]train[/]   best epoch {metrics.best_epoch}/{metrics.epochs_run}, "
        f"{metrics.samples_per_second:,.0f} samples/s on {metrics.device} -> {metrics.run_dir}"
    )
    run_dir = Path(metrics.run_dir)
    info = run_index(
        run_dir, work / "artifacts", device=args.device if args.device.startswith("cuda") else "cpu"
    )
    console.print(
        f"[bold]index[/]   {info['index_type']} over {info['n_items']} items -> {info['artifacts']}"
    )
    results = run_evaluate(run_dir)
    exported = run_export(run_dir, work / "artifacts" / "export", _export_formats(args))
    worst = max(exported["max_abs_diff"].values())
    console.print(f"[bold]export[/]  {len(exported['files'])} files, parity max |diff| {worst:.2e}")
    _print_metrics(results, "Test metrics (full ranking, seen items excluded)")
    console.print(f"demo finished in {time.perf_counter() - t0:.1f}s")
    console.print("next:\n" + "\n".join(f"  {step}" for step in next_steps(work)), markup=False)
    return 0


def next_steps(workdir: Path) -> list[str]:
    """What to run after the demo: commands that work as printed, from the user's shell.

    Through ``recenv run`` where the recenv CLI is on PATH (it finds this environment again from
    environment.yml); else with the interpreter that ran the demo, by its full path, since a bare
    ``python`` may be another one. ``nox -l`` only where nox and recenv are both on PATH.
    """
    recenv = shutil.which("recenv") is not None
    python = "recenv run -- python" if recenv else shlex.quote(sys.executable)
    steps = [(f"{python} -m pytest", "this project's tests")]
{%- if cookiecutter.include_serving %}
    where = workdir / "artifacts"
    artifacts = "" if workdir == Path(".") else f" --artifacts {shlex.quote(str(where))}"
    serve = f"{python} -m {{ cookiecutter.package_name }} serve{artifacts}"
    steps.insert(0, (serve, "recommendations over HTTP on 127.0.0.1:8000"))
{%- endif %}
    if recenv and shutil.which("nox"):
        steps.append(("nox -l", "every task: tests, lint, demo, bench, ..."))
    width = max(len(command) for command, _ in steps)
    return [f"{command.ljust(width)}  # {why}" for command, why in steps]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .data import DatasetUnavailable

    try:
        return _route(args)
    except (
        ValueError,
        KeyError,
        FileNotFoundError,
        FileExistsError,
        RuntimeError,
        DatasetUnavailable,
    ) as exc:
        # User-facing errors: the message says what was expected and how to fix it.
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2


def _route(args: argparse.Namespace) -> int:
    match args.command:
        case "data":
            from .data import generate_synthetic, write_interactions

            data = generate_synthetic(n_users=args.n_users, n_items=args.n_items, seed=args.seed)
            path = write_interactions(data, args.out)
            console.print(
                f"wrote {len(data)} events ({data.n_users} users, {data.n_items} items) to {path}"
            )
        case "train":
            from .training import train

            metrics = train(_train_config(args))
            if metrics.test:
                _print_metrics(
                    {"two_tower (val)": metrics.val, "two_tower (test)": metrics.test}, "Two-tower"
                )
                console.print(f"run folder: {metrics.run_dir}")
        case "index":
            from .pipeline import run_index

            info = run_index(_run_dir(args), Path(args.out), kind=args.kind, device=args.device)
            console.print_json(data=info)
        case "evaluate":
            from .pipeline import run_evaluate

            run_dir = _run_dir(args)
            results = run_evaluate(run_dir, Path(args.out) if args.out else None, args.k)
            _print_metrics(results, f"Test metrics - {run_dir}")
        case "export":
            from .pipeline import run_export

            console.print_json(
                data=run_export(_run_dir(args), Path(args.out), _export_formats(args))
            )
        case "demo":
            return demo(args)
{%- if cookiecutter.include_serving %}
        # --- serve: wired by the serving module ----------------------------------------------
        case "serve":
            from .serving import serve

            serve(
                host=args.host,
                port=args.port,
                artifacts=args.artifacts,
                routes=args.routes,
                workers=args.workers,
                log_level=args.log_level,
            )
{%- endif %}
        case _:
            raise SystemExit(f"unknown command {args.command!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
