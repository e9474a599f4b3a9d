"""pytest-xdist: the controller hands each worker the hardware report, the mode and a GPU of its
own; workers send back their tally and any usage error; tests needing several GPUs hold a run-wide
lock. Used only where xdist is loaded (see the hook class in :mod:`pytest_recenv.plugin`).
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import pytest

from pytest_recenv.hardware.markers import MarkerError, needs_of
from pytest_recenv.hardware.report import visible_tokens
from pytest_recenv.hardware.state import NEEDS_KEY, STATE_KEY, marker_names
from pytest_recenv.warning_types import RecenvPinningWarning

MULTI_GPU_GROUP = "recenv-multi-gpu"


def is_wide(item: pytest.Item) -> bool:
    """Does a test need several GPUs: multi_gpu(n), or cuda/faiss_gpu with min_devices > 1?"""
    reqs = item.stash.get(NEEDS_KEY, None)
    if reqs is None:  # at collection, before evaluate_items; bad arguments are reported there
        try:
            reqs = needs_of(item, marker_names(item.config))
        except MarkerError:
            return False
    return any(r.is_gpu and r.min_devices > 1 for r in reqs)


def multi_gpu_lock(item: pytest.Item) -> contextlib.AbstractContextManager[object]:
    """Under xdist, a test needing several GPUs holds a run-wide lock while it runs.

    Workers see every GPU (their own first), so two multi-GPU tests on two workers would share
    devices. The lock serialises them whatever the scheduler does: pytest-xdist 3.8 under pytest 9
    ignores ``xdist_group`` (it rewrites ``item._nodeid``, which pytest 9 no longer reads).
    """
    state = item.config.stash.get(STATE_KEY, None)
    if state is None or state.tier1_dir is None or not is_wide(item):
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(str(Path(state.tier1_dir) / "multi-gpu.lock"))


def configure_node(config: pytest.Config, node: Any) -> None:
    """On the xdist controller: give a starting worker the report, the mode and its GPU."""
    state = config.stash[STATE_KEY]
    if state.tier1_dir is None:
        state.tier1_dir = tempfile.mkdtemp(prefix="recenv-tier1-")
    node.workerinput["recenv_report"] = state.report.to_json()
    node.workerinput["recenv_mode"] = state.mode
    node.workerinput["recenv_tier1_dir"] = state.tier1_dir
    tokens = visible_tokens(state.report)
    if not tokens:
        return
    worker = str(node.gateway.id)
    index = int(worker[2:]) if worker[2:].isdigit() else len(state.pins)
    slots = config.getoption("recenv_slots_per_gpu")
    first = (index // slots) % len(tokens)
    if index == slots * len(tokens):
        warn(
            config,
            f"xdist worker {worker} is beyond {len(tokens)} GPU(s) x "
            f"--recenv-slots-per-gpu={slots}: GPUs get more workers than that; lower -n "
            "or raise --recenv-slots-per-gpu",
        )
    # The worker's own GPU first, the rest after it: cuda:0 is its device, and a multi_gpu test
    # (grouped, so one at a time) can still reach the others.
    pin = ",".join(tokens[first:] + tokens[:first])
    node.workerinput["recenv_pin"] = pin
    state.pins[worker] = pin


def node_down(
    config: pytest.Config, workeroutput: dict[str, Any], worker: str, error: object
) -> None:
    """On the controller: merge a finished worker's tally (every worker collects every test).

    A worker that died of a usage error (a pinning warning the filters make an error, say)
    stops the run with that message: xdist would otherwise print the worker's traceback and
    start a replacement, which fails the same way or trips a different, misleading check.
    A usage error found at a worker's collection (bad marker arguments) is raised here as it is
    serially: the worker's own stderr is lost, and xdist would end on an INTERNALERROR.
    """
    if workeroutput.get("recenv_usage_error"):
        raise pytest.UsageError(workeroutput["recenv_usage_error"])
    usage = _usage_error_of(error)
    if usage is not None:
        pytest.exit(f"xdist worker {worker} could not start: {usage}", pytest.ExitCode.USAGE_ERROR)
    state = config.stash[STATE_KEY]
    if workeroutput.get("recenv_tally"):
        state.tally.merge(workeroutput["recenv_tally"])
    if workeroutput.get("recenv_deselected") is not None:
        state.only_hardware_deselected = workeroutput["recenv_deselected"]


def _usage_error_of(error: object) -> str | None:
    """The message of a ``pytest.UsageError`` that ended a worker, from xdist's crash report
    (execnet's ``RemoteError``, whose text is the worker's traceback)."""
    if error is None:
        return None
    for line in reversed(str(error).strip().splitlines()):
        for prefix in ("pytest.UsageError: ", "_pytest.config.exceptions.UsageError: "):
            if line.startswith(prefix):
                return line[len(prefix) :]
    return None


def warn(config: pytest.Config, message: str) -> None:
    """A pinning warning; where the warning filters make it an error (as the generated project's
    ``error::pytest_recenv.RecenvWarning`` does), a usage error with the same text, not a crash."""
    try:
        config.issue_config_time_warning(RecenvPinningWarning(message), stacklevel=3)
    except RecenvPinningWarning:
        raise pytest.UsageError(
            f"{message} (RecenvPinningWarning is turned into an error by this run's warning "
            "filters; to let it pass, add 'default::pytest_recenv.RecenvPinningWarning')"
        ) from None
