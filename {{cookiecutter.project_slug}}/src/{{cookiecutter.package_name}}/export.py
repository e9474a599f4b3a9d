"""Export the towers in the formats PyTorch recommends, and prove each file computes the same thing.

Formats (``export_towers(formats=...)``, CLI ``export --formats pt2,onnx``):

* ``pt2`` (default): ``<side>_tower.pt2``, a ``torch.export`` program written with
  ``torch.export.save``; ``torch.export.load(path).module()`` runs it with no project code, and
  it is the input of AOTInductor and ExecuTorch.
* ``onnx`` (default): ``<side>_tower.onnx`` from the ``torch.export``-based ("dynamo") exporter;
  onnxruntime runs it, also with no torch installed.
* ``torchscript`` (only when asked): ``<side>_tower.pt`` for ``torch.jit.load``. TorchScript is
  deprecated upstream; it is kept for consumers that still load it (older C++ or Triton setups).

Inputs, all int64: ``item_ids`` (b,), ``item_features`` (b, f_i); ``user_ids`` (b,),
``user_features`` (b, f_u), ``user_history`` (b, L) padded with n_items. The output is
``<side>_embedding`` (b, dim) float32. The batch dimension b is dynamic; L is fixed at export time.

Parity: every written file is loaded back from disk and run on real ids at several batch sizes
(1, a few, and up to ``sample``), so a program that only works at the example's batch size is
caught. The report holds the max absolute difference to the eager tower per file and batch size;
``export_towers`` raises ``ParityError`` if any exceeds ``tolerance``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .models import TwoTower

FORMATS = ("pt2", "onnx", "torchscript")
DEFAULT_FORMATS = ("pt2", "onnx")
SUFFIX = {"pt2": ".pt2", "onnx": ".onnx", "torchscript": ".pt"}
# float32 towers end in an L2 normalisation, so outputs are in [-1, 1]; kernels that differ
# between eager, the exported graph and onnxruntime move them by ~1e-7, a real bug by far more.
TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """An exported tower disagrees with the eager PyTorch tower beyond tolerance."""


@dataclass
class ExportReport:
    """What an export wrote and how closely each file matches the eager tower.

    ``parity`` maps ``"<side>.<format>"`` to ``{batch size: max |exported - eager|}``.
    """

    formats: tuple[str, ...] = DEFAULT_FORMATS
    tolerance: float = TOLERANCE
    files: dict[str, str] = field(default_factory=dict)
    parity: dict[str, dict[int, float]] = field(default_factory=dict)

    @property
    def max_abs_diff(self) -> dict[str, float]:
        """The worst difference per file, over every batch size checked."""
        return {key: max(by_batch.values()) for key, by_batch in self.parity.items()}

    def worst(self) -> float:
        return max(self.max_abs_diff.values(), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``export_report.json`` (batch sizes become string keys)."""
        return {
            "formats": list(self.formats),
            "tolerance": self.tolerance,
            "files": dict(self.files),
            "max_abs_diff": self.max_abs_diff,
            "parity": {
                key: {str(b): d for b, d in by_batch.items()}
                for key, by_batch in self.parity.items()
            },
        }


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"pt2,onnx"`` (or a sequence of names) -> ``("pt2", "onnx")``; unknown names raise.

    Order and duplicates do not matter; the result follows ``FORMATS`` order.
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    wanted = {name.strip().lower() for name in names if name.strip()}
    unknown = sorted(wanted - set(FORMATS))
    if unknown or not wanted:
        got = ", ".join(repr(u) for u in unknown) if unknown else "nothing"
        raise ValueError(
            f"export formats: got {got}; expected a comma-separated subset of {', '.join(FORMATS)}"
            f" (default {','.join(DEFAULT_FORMATS)})"
        )
    return tuple(f for f in FORMATS if f in wanted)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters print progress and deprecation chatter; keep the CLI output readable."""
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


def _write(
    fmt: str,
    tower: nn.Module,
    example: tuple[torch.Tensor, ...],
    names: list[str],
    side: str,
    path: Path,
) -> None:
    """Write ``tower`` as ``fmt`` to ``path``; ``example`` has batch >= 2 (see below)."""
    # An example batch of 1 would let the tracer specialise b to the constant 1.
    batch = torch.export.Dim("batch", min=1)
    dynamic = tuple({0: batch} for _ in example)
    with _quiet():
        match fmt:
            case "pt2":
                program = torch.export.export(tower, example, dynamic_shapes=dynamic)
                torch.export.save(program, str(path))
            case "onnx":
                torch.onnx.export(
                    tower,
                    example,
                    str(path),
                    input_names=names,
                    output_names=[f"{side}_embedding"],
                    dynamic_shapes=dynamic,
                    dynamo=True,
                    verbose=False,
                    external_data=False,
                )
            case "torchscript":
                torch.jit.script(tower).save(str(path))
            case _:
                raise ValueError(f"unknown export format {fmt!r}; expected one of {FORMATS}")


def _runner(fmt: str, path: Path, names: list[str]) -> Any:
    """Load ``path`` the way a consumer would; return ``f(list of int64 arrays) -> (b, dim)``."""
    with _quiet():  # torch.jit.load is deprecated (torch 2.13); it is what was asked for
        match fmt:
            case "pt2":
                module = torch.export.load(str(path)).module()
            case "torchscript":
                module = torch.jit.load(str(path), map_location="cpu")
            case "onnx":
                import onnxruntime as ort

                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                return lambda arrays: session.run(None, dict(zip(names, arrays, strict=True)))[0]
            case _:
                raise ValueError(f"unknown export format {fmt!r}; expected one of {FORMATS}")

    def run(arrays: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return module(*(torch.as_tensor(a) for a in arrays)).numpy()

    return run


def check_parity(
    fmt: str,
    path: Path,
    tower: nn.Module,
    tables: dict[str, np.ndarray],
    side: str,
    sample: int = 256,
) -> dict[int, float]:
    """Max |file - eager| at batch sizes 1, 3 and ``min(sample, n_ids)`` on the first real ids.

    ``tables`` are the tower's per-id inputs after the ids, by input name (row i = id i).
    """
    tower = tower.cpu().eval()
    n = min(sample, len(next(iter(tables.values()))))
    run = _runner(fmt, path, [f"{side}_ids", *tables])
    diffs: dict[int, float] = {}
    for b in sorted({1, min(3, n), n}):
        arrays = [np.arange(b, dtype=np.int64), *(t[:b].astype(np.int64) for t in tables.values())]
        with torch.no_grad():
            expected = tower(*(torch.as_tensor(a) for a in arrays)).numpy()  # (b, dim)
        got = np.asarray(run(arrays))
        if got.shape != expected.shape:
            raise ParityError(
                f"{path}: batch of {b} gave shape {got.shape}, eager {expected.shape}"
            )
        diffs[b] = float(np.abs(got - expected).max())
    return diffs


def export_tower(
    tower: nn.Module,
    tables: dict[str, np.ndarray],
    side: str,
    out_dir: Path,
    formats: Sequence[str] = DEFAULT_FORMATS,
    sample: int = 256,
) -> ExportReport:
    """Write one tower in each of ``formats`` and measure each file's parity (no raising here)."""
    tower = tower.cpu().eval()
    names = [f"{side}_ids", *tables]
    m = max(2, min(len(next(iter(tables.values()))), 8))
    example = (
        torch.arange(m),
        *(torch.as_tensor(t[:m], dtype=torch.long) for t in tables.values()),
    )
    report = ExportReport(formats=tuple(formats))
    for fmt in formats:
        path = out_dir / f"{side}_tower{SUFFIX[fmt]}"
        _write(fmt, tower, example, names, side, path)
        report.files[f"{side}.{fmt}"] = str(path)
        report.parity[f"{side}.{fmt}"] = check_parity(fmt, path, tower, tables, side, sample)
    return report


def _sides(
    model: TwoTower, user_features: np.ndarray, user_history: np.ndarray, item_features: np.ndarray
) -> list[tuple[str, nn.Module, dict[str, np.ndarray]]]:
    """Each tower with its per-id inputs, by the input names the exported files use."""
    return [
        ("user", model.user_tower, {"user_features": user_features, "user_history": user_history}),
        ("item", model.item_tower, {"item_features": item_features}),
    ]


def export_towers(
    model: TwoTower,
    user_features: np.ndarray,
    user_history: np.ndarray,
    item_features: np.ndarray,
    out_dir: str | os.PathLike[str],
    formats: str | Sequence[str] = DEFAULT_FORMATS,
    tolerance: float = TOLERANCE,
) -> ExportReport:
    """Export both towers into ``out_dir``; raise ParityError if any file drifts past ``tolerance``.

    A tower file of a format not asked for is removed, so the folder never mixes a fresh export
    with an older model's (say a TorchScript file from an earlier ``--formats ...,torchscript``).
    """
    wanted = parse_formats(formats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = ExportReport(formats=wanted, tolerance=tolerance)
    for side, tower, tables in _sides(model, user_features, user_history, item_features):
        for fmt in set(FORMATS) - set(wanted):
            (out / f"{side}_tower{SUFFIX[fmt]}").unlink(missing_ok=True)
        part = export_tower(tower, tables, side, out, wanted)
        report.files.update(part.files)
        report.parity.update(part.parity)
    _raise_if_drifted(report)
    return report


def verify_exports(
    model: TwoTower,
    user_features: np.ndarray,
    user_history: np.ndarray,
    item_features: np.ndarray,
    out_dir: str | os.PathLike[str],
    formats: str | Sequence[str] = DEFAULT_FORMATS,
    tolerance: float = TOLERANCE,
) -> ExportReport:
    """Re-check files already in ``out_dir`` against ``model`` (e.g. after copying them around)."""
    wanted = parse_formats(formats)
    report = ExportReport(formats=wanted, tolerance=tolerance)
    for side, tower, tables in _sides(model, user_features, user_history, item_features):
        for fmt in wanted:
            path = Path(out_dir) / f"{side}_tower{SUFFIX[fmt]}"
            report.files[f"{side}.{fmt}"] = str(path)
            report.parity[f"{side}.{fmt}"] = check_parity(fmt, path, tower, tables, side)
    _raise_if_drifted(report)
    return report


def _raise_if_drifted(report: ExportReport) -> None:
    bad = {k: v for k, v in report.max_abs_diff.items() if not v <= report.tolerance}  # NaN too
    if bad:
        files = ", ".join(f"{report.files[k]} ({v:.3g})" for k, v in bad.items())
        raise ParityError(
            f"exported towers differ from the PyTorch model by more than {report.tolerance}: "
            f"{files}; re-export from this model, or report a bug if a fresh export fails"
        )
