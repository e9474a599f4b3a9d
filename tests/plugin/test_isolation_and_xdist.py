"""What needs real processes: the pytest process never imports torch/faiss, tier 1 runs only when
needed, and xdist workers get the controller's report and GPUs of their own."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., pytest.RunResult]
ReportArg = Callable[[str], str]

GPU_1 = "GPU-bbbbbbbb-2222-4b4b-8b8b-000000000000"
MIG_1 = "MIG-11111111-aaaa-5b5b-9c9c-000000000001"

MODULES_CONFTEST = """
import json, sys
from pathlib import Path

def pytest_unconfigure(config):
    loaded = {name: name in sys.modules for name in ("torch", "faiss", "numpy")}
    Path("modules.json").write_text(json.dumps(loaded))
"""


def test_a_cpu_only_run_never_imports_torch_or_faiss_in_the_pytest_process(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makeconftest(MODULES_CONFTEST)
    pytester.makepyfile(
        """
        import pytest

        def test_plain():
            pass

        @pytest.mark.cuda
        def test_gpu():
            pass

        @pytest.mark.faiss
        def test_faiss_cpu():
            pass
        """
    )
    result = run("-rs", subprocess=True)
    # The faiss test passing proves the child really imported faiss and searched an index.
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["recenv: tier-1 probe: faiss=* (cpu build, 0 GPUs)"])
    loaded = json.loads((pytester.path / "modules.json").read_text())
    assert loaded == {"torch": False, "faiss": False, "numpy": False}


def test_no_child_probe_runs_when_tier_0_already_decides(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.cuda
        def test_gpu():
            pass
        """
    )
    result = run()
    result.assert_outcomes(skipped=1)
    assert not [line for line in result.outlines if line.startswith("recenv: tier-1 probe")]


def _write_seen(path: str) -> str:
    return f"""
import json, os
from pathlib import Path
import pytest

SEEN = Path({path!r})

def record(name, hardware, torch_device):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    row = dict(worker=worker, test=name, cvd=os.environ.get("CUDA_VISIBLE_DEVICES"),
               first=hardware.devices[0].uuid, n=len(hardware.devices), device=torch_device)
    with SEEN.open("a") as fh:
        fh.write(json.dumps(row) + "\\n")
"""


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    "visible", [f"{GPU_1},{MIG_1}", "1,0"], ids=["gpu-and-mig-uuids", "ordinals"]
)
def test_xdist_workers_are_pinned_to_distinct_devices(
    pytester: pytest.Pytester,
    run: Run,
    report_arg: ReportArg,
    monkeypatch: pytest.MonkeyPatch,
    visible: str,
) -> None:
    seen = pytester.path / "seen.jsonl"
    pytester.makepyfile(
        _write_seen(str(seen))
        + """
@pytest.mark.cuda
def test_gpu(hardware, torch_device):
    record("gpu", hardware, torch_device)
"""
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    result = run("-p", "xdist.plugin", "-n", "2", "--dist", "each", report_arg("h100_x2_mig.json"))
    result.assert_outcomes(passed=2)
    rows = {row["worker"]: row for row in _rows(seen)}
    tokens = visible.split(",")
    assert rows["gw0"]["cvd"] == f"{tokens[0]},{tokens[1]}"
    assert rows["gw1"]["cvd"] == f"{tokens[1]},{tokens[0]}"
    assert rows["gw0"]["first"] != rows["gw1"]["first"]
    assert {rows[w]["device"] for w in rows} == {"cuda:0"}
    result.stdout.fnmatch_lines(
        [
            f"recenv: worker gw0 pinned to CUDA_VISIBLE_DEVICES={tokens[0]},{tokens[1]}",
            f"recenv: worker gw1 pinned to CUDA_VISIBLE_DEVICES={tokens[1]},{tokens[0]}",
            "recenv: hardware tests: 1 selected, 2 ran, 2 passed, 0 failed, 0 skipped",
        ]
    )


def test_xdist_slots_per_gpu_packs_workers_onto_each_gpu(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    result = run(
        "-p", "xdist.plugin", "-n", "3", "--recenv-slots-per-gpu=2", report_arg("h100_x2_mig.json")
    )
    result.stdout.fnmatch_lines(
        [
            "recenv: worker gw0 pinned to CUDA_VISIBLE_DEVICES=0,1",
            "recenv: worker gw1 pinned to CUDA_VISIBLE_DEVICES=0,1",
            "recenv: worker gw2 pinned to CUDA_VISIBLE_DEVICES=1,0",
        ],
        consecutive=False,
    )


@pytest.mark.parametrize(
    "wide", ["multi_gpu(2)", "cuda(min_devices=2)", "faiss_gpu(min_devices=2)"]
)
def test_xdist_multi_gpu_tests_never_run_at_the_same_time(
    pytester: pytest.Pytester,
    run: Run,
    report_arg: ReportArg,
    monkeypatch: pytest.MonkeyPatch,
    wide: str,
) -> None:
    times = pytester.path / "times.jsonl"
    pytester.makepyfile(
        f"""
import json, os, time
from pathlib import Path
import pytest

@pytest.mark.parametrize("i", range(4))
@pytest.mark.{wide}
def test_wide(i, hardware):
    start = time.monotonic()
    time.sleep(0.15)
    row = dict(worker=os.environ["PYTEST_XDIST_WORKER"], n=len(hardware.devices),
               start=start, end=time.monotonic())
    with Path({str(times)!r}).open("a") as fh:
        fh.write(json.dumps(row) + "\\n")
"""
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    result = run("-p", "xdist.plugin", "-n", "2", report_arg("h100_x2_mig.json"))
    result.assert_outcomes(passed=4)
    rows = sorted(_rows(times), key=lambda r: float(r["start"]))  # type: ignore[arg-type]
    assert len({r["worker"] for r in rows}) == 2  # both workers took some ...
    for earlier, later in itertools.pairwise(rows):  # ... yet no two overlapped
        assert float(later["start"]) >= float(earlier["end"]), rows  # type: ignore[arg-type]
    assert {r["n"] for r in rows} == {2}  # and each still saw both GPUs


def test_xdist_workers_share_one_tier_1_probe_of_the_real_machine(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.faiss
        @pytest.mark.parametrize("i", range(4))
        def test_faiss_cpu(i):
            pass
        """
    )
    result = run("-p", "xdist.plugin", "-n", "2")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["recenv: tier-1 probe: faiss=* (cpu build, 0 GPUs)"])


def test_xdist_require_mode_fails_when_no_worker_ran_a_hardware_test(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = run("-p", "xdist.plugin", "-n", "2", "--recenv-gpu=require")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["recenv: FAILED: --recenv-gpu=require and no hardware test ran*"])


def test_xdist_warns_when_workers_outnumber_gpu_slots(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = run("-p", "xdist.plugin", "-n", "2", report_arg("t4_x1.json"))
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        ["*RecenvPinningWarning: xdist worker gw1 is beyond 1 GPU(s) x --recenv-slots-per-gpu=1*"]
    )


def test_a_broken_faiss_install_is_reported_by_the_child_probe(
    pytester: pytest.Pytester, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A faiss that fails at import, as a half-installed or ABI-mismatched build does; the child
    # finds it first on PYTHONPATH.
    shadow = pytester.mkdir("shadow")
    (shadow / "faiss.py").write_text("raise RuntimeError('libfaiss.so: undefined symbol')\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.faiss
        def test_faiss():
            pass
        """
    )
    result = run("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED * needs faiss importable; found faiss-cpu failing: "
            "RuntimeError: libfaiss.so: undefined symbol"
        ]
    )


@pytest.mark.parametrize(
    ("faiss_source", "timeout", "expected"),
    [
        ("import os\nos._exit(3)\n", "180", "probe child failed: exit 3: no output"),
        (
            "import time\ntime.sleep(30)\n",
            "0.5",
            "probe child failed: Command * timed out after 0.5 seconds",
        ),
    ],
    ids=["crash", "hang"],
)
def test_a_crashing_or_hanging_child_probe_becomes_a_reason(
    pytester: pytest.Pytester,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
    faiss_source: str,
    timeout: str,
    expected: str,
) -> None:
    shadow = pytester.mkdir("shadow")
    (shadow / "faiss.py").write_text(faiss_source)
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    monkeypatch.setenv("RECENV_PROBE_TIMEOUT", timeout)
    pytester.makepyfile("import pytest\n\n@pytest.mark.faiss\ndef test_faiss():\n    pass\n")
    result = run("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [f"SKIPPED * needs faiss importable; found faiss failing: {expected}"]
    )


def test_require_mode_fails_a_skip_raised_inside_a_hardware_test_but_not_an_xfail(
    pytester: pytest.Pytester, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.faiss
        def test_skips_itself():
            pytest.skip("gave up")

        @pytest.mark.faiss
        @pytest.mark.xfail(reason="known bug", strict=True)
        def test_known_bug():
            raise AssertionError

        @pytest.mark.faiss
        def test_fine():
            pass
        """
    )
    result = run("--recenv-gpu=require")
    result.assert_outcomes(failed=1, xfailed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*--recenv-gpu=require: a hardware test may not skip; it would have skipped because: "
            "gave up"
        ]
    )


@pytest.fixture
def cuda_up_at_import(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A conftest that touches CUDA at import time: it imports a stand-in torch whose CUDA is
    already up (on PYTHONPATH, so a subprocess run and its xdist workers see it too)."""
    shadow = pytester.mkdir("shadow")
    (shadow / "torch.py").write_text(
        "import types\ncuda = types.SimpleNamespace(is_initialized=lambda: True)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    pytester.makeconftest("import torch\n")


@pytest.mark.usefixtures("cuda_up_at_import")
def test_a_worker_warns_when_cuda_was_up_before_it_could_be_pinned(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    # In a subprocess: xdist hands workers the controller's sys.path, which must see the shadow.
    result = run("-p", "xdist.plugin", "-n", "1", report_arg("t4_x1.json"), subprocess=True)
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*RecenvPinningWarning: CUDA was initialised before pytest-recenv could pin worker gw0 "
            "to 0; a conftest or plugin touches CUDA at import time*"
        ]
    )


def test_a_pinning_warning_made_an_error_by_filters_is_a_usage_error_not_a_crash(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    # Seen on a 1-GPU machine: `pytest -n 4` in a project whose filterwarnings has
    # error::pytest_recenv.RecenvWarning ended in an INTERNALERROR traceback.
    pytester.makeini("[pytest]\nfilterwarnings =\n    error::pytest_recenv.RecenvWarning\n")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = run("-p", "xdist.plugin", "-n", "2", report_arg("t4_x1.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: xdist worker gw1 is beyond 1 GPU(s) x --recenv-slots-per-gpu=1*lower -n*"]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


@pytest.mark.usefixtures("cuda_up_at_import")
def test_a_worker_side_pinning_error_stops_the_run_with_its_message(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    # The worker-side twin of the test above: a conftest has CUDA up before the worker could be
    # pinned, and the filters make that warning an error. xdist used to print the worker's
    # traceback, start a replacement, and end on an unrelated "gw1 is beyond 1 GPU(s)" error.
    pytester.makeini("[pytest]\nfilterwarnings =\n    error::pytest_recenv.RecenvWarning\n")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = run("-p", "xdist.plugin", "-n", "1", report_arg("t4_x1.json"), subprocess=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(
        [
            "*xdist worker gw0 could not start: CUDA was initialised before pytest-recenv could "
            "pin worker gw0 to 0*add 'default::pytest_recenv.RecenvPinningWarning'*"
        ]
    )
    output = result.stdout.str() + result.stderr.str()
    for absent in ("node down", "Traceback", "replacing crashed worker", "beyond", "INTERNALERROR"):
        assert absent not in output, absent


BAD_MARKERS = """
import pytest

@pytest.mark.cuda(min_memory="lots")
def test_a():
    pass

@pytest.mark.multi_gpu(1)
def test_b():
    pass
"""


def test_bad_marker_arguments_under_xdist_are_the_same_usage_error_as_serially(
    pytester: pytest.Pytester, run: Run
) -> None:
    # Workers collect, so the error is raised there; xdist used to end in an INTERNALERROR
    # (exit 3, "assert not crashitem") and the message was lost.
    pytester.makepyfile(BAD_MARKERS)
    serial = run()
    under_xdist = run("-p", "xdist.plugin", "-n", "2")
    for result in (serial, under_xdist):
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    errors = [line for line in serial.errlines if line.strip()]
    assert errors[0] == "ERROR: bad hardware marker arguments:"
    assert len(errors) == 3
    under_xdist.stderr.fnmatch_lines(errors, consecutive=True)
