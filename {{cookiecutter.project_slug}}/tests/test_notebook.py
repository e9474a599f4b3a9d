"""The exploration notebooks run top to bottom, headless, and show what they promise.

Executed with nbclient on a python3 kernel (ipykernel, from environment.yml), in the
notebooks/ folder as Jupyter would. Nothing is written back: the committed notebooks stay
free of outputs.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def kernel_ready() -> None:
    try:
        import ipykernel  # noqa: F401
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as exc:
        pytest.skip(
            f"needs nbclient, nbformat and ipykernel (in environment.yml); missing {exc.name}"
        )


def execute(path: Path):  # type: ignore[no-untyped-def]  # nbformat.NotebookNode
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        # nbclient's defaults (60 s for the kernel to start, 4 s for a cell's outputs after its
        # reply, then a warning and the outputs missing) are short for a busy CI machine.
        startup_timeout=300,
        iopub_timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return notebook


def test_committed_notebooks_carry_no_outputs() -> None:
    """Outputs in git are noise in diffs and can leak data; run the notebook to see them."""
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        dirty = [i for i, c in enumerate(cells) if c.get("outputs") or c.get("execution_count")]
        assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.fixture(scope="module")
def executed(kernel_ready: None) -> dict[str, object]:
    """Each notebook executed once for the whole module (a kernel start costs seconds)."""
    return {path.name: execute(path) for path in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_notebook_runs_headless_and_plots(executed: dict, path: Path) -> None:
    notebook = executed[path.name]
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "expected at least one plot"


def test_the_exploration_notebook_reports_the_data_stats(executed: dict) -> None:
    notebook = executed["explore.ipynb"]
    texts = [
        output["data"]["text/plain"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "execute_result"
    ]
    stats = next(text for text in texts if "'events'" in text)
    for key in (
        "'users'",
        "'items'",
        "'purchase events'",
        "'share of events on the top 10% of items'",
    ):
        assert key in stats


def test_the_exploration_notebook_stats_add_up_for_the_sample_it_loads(executed: dict) -> None:
    """The figures it shows agree with each other and with ``generate_synthetic(800, 400)``."""
    outputs = [
        output
        for cell in executed["explore.ipynb"].cells
        if cell.cell_type == "code"
        for output in cell.outputs
    ]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    # The notebook finds the package under ../src by itself.
    assert "package: {{ cookiecutter.package_name }}\n" in printed
    stats = next(
        ast.literal_eval(o["data"]["text/plain"])
        for o in outputs
        if o.output_type == "execute_result" and "'events'" in o["data"]["text/plain"]
    )
    assert (stats["users"], stats["items"]) == (800, 400), stats
    by_type = {key: n for key, n in stats.items() if key.endswith(" events")}
    assert sum(by_type.values()) == stats["events"] > 0, stats  # each event has one type
    # The 40 most popular of 400 items hold at least 10% of the events, whatever the data.
    assert 0.1 <= stats["share of events on the top 10% of items"] <= 1.0, stats
    # Distinct (user, item) pairs over all pairs: at most one per event (density has 4 places).
    assert 0 < stats["density"] <= stats["events"] / (800 * 400) + 5e-5, stats
