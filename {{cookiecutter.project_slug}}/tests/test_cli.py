"""The command line: the demo pipeline end to end, and readable errors."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.__main__ import (
    _parser,
    _train_config,
    main,
    next_steps,
)
from {{ cookiecutter.package_name }}.artifacts import load_artifacts
from {{ cookiecutter.package_name }}.data.loaders import recbole_install_command
{%- if cookiecutter.include_serving %}
from {{ cookiecutter.package_name }}.serving.recommender import Recommender
{%- endif %}
from {{ cookiecutter.package_name }}.training import TrainConfig

TINY = ["--n-users", "150", "--n-items", "60", "--epochs", "2", "--device", "cpu"]


def train_one_epoch(runs: Path, *args: str) -> int:
    """``train`` for one epoch on the CPU into ``runs``, without a progress bar."""
    return main(
        [
            "train",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--no-progress",
            "--runs-dir",
            str(runs),
            *args,
        ]
    )


def test_demo_runs_every_step_and_prints_the_metrics_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # neither recenv nor nox installed
    assert main(["demo", "--workdir", str(tmp_path), *TINY]) == 0
    out = capsys.readouterr().out
    for channel in ("popularity", "item_graph", "two_tower"):
        assert channel in out
    assert "demo finished" in out
    # The closing hint prints commands that run here: this interpreter, not recenv or nox.
    hint = out.split("demo finished", 1)[1].splitlines()[1:]
    commands = [shlex.split(line, comments=True) for line in hint if line.startswith("  ")]
    assert commands and all(cmd[0] == sys.executable for cmd in commands), hint
    art = load_artifacts(tmp_path / "artifacts")
    assert art.n_items == 60 and len(art.user_embeddings) == art.n_users  # no model to serve
    report = json.loads((tmp_path / "artifacts" / "export" / "export_report.json").read_text())
    assert max(report["max_abs_diff"].values()) < 1e-4
    (run,) = (tmp_path / "runs").iterdir()
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert set(evaluation) == {"popularity", "item_graph", "two_tower"}
    # A trained model finds some held-out items (60 items, K=10: popularity alone does).
    assert all(0.0 < row["recall@10"] <= 1.0 for row in evaluation.values()), evaluation
    # The demo also ran the ranking stage: the chain's metrics are printed and the exported
    # ranker is where the service looks for it.
    ranker = tmp_path / "artifacts" / "ranker"
    assert (ranker / "ranker.onnx").is_file() and "rank    ranker over " in out
    chain = json.loads((ranker / "rank_report.json").read_text())["test"]
    assert "ranked" in out and 0.0 < chain["ranked"]["recall@10"] <= 1.0, chain
{%- if cookiecutter.include_serving %}
    # So the served demo answers a returning user's purchase through the ranker.
    answer = Recommender(art).recommend(art.user_ids[0], "returning", "mobile", "purchase", 10)
    recall, rank = answer.stages
    assert recall.startswith("recall: ") and rank.startswith("rank: ranker "), answer.reason
    assert all("rank" in item for item in answer.item_stages), answer.item_stages
{%- endif %}


def test_steps_chain_through_the_latest_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs, data = tmp_path / "runs", tmp_path / "events.csv"
    assert main(["data", "--out", str(data), "--n-users", "120", "--n-items", "50"]) == 0
    assert train_one_epoch(runs, "--data", str(data)) == 0
    assert main(["index", "--runs-dir", str(runs), "--out", str(tmp_path / "art")]) == 0
    assert main(["evaluate", "--runs-dir", str(runs), "--k", "5", "10"]) == 0
    assert "Recall@5" in capsys.readouterr().out
    assert load_artifacts(tmp_path / "art").n_items == 50


def test_user_errors_exit_2_with_the_fix_and_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--runs-dir", str(tmp_path / "none")]) == 2
    assert "no finished run" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("", encoding="utf-8")
    assert (
        main(["train", "--data", str(bad), "--runs-dir", str(tmp_path / "runs"), "--no-progress"])
        == 2
    )
    out = capsys.readouterr().out
    assert "empty file" in out and "Traceback" not in out
    assert not (tmp_path / "runs").exists()  # nothing written for bad input


{% if cookiecutter.include_serving -%}
def test_serve_refuses_a_bad_routes_file_or_artifacts_folder_in_one_line_with_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routes = tmp_path / "routes.yml"
    routes.write_text("rules:\n  - name: x\n    channel: telepathy\n", encoding="utf-8")
    assert main(["serve", "--artifacts", str(tmp_path), "--routes", str(routes)]) == 3
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1 and f"{routes}:2: channel is 'telepathy'" in out, out
    assert main(["serve", "--artifacts", str(tmp_path / "none")]) == 3
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1 and "manifest.json: missing" in out, out


{% endif -%}
def test_k_larger_than_the_catalog_is_refused_by_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    assert train_one_epoch(runs, "--n-users", "100", "--n-items", "40") == 0
    assert main(["evaluate", "--runs-dir", str(runs), "--k", "41"]) == 2
    assert "K=41 is larger than the catalog (40 items)" in capsys.readouterr().out


def test_next_steps_use_recenv_and_nox_only_where_they_are_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("recenv", "nox"):
        (tools / name).write_text("#!/bin/sh\n", encoding="utf-8")
        (tools / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    steps = next_steps(Path("."))
    assert all(shutil.which(shlex.split(line, comments=True)[0]) for line in steps), steps
    assert any(line.startswith("recenv run -- python -m pytest") for line in steps)
    assert any(line.startswith("nox -l") for line in steps)
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    steps = next_steps(Path("."))
    assert all(shlex.split(line, comments=True)[0] == sys.executable for line in steps), steps


def test_ml100k_without_recbole_is_one_line_with_the_install_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "recbole", None)  # import recbole now fails: not installed
    assert train_one_epoch(tmp_path / "runs", "--data", "ml-100k") == 2
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1, out
    command = recbole_install_command()
    assert f"`{command}`" in out and "install --no-deps recbole==1.2.1" in command
    assert not (tmp_path / "runs").exists()


def test_the_recbole_install_command_targets_this_interpreter_with_a_tool_it_has() -> None:
    """A uv-built environment has no pip, and a bare `pip` on PATH may be another Python's:
    the command runs uv (or pip) as a module of this interpreter, and installs into it.
    (That it really installs: docs/pipeline.md, MovieLens-100K.)"""
    words = shlex.split(recbole_install_command())
    assert words[:2] == [sys.executable, "-m"]
    tool = words[2]
    if tool == "uv":
        assert words[-2:] == ["--python", sys.executable]
    version = subprocess.run(
        [sys.executable, "-m", "ensurepip" if tool == "ensurepip" else tool, "--version"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert version.returncode == 0, version.stderr


def test_resume_reuses_the_runs_config_and_explicit_flags_override_it(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    sizes = ("--n-users", "100", "--n-items", "40", "--dim", "16")
    assert train_one_epoch(runs, *sizes, "--run-id", "r") == 0
    # Sizes, dim, device and runs dir come from runs/r/config.json; only --epochs is new.
    assert main(["train", "--resume", str(runs / "r"), "--epochs", "2", "--no-progress"]) == 0
    saved = json.loads((runs / "r" / "config.json").read_text())
    assert (saved["n_users"], saved["n_items"], saved["dim"], saved["epochs"]) == (100, 40, 16, 2)
    metrics = json.loads((runs / "r" / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert [p.name for p in runs.iterdir()] == ["r"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_index_and_export_write_what_the_image_user_can_read_whatever_the_umask(
    tmp_path: Path,
) -> None:
    runs, art = tmp_path / "runs", tmp_path / "artifacts"
    assert train_one_epoch(runs, "--n-users", "100", "--n-items", "40") == 0
    old_umask = os.umask(0o077)
    try:
        assert main(["index", "--runs-dir", str(runs), "--out", str(art)]) == 0
        export = ["export", "--runs-dir", str(runs), "--out", str(art / "export"), "--no-onnx"]
        assert main(export) == 0
    finally:
        os.umask(old_umask)
    paths = [art, *art.rglob("*")]
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in paths}
    want = {p.relative_to(tmp_path).as_posix(): 0o755 if p.is_dir() else 0o644 for p in paths}
    assert "artifacts/export/export_report.json" in modes and "artifacts/index_report.json" in modes
    assert modes == want


def test_a_run_evaluates_resumes_and_exports_from_another_folder_and_refuses_changed_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(project)
    # The data path as the user types it: relative to the project folder.
    csv = "data/generated/interactions.csv"
    assert main(["data", "--out", csv, "--n-users", "120", "--n-items", "50"]) == 0
    assert train_one_epoch(Path("runs"), "--data", csv, "--run-id", "r") == 0
    run = (project / "runs" / "r").resolve()
    trained = json.loads((run / "metrics.json").read_text())["test"]

    monkeypatch.chdir(elsewhere)  # where data/generated/interactions.csv does not exist
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--k", "10"]) == 0
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["two_tower"]["recall@10"] == pytest.approx(trained["recall@10"], abs=1e-9)
    assert main(["export", "--run", str(run), "--out", "export", "--formats", "pt2"]) == 0
    assert (elsewhere / "export" / "export_report.json").is_file()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert len(json.loads((run / "metrics.json").read_text())["history"]) == 2
    resumed = json.loads((run / "metrics.json").read_text())["test"]

    # `data` rewrites the file with another seed: the old run refuses, naming the change.
    monkeypatch.chdir(project)
    assert main(["data", "--out", csv, "--n-users", "120", "--n-items", "50", "--seed", "1"]) == 0
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    for command in (["evaluate", "--run", str(run)], ["index", "--run", str(run)],
                    ["export", "--run", str(run)], ["train", "--resume", str(run), "--epochs", "3"]):  # fmt: skip
        assert main(command) == 2, command
        out = capsys.readouterr().out.strip()
        assert len(out.splitlines()) == 1 and "Traceback" not in out, out
        assert "now holds other data" in out and "sha256" in out, out
        assert str(project / csv) in out, out
    assert json.loads((run / "metrics.json").read_text())["test"] == resumed  # untouched

    # Removed, it is named as gone; restored with the same content, the run evaluates again.
    (project / csv).unlink()
    assert main(["evaluate", "--run", str(run)]) == 2
    assert "which is gone" in capsys.readouterr().out
    monkeypatch.chdir(project)
    assert main(["data", "--out", csv, "--n-users", "120", "--n-items", "50"]) == 0
    assert main(["evaluate", "--run", str(run), "--k", "10"]) == 0
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["two_tower"]["recall@10"] == pytest.approx(resumed["recall@10"], abs=1e-9)


def test_every_config_setting_is_a_train_flag_that_reaches_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # `--resume x` looks for ./x and ./config.json
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        if "help" not in field.metadata:  # made without flags.setting: not a flag
            continue
        flag, value = "--" + field.name.replace("_", "-"), getattr(defaults, field.name)
        if isinstance(value, bool):
            args, want = [f"--no-{flag[2:]}" if value else flag], not value
        elif field.metadata["choices"]:
            want = next(c for c in field.metadata["choices"] if c != value)
            args = [flag, want]
        else:
            want = {int: 7, float: 0.25, str: "x"}[type(value) if value is not None else str]
            args = [flag, str(want)]
        cfg = _train_config(_parser().parse_args(["train", *args]))
        assert getattr(cfg, field.name) == want, (args, getattr(cfg, field.name))
        assert dataclasses.replace(cfg, **{field.name: value}) == defaults, args


def test_a_value_outside_a_settings_choices_is_a_usage_error_listing_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--split", "weekly"])
    assert exit_.value.code == 2
    assert "invalid choice: 'weekly' (choose from " in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"negatives='sampled': expected 'in_batch' or 'full'"):
        TrainConfig(negatives="sampled").validate()  # a --config file goes through validate


def test_the_demo_shows_and_uses_its_own_epoch_default(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["demo"])
    assert args.epochs == 10 and args.n_users is None  # the rest come from TrainConfig
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "most epochs to train (default: 10)" in text
    assert "synthetic users (ignored for other data) (default: 2000)" in text
