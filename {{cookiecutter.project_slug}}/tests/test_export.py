"""torch.export (.pt2), ONNX and, on request, TorchScript exports compute what the towers compute."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from {{ cookiecutter.package_name }}.export import (
    ParityError,
    export_towers,
    parse_formats,
    verify_exports,
)
from {{ cookiecutter.package_name }}.models import build_two_tower


def model_and_inputs(seed: int = 0) -> tuple[torch.nn.Module, np.ndarray, np.ndarray, np.ndarray]:
    torch.manual_seed(seed)
    model = build_two_tower(30, 20, [3], [4, 2], dim=8, hidden=16)
    rng = np.random.default_rng(0)
    user_feats = rng.integers(0, 3, size=(30, 1))
    history = rng.integers(0, 21, size=(30, 6))  # 20 = padding
    item_feats = np.stack([rng.integers(0, 4, 20), rng.integers(0, 2, 20)], 1)
    return model, user_feats, history, item_feats


def test_the_default_export_writes_pt2_and_onnx_and_no_torchscript(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="ONNX parity needs onnxruntime; not installed")
    model, user_feats, history, item_feats = model_and_inputs()
    report = export_towers(model, user_feats, history, item_feats, tmp_path)
    assert report.formats == ("pt2", "onnx")
    assert {p.name for p in tmp_path.iterdir()} == {
        "user_tower.pt2",
        "user_tower.onnx",
        "item_tower.pt2",
        "item_tower.onnx",
    }
    # Every file was checked at batch 1 and at larger batches (30 users, 20 items here).
    assert report.parity["user.pt2"].keys() == {1, 3, 30}
    assert report.parity["item.onnx"].keys() == {1, 3, 20}
    assert report.worst() < 1e-5
    saved = report.to_dict()
    assert saved["tolerance"] == 1e-4 and saved["parity"]["user.onnx"]["1"] < 1e-5


def test_the_pt2_program_runs_without_project_code_at_any_batch_size(tmp_path: Path) -> None:
    model, user_feats, history, item_feats = model_and_inputs()
    export_towers(model, user_feats, history, item_feats, tmp_path, formats="pt2")
    loaded = torch.export.load(str(tmp_path / "user_tower.pt2")).module()
    for rows in ([7], [4, 9, 11, 2, 28]):  # the batch dimension is dynamic
        args = (
            torch.tensor(rows),
            torch.as_tensor(user_feats[rows]),
            torch.as_tensor(history[rows]),
        )
        with torch.no_grad():
            got, want = loaded(*args), model.user_tower.eval()(*args)
        assert got.shape == (len(rows), 8) and (got - want).abs().max() < 1e-5


def test_the_onnx_item_tower_runs_in_onnxruntime_at_any_batch_size(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="ONNX parity needs onnxruntime; not installed")
    model, user_feats, history, item_feats = model_and_inputs()
    export_towers(model, user_feats, history, item_feats, tmp_path, formats="onnx")
    session = ort.InferenceSession(
        str(tmp_path / "item_tower.onnx"), providers=["CPUExecutionProvider"]
    )
    for n in (1, 13):
        (out,) = session.run(None, {"item_ids": np.arange(n), "item_features": item_feats[:n]})
        with torch.no_grad():
            want = model.item_tower(torch.arange(n), torch.as_tensor(item_feats[:n])).numpy()
        assert out.shape == (n, 8) and np.abs(out - want).max() < 1e-5


# torch 2.13 deprecates TorchScript loading in favour of torch.export; a user may still ask for it.
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_is_written_only_when_asked_for(tmp_path: Path) -> None:
    model, user_feats, history, item_feats = model_and_inputs()
    report = export_towers(
        model, user_feats, history, item_feats, tmp_path, formats="pt2,torchscript"
    )
    assert set(report.files) == {"user.pt2", "user.torchscript", "item.pt2", "item.torchscript"}
    assert report.worst() < 1e-5
    loaded = torch.jit.load(str(tmp_path / "user_tower.pt"))
    ids = torch.tensor([4, 9])
    got = loaded(ids, torch.as_tensor(user_feats[[4, 9]]), torch.as_tensor(history[[4, 9]]))
    assert got.shape == (2, 8)
    # Exporting again without it removes the old TorchScript files: no stale model is left.
    export_towers(model, user_feats, history, item_feats, tmp_path, formats="pt2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["item_tower.pt2", "user_tower.pt2"]


def test_a_perturbed_saved_program_fails_the_parity_check(tmp_path: Path) -> None:
    model, user_feats, history, item_feats = model_and_inputs()
    export_towers(model, user_feats, history, item_feats, tmp_path / "good", formats="pt2")
    other = model_and_inputs(seed=1)[0]  # same shapes, other weights: a plausible wrong file
    with torch.no_grad():
        other.item_tower.load_state_dict(model.item_tower.state_dict())
    export_towers(other, user_feats, history, item_feats, tmp_path / "bad", formats="pt2")
    shutil.copyfile(tmp_path / "bad" / "user_tower.pt2", tmp_path / "good" / "user_tower.pt2")
    with pytest.raises(ParityError, match=r"good/user_tower\.pt2") as failed:
        verify_exports(model, user_feats, history, item_feats, tmp_path / "good", formats="pt2")
    assert "item_tower" not in str(failed.value)


def test_export_refuses_a_tolerance_the_files_do_not_meet(tmp_path: Path) -> None:
    model, user_feats, history, item_feats = model_and_inputs()
    with pytest.raises(ParityError, match="more than -1"):
        export_towers(model, user_feats, history, item_feats, tmp_path, "pt2", tolerance=-1.0)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("pt2,onnx", ("pt2", "onnx")),
        (" ONNX , pt2 ", ("pt2", "onnx")),
        ("torchscript", ("torchscript",)),
        (["onnx", "onnx"], ("onnx",)),
    ],
)
def test_formats_parse_in_a_fixed_order(text: str | list[str], want: tuple[str, ...]) -> None:
    assert parse_formats(text) == want


@pytest.mark.parametrize("text", ["pt2,tflite", "", "jit"])
def test_an_unknown_format_names_the_choices(text: str) -> None:
    with pytest.raises(
        ValueError, match="expected a comma-separated subset of pt2, onnx, torchscript"
    ):
        parse_formats(text)
