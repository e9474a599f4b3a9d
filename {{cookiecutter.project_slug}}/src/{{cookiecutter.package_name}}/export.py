"""Export the towers to TorchScript and ONNX, and prove the exports compute the same thing.

Each tower becomes ``<side>_tower.pt`` (TorchScript, loadable with ``torch.jit.load`` and no
project code) and ``<side>_tower.onnx`` (run with onnxruntime). Inputs, all int64:
``item_ids`` (b,), ``item_features`` (b, f_i); ``user_ids`` (b,), ``user_features`` (b, f_u),
``user_history`` (b, L) padded with n_items. The output is ``<side>_embedding`` (b, dim)
float32. The batch dimension is dynamic; L is fixed at export time.

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
    loggers = [
        logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def export_tower(
    tower: nn.Module,
    tables: dict[str, np.ndarray],
    side: str,
    out_dir: Path,
    onnx: bool = True,
    sample: int = 256,
) -> ExportReport:
    """Export one tower; ``tables`` are its per-id inputs after the ids, by input name.

    Parity is checked on the first ``sample`` ids.
    """
    tower = tower.cpu().eval()
    n = min(sample, len(next(iter(tables.values()))))
    ids = torch.arange(n)
    inputs = [torch.as_tensor(t[:n], dtype=torch.long) for t in tables.values()]
    names = [f"{side}_ids", *tables]
    with torch.no_grad():
        expected = tower(ids, *inputs).numpy()
    report = ExportReport()

    ts_path = out_dir / f"{side}_tower.pt"
    with warnings.catch_warnings():
        # torch 2.9+ marks TorchScript deprecated in favour of torch.export; it is still the
        # format C++/Java/Triton serving loads today, so it stays, without the warning spam.
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(tower)
        scripted.save(str(ts_path))
        reloaded = torch.jit.load(str(ts_path))
    with torch.no_grad():
        got = reloaded(ids, *inputs).numpy()
    report.files[f"{side}.torchscript"] = str(ts_path)
    report.max_abs_diff[f"{side}.torchscript"] = float(np.abs(got - expected).max())

    if onnx:
        import onnxruntime as ort

        onnx_path = out_dir / f"{side}_tower.onnx"
        batch = torch.export.Dim("batch", min=1)
        m = max(2, min(n, 8))
        example = (ids[:m], *(x[:m] for x in inputs))
        with _quiet():
            torch.onnx.export(
                tower,
                example,
                str(onnx_path),
                input_names=names,
                output_names=[f"{side}_embedding"],
                dynamic_shapes=tuple({0: batch} for _ in example),
                dynamo=True,
                verbose=False,
                external_data=False,
            )
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        feeds = dict(zip(names, [ids.numpy(), *(x.numpy() for x in inputs)], strict=True))
        (got,) = session.run(None, feeds)
        report.files[f"{side}.onnx"] = str(onnx_path)
        report.max_abs_diff[f"{side}.onnx"] = float(np.abs(got - expected).max())
    return report


def export_towers(
    model: TwoTower,
    user_features: np.ndarray,
    user_history: np.ndarray,
    item_features: np.ndarray,
    out_dir: str | os.PathLike[str],
    onnx: bool = True,
    tolerance: float = 1e-4,
) -> ExportReport:
    """Export both towers into ``out_dir``; raise ParityError if an export drifts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = ExportReport()
    sides = (
        ("user", model.user_tower, {"user_features": user_features, "user_history": user_history}),
        ("item", model.item_tower, {"item_features": item_features}),
    )
    for side, tower, tables in sides:
        part = export_tower(tower, tables, side, out, onnx=onnx)
        report.files.update(part.files)
        report.max_abs_diff.update(part.max_abs_diff)
    bad = {k: v for k, v in report.max_abs_diff.items() if v > tolerance}
    if bad:
        raise ParityError(f"exported towers differ from PyTorch beyond {tolerance}: {bad}")
    return report
