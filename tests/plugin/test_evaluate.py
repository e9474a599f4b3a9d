"""The pure evaluation: recorded reports in, reasons out (no pytest run involved)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pytest_recenv.hardware.markers import MarkerError, parse, parse_size
from pytest_recenv.hardware.report import FaissInfo, TorchInfo, arch_supported, load_probe_file
from pytest_recenv.hardware.skipping import evaluate
from pytest_recenv.hardware.state import State
from pytest_recenv.hardware.text import header_lines

REPORTS = Path(__file__).resolve().parents[1] / "data" / "reports"

H100_0 = "GPU-aaaaaaaa-1111-4a4a-8a8a-000000000000"
H100_1 = "GPU-bbbbbbbb-2222-4b4b-8b8b-000000000000"
MIG_1 = "MIG-11111111-aaaa-5b5b-9c9c-000000000001"
MIG_2 = "MIG-22222222-aaaa-5b5b-9c9c-000000000002"


def reason(
    mark: pytest.MarkDecorator,
    report_name: str,
    visible: str | None = None,
    **changes: TorchInfo | FaissInfo,
) -> str | None:
    """The skip reason for ``mark`` on a recorded report, its ``torch``/``faiss`` replaced by
    ``changes``; None when the test would run."""
    report = dataclasses.replace(load_probe_file(REPORTS / report_name, visible), **changes)
    skip = evaluate([parse(mark.mark)], report)
    return None if skip is None else skip.reason


def test_it_names_the_device_it_found_when_too_few_are_visible() -> None:
    assert (
        reason(pytest.mark.multi_gpu(2), "h100_x2_mig.json", visible=H100_1)
        == "needs 2 CUDA devices, found 1 (NVIDIA H100 80GB HBM3, sm_90)"
    )


def test_it_says_there_is_no_driver_on_a_cpu_machine() -> None:
    assert reason(pytest.mark.cuda, "cpu_only.json") == (
        "needs 1 CUDA device, found 0 (no NVIDIA driver: libnvidia-ml not found)"
    )


def test_an_empty_cuda_visible_devices_hides_every_gpu() -> None:
    assert reason(pytest.mark.cuda, "t4_x1.json", visible="") == (
        "needs 1 CUDA device, found 0 (CUDA_VISIBLE_DEVICES is empty)"
    )


def test_min_memory_counts_only_devices_that_big() -> None:
    assert reason(pytest.mark.cuda(min_memory="64GiB"), "h100_x2_mig.json", visible=MIG_1) == (
        "needs 1 CUDA device with >= 64 GiB, found 0 "
        "(NVIDIA H100 80GB HBM3 MIG 3g.40gb, sm_90, 39.2 GiB)"
    )
    assert reason(pytest.mark.cuda(min_memory="64GiB"), "h100_x2_mig.json", visible=H100_1) is None


def test_min_capability_rejects_an_older_gpu() -> None:
    assert reason(pytest.mark.cuda(min_capability=(8, 0)), "t4_x1.json") == (
        "needs 1 CUDA device with >= sm_80, found 0 (Tesla T4, sm_75)"
    )
    assert reason(pytest.mark.cuda(min_capability="7.5"), "t4_x1.json") is None


def test_two_h100s_satisfy_every_limit_together() -> None:
    mark = pytest.mark.cuda(min_devices=2, min_memory="30GiB", min_capability=(9, 0))
    assert reason(mark, "h100_x2_mig.json") is None
    assert reason(pytest.mark.cuda(min_devices=3), "h100_x2_mig.json") == (
        "needs 3 CUDA devices, found 2 "
        "(NVIDIA H100 80GB HBM3 MIG 3g.40gb, sm_90; NVIDIA H100 80GB HBM3, sm_90)"
    )


def test_a_process_sees_one_mig_instance_however_many_are_listed() -> None:
    assert reason(pytest.mark.multi_gpu(2), "h100_x2_mig.json", visible=f"{MIG_1},{MIG_2}") == (
        "needs 2 CUDA devices, found 1 (NVIDIA H100 80GB HBM3 MIG 3g.40gb, sm_90; "
        "CUDA enumerates one MIG instance per process)"
    )


def test_visible_list_stops_at_the_first_entry_that_matches_nothing() -> None:
    report = load_probe_file(REPORTS / "h100_x2_mig.json", f"{H100_1},GPU-ffff,{H100_0}")
    assert [d.uuid for d in report.devices] == [H100_1]
    assert report.visible_note == (
        f"CUDA_VISIBLE_DEVICES='{H100_1},GPU-ffff,{H100_0}': 'GPU-ffff' matches no GPU; "
        "later entries ignored"
    )


def test_visible_list_accepts_ordinals_and_uuid_prefixes_in_any_order() -> None:
    report = load_probe_file(REPORTS / "h100_x2_mig.json", "1,GPU-aaaa")
    assert [(d.ordinal, d.token, d.uuid) for d in report.devices] == [
        (0, "1", H100_1),
        (1, "GPU-aaaa", MIG_1),  # GPU 0 is in MIG mode: CUDA opens its first instance
    ]


def test_a_torch_build_without_the_devices_arch_is_not_usable() -> None:
    assert reason(pytest.mark.cuda, "rtx5090_torch_without_sm120.json") == (
        "needs torch built for sm_120; found torch 2.6.0+cu124 with arch list "
        "sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90 (NVIDIA GeForce RTX 5090, sm_120)"
    )


def test_a_failing_first_kernel_is_reported_even_when_ptx_covers_the_arch() -> None:
    report = load_probe_file(REPORTS / "rtx5090_torch_without_sm120.json", None)
    assert report.torch is not None
    ptx = dataclasses.replace(report.torch, arch_list=(*report.torch.arch_list, "compute_90"))
    assert reason(pytest.mark.cuda, "rtx5090_torch_without_sm120.json", torch=ptx) == (
        "needs a CUDA kernel to run; found it failing on cuda:0 (NVIDIA GeForce RTX 5090, sm_120): "
        "RuntimeError: CUDA error: no kernel image is available for execution on the device"
    )


def test_a_cpu_torch_on_a_gpu_machine_is_named() -> None:
    cpu_torch = TorchInfo(version="2.13.0+cpu")
    assert reason(pytest.mark.cuda, "t4_x1.json", torch=cpu_torch) == (
        "needs torch built with CUDA; found torch 2.13.0+cpu (CPU build)"
    )


def test_faiss_gpu_on_a_cpu_faiss_build_says_so() -> None:
    assert reason(pytest.mark.faiss_gpu, "t4_x1.json") == (
        "needs faiss built with GPU support; found faiss 1.15.1 (CPU build)"
    )
    assert reason(pytest.mark.faiss_gpu(min_devices=2), "h100_x2_mig.json") is None


def test_faiss_cpu_beside_faiss_gpu_is_refused() -> None:
    both = FaissInfo(
        version="1.10.0",
        build="cpu",
        num_gpus=0,
        works=True,
        distributions=("faiss-cpu", "faiss-gpu-cu12"),
    )
    assert reason(pytest.mark.faiss_gpu, "t4_x1.json", faiss=both) == (
        "needs faiss-gpu installed alone; found faiss-cpu and faiss-gpu-cu12 both installed, "
        "importing faiss 1.10.0 (CPU build) that sees 0 GPUs; uninstall faiss-cpu"
    )


def test_missing_faiss_is_named_for_the_faiss_marker() -> None:
    missing = reason(pytest.mark.faiss, "cpu_only.json", faiss=FaissInfo())
    assert missing is not None
    assert missing.startswith("needs faiss importable; found no faiss module")
    assert reason(pytest.mark.faiss, "cpu_only.json") is None


@pytest.mark.parametrize(
    ("arch_list", "capability", "expected"),
    [
        (("sm_80",), (8, 6), True),  # same major, newer minor: cubin is binary compatible
        (("sm_86",), (8, 0), False),
        (("sm_90a",), (9, 0), True),
        (("sm_90a",), (10, 0), False),  # arch-specific cubins run on exactly that arch
        (("sm_90",), (12, 0), False),
        (("compute_90",), (12, 0), True),  # PTX is JIT-compiled forward
        (("sm_100", "sm_120"), (12, 0), True),
        ((), (7, 5), False),
    ],
)
def test_arch_list_verdict(
    arch_list: tuple[str, ...], capability: tuple[int, int], expected: bool
) -> None:
    assert arch_supported(arch_list, capability) is expected


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        (
            pytest.mark.cuda(min_memory="16 gigs"),
            "@pytest.mark.cuda(min_memory='16 gigs'): expected min_memory as a positive number of "
            "bytes or a size like '16GiB' or '512MiB', got '16 gigs'",
        ),
        (
            pytest.mark.cuda(min_devices=0),
            "@pytest.mark.cuda(min_devices=0): expected min_devices as an integer >= 1, got 0",
        ),
        (
            pytest.mark.cuda(min_capability=8),
            "@pytest.mark.cuda(min_capability=8): expected min_capability like (8, 0) or '8.0', "
            "got 8",
        ),
        (
            pytest.mark.cuda(min_mem="1GiB"),
            "@pytest.mark.cuda(min_mem='1GiB'): expected cuda(min_devices=1, min_memory=None, "
            "min_capability=None); got an unexpected keyword argument 'min_mem'",
        ),
        (
            pytest.mark.multi_gpu,
            "@pytest.mark.multi_gpu(): expected multi_gpu(n) with n >= 2; missing 1 required "
            "positional argument: 'n'",
        ),
        (
            pytest.mark.multi_gpu(1),
            "@pytest.mark.multi_gpu(1): expected n as an integer >= 2, got 1",
        ),
        (
            pytest.mark.faiss(2),
            "@pytest.mark.faiss(2): expected faiss without arguments; takes 0 positional arguments "
            "but 1 was given",
        ),
    ],
    ids=["memory", "devices", "capability", "unknown-kwarg", "multi-no-n", "multi-1", "faiss-arg"],
)
def test_bad_marker_arguments_say_what_was_expected(
    mark: pytest.MarkDecorator, message: str
) -> None:
    with pytest.raises(MarkerError) as excinfo:
        parse(mark.mark)
    assert str(excinfo.value) == message


def test_sizes_use_binary_and_decimal_units_as_written() -> None:
    assert parse_size("16GiB") == 16 * 2**30
    assert parse_size("16GB") == 16 * 10**9
    assert parse_size("512 MiB") == 512 * 2**20
    assert parse_size(1024) == 1024


@pytest.mark.parametrize("name", sorted(p.name for p in REPORTS.glob("*.json")))
def test_recorded_reports_round_trip_through_json(name: str) -> None:
    from pytest_recenv.hardware.report import HardwareReport

    report = load_probe_file(REPORTS / name, None)
    assert HardwareReport.from_json(report.to_json()) == report


def test_the_header_names_a_library_that_is_missing_or_not_probed() -> None:
    report = load_probe_file(REPORTS / "cpu_only.json", None)
    missing = dataclasses.replace(
        report, torch=TorchInfo(), faiss=FaissInfo(error="ImportError: libgomp.so.1")
    )
    state = State(mode="auto", report=missing, parent_report=missing)
    assert header_lines(state)[1] == (
        "recenv: torch=missing faiss=missing (ImportError: libgomp.so.1)"
    )
    unprobed = dataclasses.replace(report, faiss=None)
    state = State(mode="auto", report=unprobed, parent_report=unprobed)
    assert header_lines(state)[1] == "recenv: torch=2.13.0+cpu (CPU build) faiss=not probed"
