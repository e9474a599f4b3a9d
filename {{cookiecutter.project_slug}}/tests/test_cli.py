"""The command line: the demo pipeline end to end, and readable errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.__main__ import main
from {{ cookiecutter.package_name }}.artifacts import load_artifacts

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
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--workdir", str(tmp_path), *TINY]) == 0
    out = capsys.readouterr().out
    for channel in ("popularity", "item_graph", "two_tower"):
        assert channel in out
    assert "demo finished" in out
    art = load_artifacts(tmp_path / "artifacts")
    assert art.n_items == 60 and art.user_tower is not None
    report = json.loads((tmp_path / "artifacts" / "export" / "export_report.json").read_text())
    assert max(report["max_abs_diff"].values()) < 1e-4
    (run,) = (tmp_path / "runs").iterdir()
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert set(evaluation) == {"popularity", "item_graph", "two_tower"}
    # A trained model finds some held-out items (60 items, K=10: popularity alone does).
    assert all(0.0 < row["recall@10"] <= 1.0 for row in evaluation.values()), evaluation


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


def test_k_larger_than_the_catalog_is_refused_by_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    assert train_one_epoch(runs, "--n-users", "100", "--n-items", "40") == 0
    assert main(["evaluate", "--runs-dir", str(runs), "--k", "41"]) == 2
    assert "K=41 is larger than the catalog (40 items)" in capsys.readouterr().out
