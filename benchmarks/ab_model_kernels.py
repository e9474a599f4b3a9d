"""Each of the two-tower model's former training kernels against the textbook model, side by side.

Until issue 14 the generated project trained with four hand-written speed-ups: a written-out
backward for the user tower's history mean (``_MeanOfRealItems``), a thread-count switch between
two ways of adding its gradient (``bag_adder``: a serial sparse product on one CPU thread,
``index_add_`` elsewhere), a closed-form normalisation backward (``unit_rows``) and an in-batch
softmax over distinct items (``TwoTower.forward``). The project now trains the textbook model.
This script measures what each kernel paid, on a project baked from a template commit that
still had them, by swapping textbook versions in one at a time inside one process and timing
``bench_training.run`` (the vectorised loop) for each variant, interleaved, at the defaults::

    git archive fcff492 | tar -x -C /tmp/old-template
    cookiecutter --no-input /tmp/old-template -o /tmp/old-bake python_version=3.11
    cd /tmp/old-bake/shop-recs && recenv build -q   # prints ENV
    OMP_NUM_THREADS=1 PYTHONPATH=src ENV/bin/python /path/to/benchmarks/ab_model_kernels.py . \
        --repeats 9 --epochs 2

Prints, for each variant, the median samples/s and the median over repeats of its speed
relative to the textbook model (the same repeat), plus the load average.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


def load_bench(project: Path) -> ModuleType:
    """The baked project's ``benchmarks/bench_training.py``, imported with its package."""
    sys.path.insert(0, str(project / "src"))
    path = project / "benchmarks" / "bench_training.py"
    spec = importlib.util.spec_from_file_location("bench_training", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def variants(bench: ModuleType) -> dict[str, dict[str, Any]]:
    """Replacements per variant: which attributes of towers / TwoTower take a textbook version."""
    import torch
    import torch.nn.functional as F

    towers = bench.towers
    two_tower = importlib.import_module(towers.__name__.rsplit(".", 1)[0] + ".two_tower")
    kernel_forward = two_tower.TwoTower.forward

    def bag_mean(self: Any, history: Any, real: Any, lengths: Any) -> Any:
        return self.history_embedding(history) / lengths.clamp(min=1)

    def normalize(x: Any, training: bool) -> Any:
        return F.normalize(x, dim=-1)

    def masked_softmax(self: Any, *batch: Any) -> Any:
        user_ids, user_features, history, item_ids, item_features, *rest = batch
        log_q = rest[1] if len(rest) > 1 else None
        if self.negatives == "full":
            return kernel_forward(self, *batch)
        users = self.user_tower(user_ids, user_features, history)
        items = self.item_tower(item_ids, item_features)
        logits = (users @ items.T).float() / self.temperature
        if log_q is not None:
            logits = logits - log_q[item_ids][None, :]
        same = item_ids[:, None] == item_ids[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
        return F.cross_entropy(logits, torch.arange(len(item_ids), device=item_ids.device))

    textbook = {
        (towers.UserTower, "_pool_real_items"): bag_mean,
        (towers, "unit_rows"): normalize,
        (two_tower.TwoTower, "forward"): masked_softmax,
    }
    only_gather = {(towers, "bag_adder"): lambda device: towers.gather_index_add}
    return {
        "all_kernels": {},
        "gather_instead_of_sparse_switch": only_gather,
        "textbook_normalize": {(towers, "unit_rows"): normalize},
        "textbook_history_mean": {(towers.UserTower, "_pool_real_items"): bag_mean},
        "textbook_softmax": {(two_tower.TwoTower, "forward"): masked_softmax},
        "textbook": textbook,
    }


def timed(run: Callable[[], float], swaps: dict[tuple[Any, str], Any]) -> float:
    saved = {key: getattr(*key) for key in swaps}
    try:
        for (owner, name), value in swaps.items():
            setattr(owner, name, value)
        return run()
    finally:
        for (owner, name), value in saved.items():
            setattr(owner, name, value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "project", type=Path, help="a project baked from a template with the kernels"
    )
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    bench = load_bench(args.project.resolve())
    if not hasattr(bench.towers, "bag_adder"):
        parser.error(f"{args.project}: its towers have no kernels to compare; bake commit fcff492")
    import torch

    defaults = bench.TrainConfig()
    size = {"dim": defaults.dim, "hidden": defaults.hidden}

    def run() -> float:
        return bench.run(
            "vectorised", args.epochs, torch.device("cpu"), size, batch_size=defaults.batch_size
        )

    table = variants(bench)
    speeds: dict[str, list[float]] = {name: [] for name in table}
    for _ in range(args.repeats):
        for name, swaps in table.items():
            speeds[name].append(timed(run, swaps))
    base = speeds["textbook"]
    result = {
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "variants": {
            name: {
                "samples_per_s": statistics.median(v),
                "vs_textbook": statistics.median(a / b for a, b in zip(v, base, strict=True)),
                "per_repeat_vs_textbook": [a / b for a, b in zip(v, base, strict=True)],
            }
            for name, v in speeds.items()
        },
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
