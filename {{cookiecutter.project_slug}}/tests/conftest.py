"""Fixtures more than one test module uses.

Test modules never import each other: what they share is here, as fixtures. The helpers that
start something (the command line, a benchmark script) are factories: the fixture returns the
function and each test calls it with its own arguments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import {{ cookiecutter.package_name }}
from {{ cookiecutter.package_name }}.artifacts import save_artifacts
from {{ cookiecutter.package_name }}.channels import co_occurrence_neighbours
from {{ cookiecutter.package_name }}.retrieval import build_index

# The folder that holds the package, for child processes that run without an installed copy.
SRC = str(Path({{ cookiecutter.package_name }}.__file__).resolve().parents[1])
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _child_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


@pytest.fixture(scope="session")
def child_env() -> Callable[..., dict[str, str]]:
    """``child_env(**extra)``: this environment for a child process, the package importable and
    one OpenMP thread each, with ``extra`` variables on top."""
    return _child_env


def _run_cli(
    args: list[str], cwd: Path, torchrun_procs: int = 0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    launcher = [sys.executable, "-m", "{{ cookiecutter.package_name }}"]
    if torchrun_procs:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc-per-node", str(torchrun_procs), "-m", "{{ cookiecutter.package_name }}"]  # fmt: skip
    done = subprocess.run(
        [*launcher, *args],
        cwd=cwd,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check:
        assert done.returncode == 0, (
            f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return done


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli(args, cwd, torchrun_procs=0, check=True)``: ``python -m {{ cookiecutter.package_name }} ARGS``
    in a child process (under torchrun with N processes if asked); with ``check`` it must exit 0."""
    return _run_cli


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    """The project's ``benchmarks/`` folder."""
    return BENCHMARKS


def _run_benchmark(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A bound for a hang, not for speed: a busy CI machine runs these several times slower.
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=cwd,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="session")
def run_benchmark() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_benchmark(script, *args, cwd=...)``: ``benchmarks/SCRIPT ARGS`` in a child process;
    it must exit 0."""
    return _run_benchmark


# train_ranker on a small synthetic sample with fixed channels (no two-tower model, so every
# process builds the same candidates); each process saves what the ranker came out as.
RANKER_SCRIPT = """
import json, os, sys

import numpy as np
import torch

from {{ cookiecutter.package_name }}.channels import ItemGraphChannel, PopularityChannel
from {{ cookiecutter.package_name }}.channels.ease import EaseChannel
from {{ cookiecutter.package_name }}.data import generate_synthetic, make_split
from {{ cookiecutter.package_name }}.ranking import RankerConfig, build_ranking_data, train_ranker
from {{ cookiecutter.package_name }}.ranking.train import score_rows

out, settings = sys.argv[1], json.loads(sys.argv[2])
sample = generate_synthetic(n_users=300, n_items=100, events_per_user=20, seed=5)
split = make_split(sample, "random", seed=5)


def factory(users, items):
    n_users, n_items = split.n_users, split.n_items
    return {
        "ease": EaseChannel.fit(users, items, n_users, n_items, l2=50.0),
        "item_graph": ItemGraphChannel(users, items, n_users, n_items),
        "popularity": PopularityChannel(items, n_items, n_users),
    }


cfg = RankerConfig(**settings)
result = train_ranker(split, factory, cfg)
saved = {name: getattr(result, name) for name in
         ("history", "val", "best_epoch", "device", "amp", "world_size", "dist_backend")}
saved["state_dict"] = result.model.state_dict()
saved["model_device"] = str(next(result.model.parameters()).device)
saved["user_feature_width"] = result.model.user_features.out_dim
# The trained model's scores of 60 users' candidates (from channels fitted on training).
users = np.arange(60)
data = build_ranking_data(result.channels, users, split.by_user("train"), None, cfg.n_candidates,
                          item_features=sample.item_features,
                          item_feature_names=sample.item_feature_names)
saved["scores"] = score_rows(result.model, data, sample.user_features, sample.item_features)
torch.save(saved, os.path.join(out, f"ranker-{os.environ.get('RANK', 'alone')}.pt"))
"""


def _train_ranker_in_child(
    folder: Path, torchrun_procs: int = 0, **settings: object
) -> list[dict[str, object]]:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "train_ranker.py"
    script.write_text(RANKER_SCRIPT, encoding="utf-8")
    launcher = [sys.executable]
    if torchrun_procs:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(torchrun_procs)]  # fmt: skip
    done = subprocess.run(
        [*launcher, str(script), str(folder), json.dumps(settings)],
        cwd=folder, env=_child_env(), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return [
        torch.load(path, map_location="cpu", weights_only=False)
        for path in sorted(folder.glob("ranker-*.pt"))
    ]


@pytest.fixture(scope="session")
def train_ranker_in_child() -> Callable[..., list[dict[str, object]]]:
    """``train_ranker_in_child(folder, torchrun_procs=0, **RankerConfig settings)``:
    ``train_ranker`` on a 300-user synthetic sample (EASE, item graph and popularity as
    channels) in a child process, or under torchrun with N processes; what each process's
    result holds (``history``, ``val``, ``device``, ``amp``, ``world_size``, ``dist_backend``,
    ``state_dict``, ``model_device``, ``user_feature_width``, and ``scores``: its (60, c)
    scores of the first 60 users' candidates, -inf at padding), by rank."""
    return _train_ranker_in_child


def _write_sample_artifacts(
    folder: Path, seed: int = 7, n_users: int = 40, n_items: int = 60, dim: int = 8
) -> Path:
    rng = np.random.default_rng(seed)
    users_emb = rng.normal(size=(n_users, dim)).astype(np.float32)
    items_emb = rng.normal(size=(n_items, dim)).astype(np.float32)
    users_emb /= np.linalg.norm(users_emb, axis=1, keepdims=True)
    items_emb /= np.linalg.norm(items_emb, axis=1, keepdims=True)
    # Skewed item popularity, like real logs: low item ids are taken more often.
    zipf = 1.0 / np.arange(1, n_items + 1)
    seen = [
        np.unique(rng.choice(n_items, size=rng.integers(3, 8), p=zipf / zipf.sum()))
        for _ in range(n_users)
    ]
    seen[5] = np.zeros(0, dtype=np.int64)  # a known user with no history
    pairs_u = np.concatenate([np.full(len(s), u) for u, s in enumerate(seen)])
    pairs_i = np.concatenate(seen)
    neighbours, weights = co_occurrence_neighbours(
        pairs_u, pairs_i, n_users, n_items, n_neighbours=10
    )
    return save_artifacts(
        folder,
        user_ids=[f"u{u}" for u in range(n_users)],
        item_ids=[f"i{i}" for i in range(n_items)],
        user_embeddings=users_emb,
        item_embeddings=items_emb,
        index=build_index(items_emb, kind="flat"),
        popularity_scores=np.bincount(pairs_i, minlength=n_items).astype(np.float32),
        neighbours=neighbours,
        neighbour_weights=weights,
        seen=seen,
        config={"seed": seed, "purpose": "serving tests"},
    )


@pytest.fixture(scope="session")
def write_sample_artifacts() -> Callable[..., Path]:
    """``write_sample_artifacts(folder, seed=7, n_users=40, n_items=60, dim=8)``: a tiny, fully
    consistent artifacts folder (users u0.., items i0.., user 5 with no history) written by the
    real ``save_artifacts`` with a real faiss index and item graph."""
    return _write_sample_artifacts
