"""Command line: ``python -m {{ cookiecutter.package_name }} data|train|train-sequence|index|evaluate|rank|export|{% if cookiecutter.include_serving %}serve|{% endif %}demo``.

This module only parses arguments and routes; the work lives in the package modules.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from .flags import add_flags, given
from .ranking.config import RankerConfig
from .training.config import TrainConfig
from .training.sequence_config import SequenceConfig

# The TrainConfig fields `data` and `demo` take as flags: the synthetic sample's, and the demo's.
SYNTHETIC_FIELDS = ("n_users", "n_items", "events_per_user", "seed")
DEMO_FIELDS = (*SYNTHETIC_FIELDS, "epochs", "device")
# The demo's ranker: one fold, two epochs (on the default sample the best validation epoch is
# the first), so the demo stays short; `rank` alone trains with the RankerConfig defaults.
DEMO_RANKER = {"folds": 1, "epochs": 2}

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
    add_flags(data, TrainConfig, only=SYNTHETIC_FIELDS)

    train = sub.add_parser("train", help="train the two-tower model (torchrun-compatible)")
    train.add_argument(
        "--config", help="JSON file of TrainConfig fields; flags given here override it"
    )
    add_flags(train, TrainConfig)

    sequence = sub.add_parser(
        "train-sequence", help="train the SASRec sequence model (torchrun-compatible)"
    )
    add_flags(sequence, SequenceConfig)
    sequence.add_argument(
        "--export", metavar="DIR", help="then export its encoder (pt2 + onnx, parity checked)"
    )

    index = sub.add_parser("index", help="embed items, build the faiss index, write artifacts")
    index.add_argument("--run", help="run folder (default: latest under --runs-dir)")
    index.add_argument("--runs-dir", default="runs")
    index.add_argument("--out", default="artifacts", help="artifacts folder")
    index.add_argument("--kind", default="auto", choices=["auto", "flat", "ivf", "hnsw"])
    index.add_argument("--device", default="cpu", help="cpu or cuda[:N] (GPU faiss when available)")
    index.add_argument(
        "--sequence-run",
        help="train-sequence run served as the sasrec channel (default: the newest one beside "
        "--run trained on the same data; 'none' for no sasrec channel)",
    )

    evaluate = sub.add_parser(
        "evaluate", help="full-ranking metrics of every channel on the test split"
    )
    evaluate.add_argument("--run", help="run folder (default: latest under --runs-dir)")
    evaluate.add_argument("--runs-dir", default="runs")
    evaluate.add_argument("--k", type=int, nargs="+", default=[5, 10, 20, 50])
    evaluate.add_argument("--out", help="where evaluation.json/.png go (default: the run folder)")

    rank = sub.add_parser(
        "rank", help="fit the retrieve -> rank chain, evaluate it, export the ranker to ONNX"
    )
    rank.add_argument("--run", help="run folder (default: latest under --runs-dir)")
    rank.add_argument("--runs-dir", default="runs")
    rank.add_argument("--out", default="artifacts/ranker", help="ranker.onnx, ranker.json, report")
    add_flags(rank, RankerConfig)

    export = sub.add_parser(
        "export", help="towers as torch.export (.pt2) and ONNX programs, parity checked"
    )
    export.add_argument("--run", help="run folder (default: latest under --runs-dir)")
    export.add_argument("--runs-dir", default="runs")
    export.add_argument("--out", default="artifacts/export")
    _export_args(export)

    demo = sub.add_parser(
        "demo",
        help="data -> train -> index -> evaluate -> export -> rank on the synthetic sample",
    )
    demo.add_argument("--workdir", default=".", help="runs/ and artifacts/ are created here")
    add_flags(demo, TrainConfig, only=DEMO_FIELDS, defaults={"epochs": 10})
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


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The config to train with, each layer overriding the one before it:

    the defaults; with --resume, the resumed run's saved ``config.json`` (so a run continues
    with the settings it started with); the --config file; the flags given on this command line.
    """
    values: dict[str, Any] = _resumed_config(args.resume) if args.resume else {}
    if args.config:
        values.update(json.loads(Path(args.config).read_text(encoding="utf-8")))
    values.update(given(args, TrainConfig))
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
    from .data import write_interactions
    from .pipeline import run_evaluate, run_export, run_index
    from .ranking.stage import run_rank
    from .training import train
    from .training.run_data import load_data

    work = Path(args.workdir)
    t0 = time.perf_counter()
    cfg = TrainConfig(**given(args, TrainConfig), runs_dir=str(work / "runs"))
    data = load_data(cfg)
    csv = write_interactions(data, work / "data" / "generated" / "interactions.csv")
    console.print(
        f"[bold]data[/]    {len(data)} events, {data.n_users} users, {data.n_items} items -> {csv}"
    )
    metrics = train(dataclasses.replace(cfg, data=str(csv)))
    console.print(
        f"[bold]train[/]   best epoch {metrics.best_epoch}/{metrics.epochs_run}, "
        f"{metrics.samples_per_second:,.0f} samples/s on {metrics.device} -> {metrics.run_dir}"
    )
    run_dir = Path(metrics.run_dir)
    info = run_index(
        run_dir, work / "artifacts", device=cfg.device if cfg.device.startswith("cuda") else "cpu"
    )
    console.print(
        f"[bold]index[/]   {info['index_type']} over {info['n_items']} items -> {info['artifacts']}"
    )
    results = run_evaluate(run_dir)
    exported = run_export(run_dir, work / "artifacts" / "export", _export_formats(args))
    worst = max(exported["max_abs_diff"].values())
    console.print(f"[bold]export[/]  {len(exported['files'])} files, parity max |diff| {worst:.2e}")
    _print_metrics(results, "Test metrics (full ranking, seen items excluded)")
    ranker_dir = work / "artifacts" / "ranker"
    device = cfg.device if cfg.device.startswith("cuda") else "cpu"
    report = run_rank(run_dir, ranker_dir, RankerConfig(**DEMO_RANKER, device=device))
    if report is not None:
        console.print(
            f"[bold]rank[/]    ranker over {', '.join(report['channels'])} candidates "
            f"(top {report['config']['n_candidates']} each), best epoch {report['best_epoch']}, "
            f"parity max |diff| {report['export']['max_abs_diff']:.2e} -> {ranker_dir}"
        )
        _print_metrics(report["test"], "Test metrics: channels and the ranked chain")
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


{% if cookiecutter.include_serving -%}
SERVE_STARTUP_FAILED = 3
"""``serve``'s exit code when it cannot start: uvicorn's own for a failed startup."""


def _serve_preflight(artifacts: str, routes: str | None) -> str | None:
    """Why the server could not start, checked before uvicorn runs, else None.

    The routes file and the artifacts' manifest (not their arrays: that load stays in the
    app's lifespan): a wrong folder or a bad routes file is then one line, instead of the
    traceback uvicorn logs for a failed lifespan.
    """
    from .artifacts import ArtifactError, read_manifest
    from .router import RouteConfigError, load_router

    try:
        load_router(routes)
        read_manifest(artifacts)
    except (ArtifactError, RouteConfigError) as exc:
        return str(exc)
    return None


{% endif -%}
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
            from .data import write_interactions
            from .training.run_data import load_data

            data = load_data(TrainConfig(**given(args, TrainConfig)))
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
        case "train-sequence":
            from .training.sequence import train_sequence

            metrics = train_sequence(SequenceConfig(**given(args, SequenceConfig)))
            if metrics.test:  # rank 0 of a torchrun launch, or the only process
                title = f"SASRec, {metrics.run_dir}"
                _print_metrics({"sasrec (val)": metrics.val, "sasrec (test)": metrics.test}, title)
                if args.export:
                    from .sequence_export import export_sequence_run

                    report = export_sequence_run(metrics.run_dir, args.export)
                    worst = max(report["max_abs_diff"].values())  # type: ignore[attr-defined]
                    console.print(f"exported to {args.export}, parity max |diff| {worst:.2e}")
        case "index":
            from .pipeline import run_index

            info = run_index(
                _run_dir(args), Path(args.out), args.kind, args.device, args.sequence_run
            )
            console.print_json(data=info)
        case "evaluate":
            from .pipeline import run_evaluate

            run_dir = _run_dir(args)
            results = run_evaluate(run_dir, Path(args.out) if args.out else None, args.k)
            _print_metrics(results, f"Test metrics - {run_dir}")
        case "rank":
            from .ranking.stage import run_rank

            report = run_rank(
                _run_dir(args), Path(args.out), RankerConfig(**given(args, RankerConfig))
            )
            if report is not None:  # rank 0 of a torchrun launch, or the only process
                _print_metrics(report["test"], "Test metrics: channels and the ranked chain")
                console.print(
                    f"ranker: best epoch {report['best_epoch']}, parity max |diff| "
                    f"{report['export']['max_abs_diff']:.2e} -> {args.out}"
                )
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

            problem = _serve_preflight(args.artifacts, args.routes)
            if problem is not None:
                console.print(f"[red]error:[/] {problem}", highlight=False)
                return SERVE_STARTUP_FAILED
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
