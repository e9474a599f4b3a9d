"""A project that registers a marker of the same name itself keeps it (issue 13 item 11).

pytest-recenv auto-loads wherever it is installed; a project already labelling tests with its own
``@pytest.mark.cuda`` must not find them skipped or its ``cuda("12.1")`` a usage error.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

Run = Callable[..., pytest.RunResult]
ReportArg = Callable[[str], str]

OWN_CUDA_SUITE = """
import pytest

@pytest.mark.cuda("12.1")
def test_own_label():
    pass

@pytest.mark.cuda
def test_own_label_bare():
    pass

@pytest.mark.multi_gpu(2)
def test_two_gpus():
    pass
"""
OWN_CUDA_INI = "[pytest]\nmarkers =\n    cuda: our own label\n"
LEFT_LINE = "recenv: marker cuda is the project's own (ini markers): pytest-recenv leaves it alone*"
SERIAL_AND_XDIST = pytest.mark.parametrize(
    "xdist", [(), ("-p", "xdist.plugin", "-n", "2")], ids=["serial", "xdist"]
)


@SERIAL_AND_XDIST
def test_a_marker_the_project_registers_itself_is_left_to_the_project(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg, xdist: tuple[str, ...]
) -> None:
    pytester.makeini(OWN_CUDA_INI)
    pytester.makepyfile(OWN_CUDA_SUITE)
    result = run(*xdist, "--strict-markers", "-rs", report_arg("cpu_only.json"))
    # Its cuda tests run (no skip, no usage error); multi_gpu, which it does not own, is ours.
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*needs 2 CUDA devices, found 0 (no NVIDIA driver*"])
    result.stdout.fnmatch_lines([LEFT_LINE])
    assert sum(line.startswith("recenv: marker") for line in result.outlines) == 1
    result.stdout.fnmatch_lines(["recenv: hardware tests: 1 selected, 0 ran, * 1 skipped"])


@SERIAL_AND_XDIST
def test_a_project_without_its_own_marker_gets_the_plugin_unchanged(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg, xdist: tuple[str, ...]
) -> None:
    pytester.makepyfile(OWN_CUDA_SUITE.replace('cuda("12.1")', "cuda(2)"))
    result = run(*xdist, "--strict-markers", report_arg("cpu_only.json"))
    result.assert_outcomes(skipped=3)
    assert not [line for line in result.outlines if line.startswith("recenv: marker")]

    pytester.makepyfile(OWN_CUDA_SUITE)
    result = run(*xdist, report_arg("cpu_only.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*@pytest.mark.cuda('12.1'): expected min_devices as an integer*"])


def test_recenv_markers_hands_a_registered_name_over_to_the_plugin(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    # The project keeps its own line (so --strict-markers passes where the plugin is absent)
    # and opts in.
    pytester.makeini(OWN_CUDA_INI + "recenv_markers = cuda\n")
    pytester.makepyfile(OWN_CUDA_SUITE.replace('cuda("12.1")', "cuda(2)"))
    result = run("--strict-markers", report_arg("cpu_only.json"))
    result.assert_outcomes(skipped=3)
    assert not [line for line in result.outlines if line.startswith("recenv: marker")]


def test_an_unknown_name_in_recenv_markers_is_a_usage_error(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makeini("[pytest]\nrecenv_markers = cuda gpu\n")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: ini option recenv_markers: 'gpu' is not a pytest-recenv marker; "
            "expected names among cuda, multi_gpu, faiss, faiss_gpu"
        ]
    )


def test_pytest_markers_shows_the_projects_own_line_for_a_name_it_keeps(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makeini(OWN_CUDA_INI)
    result = run("--markers")
    result.stdout.fnmatch_lines_random(
        ["@pytest.mark.cuda: our own label", "@pytest.mark.multi_gpu(n): sugar for cuda*"]
    )
    assert "@pytest.mark.cuda(min_devices=1" not in result.stdout.str()


def test_the_faiss_gpu_fixture_does_not_add_a_marker_the_project_keeps(
    pytester: pytest.Pytester, run: Run, report_arg: ReportArg
) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    faiss_gpu: our own label\n")
    pytester.makepyfile("def test_requests(faiss_gpu_resources):\n    pass\n")
    result = run("--co", "-q", "-m", "faiss_gpu", report_arg("cpu_only.json"))
    result.stdout.fnmatch_lines(["*1 deselected*"])
