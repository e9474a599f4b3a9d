"""The benchmark scripts the README quotes still run and report every figure it names.

Tiny sizes and single repeats: these check that the scripts work, not how fast anything is
(speed is measured by running the scripts themselves, `nox -s bench`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_training import child_env

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_training_benchmark_compares_both_loops_and_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "training.json"
    run_benchmark(
        "bench_training.py", "--epochs", "1", "--repeats", "1", "--batch-sizes", "8192", "--dim", "8",
        "--json", str(out), cwd=tmp_path,
    )  # fmt: skip
    result = json.loads(out.read_text(encoding="utf-8"))
    row = result["batch_8192"]
    assert row["vectorised_samples_per_s"] > 0 and row["naive_dataloader_samples_per_s"] > 0
    assert row["speedup"] == pytest.approx(
        row["vectorised_samples_per_s"] / row["naive_dataloader_samples_per_s"]
    )
    assert row["pipeline_only"]["speedup"] > 1, row  # tensor gathers beat per-sample Python
    assert result["device"] == "cpu" and result["threads"] == 1 and result["model"]["dim"] == 8


def test_training_benchmark_phases_and_width_comparison_report_per_sample_figures(
    tmp_path: Path,
) -> None:
    phases = json.loads(
        run_benchmark(
            "bench_training.py", "--phases", "--batch-sizes", "8192", "--dim", "8", cwd=tmp_path
        ).stdout
    )
    assert set(phases["batch_8192_us_per_sample"]) == {
        "batching",
        "forward",
        "backward",
        "optimizer",
    }
    widths = json.loads(
        run_benchmark(
            "bench_training.py", "--compare-hidden", "16", "8", "--epochs", "1", "--repeats", "1",
            "--batch-sizes", "8192", "--dim", "8", cwd=tmp_path,
        ).stdout
    )  # fmt: skip
    rows = widths["batch_8192_widths"]
    assert set(rows) == {"hidden_16", "hidden_8"} and rows["hidden_16"]["vs_hidden_16"] == 1.0
    assert rows["hidden_8"]["samples_per_s"] > 0 and len(rows["hidden_8"]["per_repeat"]) == 1
    adds = json.loads(
        run_benchmark(
            "bench_training.py", "--compare-bag-adds", "--device", "cpu", "--epochs", "1",
            "--repeats", "1", "--batch-sizes", "8192", "--dim", "8", cwd=tmp_path,
        ).stdout
    )  # fmt: skip
    rows = adds["batch_8192_bag_adds"]
    assert set(rows) == {"sparse_product", "gather_index_add"}
    gather, sparse = rows["gather_index_add"], rows["sparse_product"]
    assert gather["samples_per_s"] > 0 and sparse["samples_per_s"] > 0
    assert gather["vs_sparse_product"] == pytest.approx(
        gather["samples_per_s"] / sparse["samples_per_s"]
    )


def test_training_benchmark_refuses_two_modes_at_once(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "bench_training.py"),
            "--phases",
            "--compare-hidden",
            "8",
        ],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "--phases and --compare-hidden time different things" in done.stderr


def test_retrieval_benchmark_reports_ann_recall_and_speedup(tmp_path: Path) -> None:
    out = tmp_path / "retrieval.json"
    run_benchmark(
        "bench_retrieval.py", "--n", "20000", "--queries", "200", "--batch", "100",
        "--json", str(out), cwd=tmp_path,
    )  # fmt: skip
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["n_items"] == 20000 and result["exact_qps"] > 0 and result["ann_qps"] > 0
    assert 0.0 <= result["recall@10"] <= 1.0, result
