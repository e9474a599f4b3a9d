"""Run the service with uvicorn: `python -m {{ cookiecutter.package_name }} serve`.

One process is right for a laptop, a test or a container that an orchestrator replicates. On
one bigger machine, run several worker processes (see docs/serving.md for gunicorn with
uvicorn workers); each process loads its own copy of the artifacts.
"""

from __future__ import annotations

import os
from pathlib import Path

from .app import ENV_PREFIX


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    artifacts: str | os.PathLike[str] | None = None,
    routes: str | os.PathLike[str] | None = None,
    workers: int = 1,
    log_level: str = "info",
) -> None:
    """Serve until interrupted. If startup fails (missing artifacts), uvicorn exits with code 3."""
    import uvicorn

    # Through the environment, so that every worker process sees the same settings.
    if artifacts is not None:
        os.environ[ENV_PREFIX + "ARTIFACTS"] = str(Path(artifacts).resolve())
    if routes is not None:
        os.environ[ENV_PREFIX + "ROUTES"] = str(Path(routes).resolve())
    uvicorn.run(
        "{{ cookiecutter.package_name }}.serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        # Longer than the idle timeout of common load balancers (60 s), so they close idle
        # connections first and never send a request down one the server is closing.
        timeout_keep_alive=75,
        access_log=log_level == "debug",
    )
