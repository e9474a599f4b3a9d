"""The pipeline on a real GPU, through the same entry points as on CPU.

These are hardware tests: ``nox -s gpu_tests`` runs them in require mode, where a skip is a
failure; elsewhere they skip with the probe's reason. Each one starts the command line in a
child process, so a CUDA context never leaks into the rest of the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SMALL = ["--n-users", "300", "--n-items", "120", "--events-per-user", "12", "--batch-size", "256",
         "--no-progress"]  # fmt: skip


@pytest.mark.cuda
def test_the_demo_trains_on_cuda_and_its_artifacts_serve_from_cpu(
    tmp_path: Path,
    torch_device: str,
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
    child_env: Callable[..., dict[str, str]],
) -> None:
    done = run_cli(["demo", "--device", torch_device, "--epochs", "3", "--n-users", "400", "--n-items", "150",
                    "--workdir", str(tmp_path)], cwd=tmp_path)  # fmt: skip
    assert "samples/s on cuda" in done.stdout
    run = next((tmp_path / "runs").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    # amp "off" is the measured-faster default
    assert metrics["device"].startswith("cuda") and metrics["amp"] == "off"
    assert metrics["history"][-1]["loss"] < metrics["history"][0]["loss"]
    assert 0.0 < metrics["test"]["recall@10"] <= 1.0
    # What a GPU run leaves behind must load where the service runs: a process that sees no GPU.
    probe = ("from {{ cookiecutter.package_name }}.artifacts import load_artifacts; import sys; "
             "a = load_artifacts(sys.argv[1]); print(a.n_items, a.item_embeddings.shape[1])")  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "artifacts")], env=child_env(CUDA_VISIBLE_DEVICES=""),
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    n_items, dim = map(int, loaded.stdout.split())
    assert n_items > 100 and dim == json.loads((run / "config.json").read_text())["dim"]
    report = json.loads((tmp_path / "artifacts" / "export" / "export_report.json").read_text())
    assert max(report["max_abs_diff"].values()) < 1e-4, report


@pytest.mark.cuda
def test_torchrun_starts_the_same_training_entry_point_on_cuda(
    tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    run_cli(["train", *SMALL, "--epochs", "2", "--device", "cuda", "--amp", "bf16", "--run-id", "tr",
             "--runs-dir", str(tmp_path / "runs")], cwd=tmp_path, torchrun_procs=1)  # fmt: skip
    metrics = json.loads((tmp_path / "runs" / "tr" / "metrics.json").read_text())
    assert metrics["device"].startswith("cuda") and metrics["amp"] == "bfloat16"
    # One process still joins an nccl group and trains through DistributedDataParallel, so a
    # one-GPU runner exercises the multi-GPU code path.
    assert (
        metrics["world_size"] == 1
        and metrics["dist_backend"] == "nccl"
        and metrics["samples_per_second"] > 0
    )


@pytest.mark.multi_gpu(2)
def test_two_nccl_processes_train_the_same_model_as_one(
    tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    # The nccl twin of the gloo test in test_training.py: full-catalog softmax makes the
    # average of two half-batch gradients equal the full-batch gradient.
    common = [*SMALL, "--epochs", "2", "--negatives", "full", "--device", "cuda", "--amp", "off", "--deterministic",
              "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    run_cli(["train", *common, "--run-id", "ddp"], cwd=tmp_path, torchrun_procs=2)
    run_cli(["train", *common, "--run-id", "one"], cwd=tmp_path)
    ddp, one = (
        json.loads((tmp_path / "runs" / r / "metrics.json").read_text()) for r in ("ddp", "one")
    )
    assert ddp["world_size"] == 2 and ddp["dist_backend"] == "nccl" and one["world_size"] == 1
    for got, want in zip(ddp["history"], one["history"], strict=True):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-2)
    assert ddp["test"]["recall@10"] == pytest.approx(one["test"]["recall@10"], abs=0.03)


@pytest.mark.cuda
def test_the_training_benchmark_times_every_amp_mode_on_cuda(
    tmp_path: Path, run_benchmark: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    # `nox -s bench` on a GPU box runs these two commands; a tiny run checks they still report.
    both = run_benchmark(
        "bench_training.py", "--device", "cuda", "--epochs", "1", "--repeats", "1",
        "--batch-sizes", "8192", "--dim", "8", cwd=tmp_path,
    )  # fmt: skip
    row = json.loads(both.stdout)["batch_8192"]
    assert row["speedup"] > 0 and set(row["amp"]) == {"off", "bf16", "fp16"}
    amp_only = run_benchmark(
        "bench_training.py", "--device", "cuda", "--amp-only", "--epochs", "1", "--repeats", "1",
        "--batch-sizes", "8192", "--dim", "8", cwd=tmp_path,
    )  # fmt: skip
    row = json.loads(amp_only.stdout)["batch_8192"]
    assert "speedup" not in row and row["amp"]["bf16"]["samples_per_s"] > 0
