"""The plugin inside real pytest runs (pytester): modes, options, header, summary, collection."""

from __future__ import annotations

from collections.abc import Callable

import pytest

SUITE = """
import pytest

def test_plain():
    pass

@pytest.mark.cuda
def test_one_gpu():
    pass

@pytest.mark.multi_gpu(2)
def test_two_gpus():
    pass

@pytest.mark.cuda(min_memory="64GiB", min_capability=(9, 0))
def test_big_hopper():
    pass

@pytest.mark.faiss_gpu
def test_faiss_on_gpu():
    pass
"""
Run = Callable[..., pytest.RunResult]
ReportArg = Callable[[str], str]


def _nvml_answers() -> bool:
    """Ask NVML directly, through pynvml, the way every NVIDIA tool does."""
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        return False
    pynvml.nvmlShutdown()
    return True


def test_live_probe_tells_the_truth_about_the_driver(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(SUITE)
    result = run("-rs")
    header = next(line for line in result.outlines if line.startswith("recenv: gpu="))
    assert "probe=live" in header
    if _nvml_answers():  # checked independently of the plugin's own probe
        assert "no NVIDIA driver" not in header
    else:
        assert "driver=none cuda=0 devices (no NVIDIA driver: libnvidia-ml not found)" in header
        result.assert_outcomes(passed=1, skipped=4)
        result.stdout.fnmatch_lines(
            [
                "SKIPPED [[]1[]] *.py:6: needs 1 CUDA "
                "device, found 0 (no NVIDIA driver: libnvidia-ml not found)"
            ]
        )


def test_injected_two_gpu_report_drives_device_memory_and_capability_limits(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(SUITE)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbbbbbbb-2222-4b4b-8b8b-000000000000")
    result = run("-rs", report_arg("h100_x2_mig.json"))
    result.assert_outcomes(passed=4, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "recenv: gpu=auto probe=injected driver=550.90.07 cuda=1 devices "
            "(0: NVIDIA H100 80GB HBM3, sm_90, 79.6 GiB) "
            "CUDA_VISIBLE_DEVICES='GPU-bbbbbbbb-2222-4b4b-8b8b-000000000000'",
            "recenv: torch=2.5.1+cu124 (CUDA 12.4; arch list covers sm_90) "
            "faiss=1.10.0 (cuda build, 2 GPUs)",
            "SKIPPED [[]1[]] *:10: needs 2 CUDA devices, found 1 (NVIDIA H100 80GB HBM3, sm_90)",
        ]
    )


def test_summary_counts_hardware_tests_and_groups_skips_by_reason(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    pytester.makepyfile(SUITE)
    result = run(report_arg("t4_x1.json"))
    result.assert_outcomes(passed=2, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "recenv: hardware tests: 4 selected, 1 ran, 1 passed, 0 failed, 3 skipped",
            "recenv:   1 skipped: needs 1 CUDA device with >= 64 GiB and >= sm_90, found 0 "
            "(Tesla T4, sm_75, 15 GiB)",
            "recenv:   1 skipped: needs 2 CUDA devices, found 1 (Tesla T4, sm_75)",
            "recenv:   1 skipped: needs faiss built with GPU support; "
            "found faiss 1.15.1 (CPU build)",
        ]
    )


def test_require_mode_turns_a_hardware_skip_into_an_error(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makepyfile(SUITE)
    result = run("--recenv-gpu=require")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, errors=4)
    result.stdout.fnmatch_lines(
        [
            "*--recenv-gpu=require: a hardware test may not skip; it would have skipped because: "
            "needs 1 CUDA device, found 0 (*)"
        ]
    )


def test_require_mode_fails_a_session_where_no_hardware_test_ran(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = run("--recenv-gpu=require")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "recenv: hardware tests: 0 selected, 0 ran, 0 passed, 0 failed, 0 skipped",
            "recenv: FAILED: --recenv-gpu=require and no hardware test ran*",
        ]
    )


def test_require_mode_refuses_an_injected_report(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    pytester.makepyfile(SUITE)
    result = run("--recenv-gpu=require", report_arg("h100_x2_mig.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --recenv-gpu=require refuses the injected report --recenv-probe-file=*"
            "h100_x2_mig.json: a required GPU run must probe the real machine; drop "
            "--recenv-probe-file"
        ]
    )


def test_skip_mode_skips_hardware_tests_even_where_hardware_exists(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    pytester.makepyfile(SUITE)
    result = run("-rs", "--recenv-gpu=skip", report_arg("h100_x2_mig.json"))
    result.assert_outcomes(passed=1, skipped=4)
    result.stdout.fnmatch_lines(
        ["recenv:   4 skipped: hardware test skipped by --recenv-gpu=skip (0: NVIDIA H100 *)"]
    )


def test_mode_comes_from_env_then_ini(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(SUITE)
    pytester.makeini("[pytest]\nrecenv_gpu = skip\n")
    assert "recenv: gpu=skip probe=injected" in run(report_arg("t4_x1.json")).stdout.str()
    monkeypatch.setenv("RECENV_GPU", "auto")
    assert "recenv: gpu=auto probe=injected" in run(report_arg("t4_x1.json")).stdout.str()
    result = run("--recenv-gpu=skip", report_arg("t4_x1.json"))  # the command line wins
    assert "recenv: gpu=skip" in result.stdout.str()
    monkeypatch.setenv("RECENV_GPU", "sometimes")
    result = run(report_arg("t4_x1.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: RECENV_GPU='sometimes': expected one of auto, require, skip;*"]
    )


def test_expect_gpus_asserts_the_visible_count(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    pytester.makepyfile(SUITE)
    assert run("--recenv-expect-gpus=1", report_arg("t4_x1.json")).ret == pytest.ExitCode.OK
    result = run("--recenv-expect-gpus=2", report_arg("t4_x1.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --recenv-expect-gpus=2: expected 2 visible CUDA devices, found 1 "
            "(0: Tesla T4, sm_75, 15 GiB); check CUDA_VISIBLE_DEVICES and the driver"
        ]
    )


def test_only_hardware_deselects_the_rest_and_says_how_many(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    pytester.makepyfile(SUITE + "\ndef test_other():\n    pass\n")
    result = run("--recenv-only-hardware", report_arg("h100_x2_mig.json"))
    result.assert_outcomes(passed=4, deselected=2)
    result.stdout.fnmatch_lines(["recenv: --recenv-only-hardware deselected 2 non-hardware tests"])


def test_only_hardware_counts_reach_the_xdist_controller(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    pytester.makepyfile(SUITE + "\ndef test_other():\n    pass\n")
    result = run(
        "-p", "xdist.plugin", "-n", "2", "--recenv-only-hardware", report_arg("t4_x1.json")
    )
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "recenv: --recenv-only-hardware deselected 2 non-hardware tests",
            "recenv: hardware tests: 4 selected, 1 ran, 1 passed, 0 failed, 3 skipped",
        ]
    )


def test_bad_marker_arguments_are_one_usage_error_listing_each(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.cuda(min_memory="lots")
        def test_a():
            pass

        @pytest.mark.multi_gpu(1)
        def test_b():
            pass
        """
    )
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: bad hardware marker arguments:",
            "  test_bad_marker_arguments_are_one_usage_error_listing_each.py:3: *::test_a: "
            "@pytest.mark.cuda(min_memory='lots'): expected min_memory as a positive number of "
            "bytes or a size like '16GiB' or '512MiB', got 'lots'",
            "  *.py:7: *::test_b: @pytest.mark.multi_gpu(1): expected n as an integer >= 2, got 1",
        ]
    )


def test_collect_only_shows_the_skip_reasons(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    pytester.makepyfile(SUITE)
    result = run("--co", "-q", "-rs", report_arg("t4_x1.json"))
    result.stdout.fnmatch_lines(
        [
            "recenv: SKIP *::test_two_gpus: needs 2 CUDA devices, found 1 (Tesla T4, sm_75)",
            "recenv: SKIP *::test_faiss_on_gpu: needs faiss built with GPU support; "
            "found faiss 1.15.1 (CPU build)",
        ]
    )


def test_fixtures_follow_the_hardware(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_recenv import device_params

        def test_device(torch_device, hardware, pytestconfig):
            expected = pytestconfig.getoption("--expect-device")
            assert (torch_device, hardware.source) == (expected, "injected")

        @pytest.mark.parametrize("device", device_params(min_capability=(8, 0)))
        def test_twin(device):
            assert device in ("cpu", "cuda")

        def test_resources(faiss_gpu_resources):
            raise AssertionError("never runs without a GPU faiss")
        """
    )
    pytester.makeconftest(
        "def pytest_addoption(parser):\n    parser.addoption('--expect-device')\n"
    )
    # The injected report claims a GPU faiss this machine lacks, so the fixture itself stays out.
    result = run("-k", "not resources", "--expect-device=cuda:0", report_arg("h100_x2_mig.json"))
    result.assert_outcomes(passed=3, deselected=1)
    result = run("-rs", "--expect-device=cpu", report_arg("cpu_only.json"))
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] *: needs 1 CUDA device with >= sm_80, found 0 (no NVIDIA driver: *)",
            "SKIPPED [[]1[]] *: needs 1 CUDA device for faiss GPU, found 0 (no NVIDIA driver: *)",
        ]
    )


def test_plugin_works_without_xdist(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    pytester.makepyfile(SUITE)
    result = run("-p", "no:xdist", report_arg("t4_x1.json"))
    result.assert_outcomes(passed=2, skipped=3)
    assert (
        "recenv: hardware tests: 4 selected, 1 ran, 1 passed, 0 failed, 3 skipped"
        in result.outlines
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            None,
            "ERROR: --recenv-probe-file *missing.json: cannot read it (No such file or directory)",
        ),
        ("{not json", "ERROR: *missing.json:1: expected a JSON hardware report, got invalid JSON*"),
        (
            '{"gpus": []}',
            "ERROR: *missing.json: expected keys 'gpus', 'torch' and 'faiss' in a "
            "recorded report, missing [[]'torch', 'faiss'[]]; "
            "use null for a library that is not installed",
        ),
    ],
    ids=["absent", "not-json", "incomplete"],
)
def test_a_bad_probe_file_is_a_usage_error_naming_the_file(
    pytester: pytest.Pytester, run: Run, content: str | None, message: str
) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    if content is not None:
        (pytester.path / "missing.json").write_text(content)
    result = run(f"--recenv-probe-file={pytester.path / 'missing.json'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_markers_are_registered_with_their_signature_and_an_example(
    pytester: pytest.Pytester, run: Run
) -> None:
    result = run("--markers")
    result.stdout.fnmatch_lines_random(
        [
            "@pytest.mark.cuda(min_devices=1, min_memory=None, min_capability=None): skip unless *"
            "Example: @pytest.mark.cuda(min_memory=*",
            "@pytest.mark.multi_gpu(n): sugar for cuda(min_devices=n)* "
            "Example: @pytest.mark.multi_gpu(2)",
            "@pytest.mark.faiss: skip unless faiss imports* Example: @pytest.mark.faiss",
            "@pytest.mark.faiss_gpu(min_devices=1): skip unless faiss is a CUDA build* "
            "Example: @pytest.mark.faiss_gpu",
        ]
    )
