"""TorchScript and ONNX exports compute what the PyTorch towers compute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from {{ cookiecutter.package_name }}.export import export_towers
from {{ cookiecutter.package_name }}.models import build_two_tower


def model_and_inputs() -> tuple[torch.nn.Module, np.ndarray, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    model = build_two_tower(30, 20, [3], [4, 2], dim=8, hidden=16)
    rng = np.random.default_rng(0)
    user_feats = rng.integers(0, 3, size=(30, 1))
    history = rng.integers(0, 21, size=(30, 6))  # 20 = padding
    item_feats = np.stack([rng.integers(0, 4, 20), rng.integers(0, 2, 20)], 1)
    return model, user_feats, history, item_feats


def test_torchscript_and_onnx_towers_match_pytorch_at_any_batch_size(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="ONNX parity needs onnxruntime; not installed")
    model, user_feats, history, item_feats = model_and_inputs()
    report = export_towers(model, user_feats, history, item_feats, tmp_path)
    assert set(report.max_abs_diff) == {
        "user.torchscript",
        "user.onnx",
        "item.torchscript",
        "item.onnx",
    }
    assert report.worst() < 1e-5
    assert {p.name for p in tmp_path.iterdir()} == {
        "user_tower.pt",
        "user_tower.onnx",
        "item_tower.pt",
        "item_tower.onnx",
    }
    session = ort.InferenceSession(
        str(tmp_path / "item_tower.onnx"), providers=["CPUExecutionProvider"]
    )
    for n in (1, 13):  # the batch dimension is dynamic
        (out,) = session.run(None, {"item_ids": np.arange(n), "item_features": item_feats[:n]})
        with torch.no_grad():
            want = model.item_tower(torch.arange(n), torch.as_tensor(item_feats[:n])).numpy()
        assert out.shape == (n, 8) and np.abs(out - want).max() < 1e-5


# torch 2.13 deprecates TorchScript loading in favour of torch.export; the service still loads it.
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_the_torchscript_user_tower_runs_without_project_code(tmp_path: Path) -> None:
    model, user_feats, history, item_feats = model_and_inputs()
    export_towers(model, user_feats, history, item_feats, tmp_path, onnx=False)
    loaded = torch.jit.load(str(tmp_path / "user_tower.pt"))
    ids = torch.tensor([4, 9])
    got = loaded(ids, torch.as_tensor(user_feats[[4, 9]]), torch.as_tensor(history[[4, 9]]))
    assert got.shape == (2, 8)
