"""Export the SASRec sequence encoder (``torch.export`` .pt2 and ONNX), parity checked.

The exported program is the encoder: ``item_sequence`` (b, L) int64, left-padded with n_items,
to ``sequence_embedding`` (b, dim) float32, the state after the last item. Scores are that
state times the item vectors (``SASRec.item_vectors``), which the channel keeps as an array,
so a service scores with numpy and runs the encoder only for request-time sequences. The
batch dimension is dynamic; L is the model's ``max_len``.

Files are written by the same code as the two-tower towers (``export._write``) and loaded back
the way a consumer would (``export._runner``); parity is checked on real sequences at batch
sizes 1, 3 and up to ``sample``, and ``ParityError`` is raised past ``tolerance``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .export import DEFAULT_FORMATS, SUFFIX, TOLERANCE, ExportReport, ParityError, _runner, _write
from .export import parse_formats as parse_formats
from .models.sasrec import SASRec

SIDE = "sequence"
INPUT = "item_sequence"


class SequenceEncoder(nn.Module):
    """(b, L) left-padded item sequences -> (b, dim) state after the last item."""

    def __init__(self, model: SASRec) -> None:
        super().__init__()
        self.model = model

    def forward(self, item_sequence: torch.Tensor) -> torch.Tensor:
        return self.model.user_state(item_sequence)


def sequence_parity(
    fmt: str, path: Path, encoder: nn.Module, sequences: np.ndarray, sample: int = 256
) -> dict[int, float]:
    """Max |file - eager| over the first 1, 3 and ``min(sample, n)`` rows of ``sequences``."""
    run = _runner(fmt, path, [INPUT])
    n = min(sample, len(sequences))
    diffs: dict[int, float] = {}
    for b in sorted({1, min(3, n), n}):
        batch = np.ascontiguousarray(sequences[:b], dtype=np.int64)
        with torch.no_grad():
            expected = encoder(torch.as_tensor(batch)).numpy()
        got = np.asarray(run([batch]))
        if got.shape != expected.shape:
            raise ParityError(
                f"{path}: batch of {b} gave shape {got.shape}, eager {expected.shape}"
            )
        diffs[b] = float(np.abs(got - expected).max())
    return diffs


def export_sequence_encoder(
    model: SASRec,
    sequences: np.ndarray,
    out_dir: str | os.PathLike[str],
    formats: str | Sequence[str] = DEFAULT_FORMATS,
    tolerance: float = TOLERANCE,
) -> ExportReport:
    """Write ``sequence_tower.<suffix>`` per format into ``out_dir`` and check each file.

    ``sequences`` (n, max_len) are real left-padded inputs (n >= 2), used as the trace example
    and for the parity check.
    """
    wanted = parse_formats(formats)
    sequences = np.asarray(sequences, dtype=np.int64)
    if sequences.ndim != 2 or sequences.shape[1] != model.max_len or len(sequences) < 2:
        raise ValueError(
            f"sequence export: expected at least 2 sequences of length {model.max_len}, "
            f"got shape {sequences.shape}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoder = SequenceEncoder(model.cpu().eval()).eval()
    # A trace example of batch >= 2 keeps the batch dimension symbolic (export._write).
    example = (torch.as_tensor(sequences[: min(len(sequences), 8)]),)
    report = ExportReport(formats=wanted, tolerance=tolerance)
    for fmt in wanted:
        path = out / f"{SIDE}_tower{SUFFIX[fmt]}"
        _write(fmt, encoder, example, [INPUT], SIDE, path)
        report.files[f"{SIDE}.{fmt}"] = str(path)
        report.parity[f"{SIDE}.{fmt}"] = sequence_parity(fmt, path, encoder, sequences)
    bad = {k: v for k, v in report.max_abs_diff.items() if not v <= tolerance}
    if bad:
        files = ", ".join(f"{report.files[k]} ({v:.3g})" for k, v in bad.items())
        raise ParityError(
            f"exported sequence encoder differs from the PyTorch model by more than "
            f"{tolerance}: {files}"
        )
    return report


def export_sequence_run(
    run_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    formats: str | Sequence[str] = DEFAULT_FORMATS,
) -> dict[str, object]:
    """Export a ``train_sequence`` run's encoder, checked on its users' latest sequences;
    writes ``export_report.json`` beside the files and returns it."""
    import json

    from .training.run_data import load_split
    from .training.sequence import load_sequence_model, pad_left, split_sequences

    cfg, model = load_sequence_model(run_dir)
    split = load_split(run_dir, cfg)
    histories = split_sequences(split, ["train", "val"])
    inputs = pad_left([h for h in histories if len(h)], model.max_len, model.n_items)
    report = export_sequence_encoder(model, inputs, out_dir, formats).to_dict()
    (Path(out_dir) / "export_report.json").write_text(json.dumps(report, indent=2), "utf-8")
    return report
