"""Export the towers to TorchScript and ONNX, and prove the exports compute the same thing.

Each tower becomes ``<side>_tower.pt`` (TorchScript, loadable with ``torch.jit.load`` and no
project code) and ``<side>_tower.onnx`` (run with onnxruntime). Inputs are
``<side>_ids`` (batch,) int64 and ``<side>_features`` (batch, n_features) int64; the output is
``<side>_embedding`` (batch, dim) float32. The batch dimension is dynamic.

Parity: both exports are run on real ids and compared with the eager tower; the report holds
the max absolute difference per file, and ``export_towers`` raises if any exceeds ``tolerance``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .models import TwoTower


class ParityError(RuntimeError):
    """An exported tower disagrees with the eager PyTorch tower beyond tolerance."""


@dataclass
class ExportReport:
    files: dict[str, str] = field(default_factory=dict)
    max_abs_diff: dict[str, float] = field(default_factory=dict)

    def worst(self) -> float:
        return max(self.max_abs_diff.values(), default=0.0)


@contextlib.contextmanager
def _quiet():  # type: ignore[no-untyped-def]
    """The ONNX exporter prints progress and deprecation chatter; keep the CLI output readable."""
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            onnx_logger.setLevel(level)


def export_tower(
    tower: nn.Module, features: np.ndarray, side: str, out_dir: Path, onnx: bool = True, sample: int = 256
) -> ExportReport:
    """Export one tower; check parity on the first ``sample`` ids."""
    tower = tower.cpu().eval()
    n = min(sample, len(features))
    ids = torch.arange(n)
    feats = torch.as_tensor(features[:n], dtype=torch.long)
    with torch.no_grad():
        expected = tower(ids, feats).numpy()
    report = ExportReport()

    scripted = torch.jit.script(tower)
    ts_path = out_dir / f"{side}_tower.pt"
    scripted.save(str(ts_path))
    reloaded = torch.jit.load(str(ts_path))
    with torch.no_grad():
        got = reloaded(ids, feats).numpy()
    report.files[f"{side}.torchscript"] = str(ts_path)
    report.max_abs_diff[f"{side}.torchscript"] = float(np.abs(got - expected).max())

    if onnx:
        import onnxruntime as ort

        onnx_path = out_dir / f"{side}_tower.onnx"
        batch = torch.export.Dim("batch", min=1)
        example = (ids[: max(2, min(n, 8))], feats[: max(2, min(n, 8))])
        with _quiet():
            torch.onnx.export(
                tower, example, str(onnx_path), input_names=[f"{side}_ids", f"{side}_features"],
                output_names=[f"{side}_embedding"], dynamic_shapes=({0: batch}, {0: batch}),
                dynamo=True, verbose=False, external_data=False,
            )
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {f"{side}_ids": ids.numpy(), f"{side}_features": feats.numpy()})
        report.files[f"{side}.onnx"] = str(onnx_path)
        report.max_abs_diff[f"{side}.onnx"] = float(np.abs(got - expected).max())
    return report


def export_towers(
    model: TwoTower,
    user_features: np.ndarray,
    item_features: np.ndarray,
    out_dir: str | os.PathLike[str],
    onnx: bool = True,
    tolerance: float = 1e-4,
) -> ExportReport:
    """Export both towers into ``out_dir``; raise ParityError if an export drifts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = ExportReport()
    for side, tower, feats in (("user", model.user_tower, user_features), ("item", model.item_tower, item_features)):
        part = export_tower(tower, feats, side, out, onnx=onnx)
        report.files.update(part.files)
        report.max_abs_diff.update(part.max_abs_diff)
    bad = {k: v for k, v in report.max_abs_diff.items() if v > tolerance}
    if bad:
        raise ParityError(f"exported towers differ from PyTorch beyond {tolerance}: {bad}")
    return report
