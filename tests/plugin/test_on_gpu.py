"""The plugin on a real GPU machine. These are the hardware tests of ``nox -s gpu_tests``
(``--recenv-gpu=require --recenv-only-hardware``): on a CPU machine they skip with the probe's
reason, on a GPU lane they must run, and they check the live report against torch and faiss
themselves (imported here, in tests that the markers have cleared, never by the plugin)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pytest_recenv.hardware.report import HardwareReport

Run = Callable[..., pytest.RunResult]


@pytest.mark.cuda
def test_live_report_matches_what_torch_sees(hardware: HardwareReport) -> None:
    import torch

    assert hardware.source == "live"
    assert torch.cuda.device_count() == len(hardware.devices)
    for device in hardware.devices:
        assert torch.cuda.get_device_capability(device.ordinal) == device.capability
        props = torch.cuda.get_device_properties(device.ordinal)
        # NVML counts memory reserved by the driver that CUDA does not report; 5 % covers it.
        assert abs(props.total_memory - device.memory) <= 0.05 * device.memory


@pytest.mark.cuda
def test_torch_device_runs_a_kernel(torch_device: str) -> None:
    import torch

    assert torch_device == "cuda:0"
    assert (torch.arange(3, device=torch_device) * 2).sum().item() == 6


@pytest.mark.faiss_gpu
def test_faiss_gpu_resources_drive_a_gpu_index(faiss_gpu_resources: object) -> None:
    import faiss
    import numpy as np

    base = np.random.default_rng(0).standard_normal((256, 16)).astype("float32")
    index = faiss.GpuIndexFlatL2(faiss_gpu_resources, 16)
    index.add(base)
    _, ids = index.search(base[:4], 1)
    assert ids.ravel().tolist() == [0, 1, 2, 3]


@pytest.mark.cuda
def test_require_mode_passes_a_real_gpu_run(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.cuda
        def test_gpu(torch_device):
            import torch
            assert torch.ones(1, device=torch_device).item() == 1.0
        """
    )
    result = run("--recenv-gpu=require", subprocess=True)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["recenv: gpu=require probe=live driver=* cuda=* devices (0: *"])


@pytest.mark.multi_gpu(2)
def test_xdist_workers_land_on_distinct_real_gpus(pytester: pytest.Pytester, run: Run) -> None:
    seen = pytester.path / "seen.jsonl"
    pytester.makepyfile(
        f"""
        import json, os
        import pytest

        @pytest.mark.cuda
        def test_gpu(torch_device):
            import torch
            props = torch.cuda.get_device_properties(torch_device)
            row = dict(worker=os.environ["PYTEST_XDIST_WORKER"], uuid=str(props.uuid))
            with open({str(seen)!r}, "a") as fh:
                fh.write(json.dumps(row) + "\\n")
        """
    )
    result = run("-p", "xdist.plugin", "-n", "2", "--dist", "each", "--recenv-gpu=require")
    result.assert_outcomes(passed=2)
    rows = [json.loads(line) for line in seen.read_text().splitlines()]
    assert len({row["worker"] for row in rows}) == 2
    assert len({row["uuid"] for row in rows}) == 2, rows
