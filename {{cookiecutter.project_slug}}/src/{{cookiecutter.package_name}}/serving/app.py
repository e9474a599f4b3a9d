"""The FastAPI application: artifacts load once in `lifespan`, requests only read them.

Configuration comes from the arguments of `create_app`, else from the environment:

- `{{ cookiecutter.package_name|upper }}_ARTIFACTS`: the artifacts folder to serve (default `artifacts`)
- `{{ cookiecutter.package_name|upper }}_ROUTES`: a YAML routes file (see `router.py`; default: built-in routes)
- `{{ cookiecutter.package_name|upper }}_RANKER`: the ranker folder written by `rank` (default `<artifacts>/ranker`;
  without one, ranked routes answer in recall order and say so)
- `{{ cookiecutter.package_name|upper }}_FAISS_THREADS`: OpenMP threads per faiss search (default 1)
- `{{ cookiecutter.package_name|upper }}_MAX_BODY_BYTES`: request-body limit, 413 past it (default 65536)

Missing or mismatched artifacts stop the startup with the file named (`ArtifactError`), so a
broken deployment fails its rollout instead of answering 500s; uvicorn and gunicorn print that
error as its one line (`OneLineStartupFailure`), not as a traceback. A client's mistake gets a 4xx
with a short JSON body, never a 500 (see `body.py`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import PROJECT_NAME, __version__
from ..artifacts import ArtifactError, load_artifacts
from ..ranking.inference import RankerFileError
from ..router import RouteConfigError, load_router
from .body import MAX_BODY_BYTES, LimitRequestBody, StrictJSONRoute, excerpt
from .recommender import Recommendation, Recommender
from .schemas import (
    ErrorDetail,
    Health,
    Readiness,
    RecommendRequest,
    RecommendResponse,
    ValidationErrorBody,
)

ENV_PREFIX = "{{ cookiecutter.package_name|upper }}_"
OFFLOAD_ABOVE_ITEMS = 50_000
"""Catalogs bigger than this are searched in the thread pool instead of on the event loop."""

MAX_ERRORS_BYTES = 1536
"""Budget for the 'errors' list of a 422 body: errors past it are counted, not listed."""


STARTUP_PROBLEMS = (ArtifactError, RankerFileError, RouteConfigError)
"""What a startup can fail on that is the deployment's input, not a bug: each names its file."""


class OneLineStartupFailure:
    """ASGI middleware: when the lifespan fails on one of ``STARTUP_PROBLEMS``, the server is
    told that error's one line instead of the traceback Starlette formats. uvicorn prints that
    message (then "Application startup failed. Exiting.", exit 3); so does each gunicorn
    worker. Any other exception keeps its traceback: that is a bug, and should show where."""

    def __init__(self, app: ASGIApp, problems: list[str]) -> None:
        self.app = app
        self.problems = problems  # filled by the lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_plain(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed" and self.problems:
                message = {**message, "message": self.problems[-1]}
            await send(message)

        await self.app(scope, receive, send_plain)


def _setting(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def _body_limit(value: int | None) -> int:
    """The request-body limit in bytes: the argument, else the environment, else the default."""
    name = ENV_PREFIX + "MAX_BODY_BYTES"
    raw = str(value) if value is not None else _setting("MAX_BODY_BYTES", str(MAX_BODY_BYTES))
    if not (raw or "").isdigit() or int(raw or 0) < 1:
        raise ValueError(f"{name}={raw!r}: expected a positive number of bytes, e.g. 65536.")
    return int(raw or 0)


def create_app(
    artifacts_dir: str | os.PathLike[str] | None = None,
    routes_file: str | os.PathLike[str] | None = None,
    max_body_bytes: int | None = None,
    ranker_dir: str | os.PathLike[str] | None = None,
) -> FastAPI:
    """Build the app. Nothing heavy happens here; loading waits for the lifespan (startup)."""
    directory = Path(artifacts_dir or _setting("ARTIFACTS", "artifacts") or "artifacts")
    routes = routes_file or _setting("ROUTES")
    ranker = ranker_dir or _setting("RANKER")
    body_limit = _body_limit(max_body_bytes)

    startup_problems: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _limit_faiss_threads(int(_setting("FAISS_THREADS", "1") or 1))
        try:
            router = load_router(routes)  # RouteConfigError names the file and line
            artifacts = load_artifacts(directory)  # ArtifactError names the file
            recommender = Recommender(artifacts, router, ranker)  # e.g. a ranker of other data
        except STARTUP_PROBLEMS as exc:
            startup_problems.append(str(exc))
            raise
        app.state.recommender = recommender
        app.state.offload = artifacts.n_items > OFFLOAD_ABOVE_ITEMS
        app.state.ready = True
        yield
        app.state.ready = False

    app = FastAPI(
        title=PROJECT_NAME,
        version=__version__,
        description="Recommendations recalled from the two-tower model, the SASRec sequence "
        "model, the item graph, EASE and popularity, ranked by the DNN ranker, routed by user "
        "type, device and action.",
        lifespan=lifespan,
    )
    app.state.ready = False
    app.state.max_body_bytes = body_limit
    # Every route reads its body through StrictJSONRoute (415/400/422 for what is not JSON),
    # and the middleware caps the body size for all of them (413).
    app.router.route_class = StrictJSONRoute
    app.add_middleware(LimitRequestBody, max_bytes=body_limit)
    app.add_middleware(OneLineStartupFailure, problems=startup_problems)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        """One readable line per problem instead of pydantic's internals.

        Inputs and field names are quoted as short excerpts, and the list stops at a byte
        budget, so a megabyte of bad input never comes back as a megabyte of error.
        """
        problems = exc.errors()
        errors: list[dict[str, Any]] = []
        used = 0
        for error in problems:
            entry = {
                "field": excerpt(".".join(str(part) for part in error.get("loc", ()))),
                "message": excerpt(str(error.get("msg", "invalid")), limit=200),
                "input": excerpt(error.get("input")),
            }
            used += len(json.dumps(entry, ensure_ascii=False).encode("utf-8"))
            if used > MAX_ERRORS_BYTES:
                break
            errors.append(entry)
        count = len(problems)
        shown = (
            "see 'errors'" if len(errors) == count else f"the first {len(errors)} are in 'errors'"
        )
        body = {
            "detail": f"{count} invalid field{'s' * (count != 1)} in the request; {shown}.",
            "errors": errors,
        }
        return JSONResponse(status_code=422, content=body)

    @app.get("/healthz", response_model=Health, tags=["ops"])
    def healthz() -> Health:
        """Liveness: the process answers. Does not look at the artifacts."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Health, "description": "Artifacts not loaded."}},
        tags=["ops"],
    )
    def readyz(request: Request) -> Any:
        """Readiness: artifacts are loaded and requests can be served."""
        if not request.app.state.ready:
            return JSONResponse(status_code=503, content={"status": "not ready"})
        recommender: Recommender = request.app.state.recommender
        art = recommender.artifacts
        return Readiness(
            status="ready",
            artifacts=art.directory.name,  # not the server's path: see docs/serving.md
            n_users=art.n_users,
            n_items=art.n_items,
            dim=art.dim,
            channels=list(recommender.channels),
            ranker=recommender.ranking_status,
            package_version=str(art.manifest.get("package_version", "")),
        )

    @app.post(
        "/recommend",
        response_model=RecommendResponse,
        responses={
            400: {"model": ErrorDetail, "description": "Body is not UTF-8 text."},
            413: {"model": ErrorDetail, "description": "Body larger than the limit."},
            415: {"model": ErrorDetail, "description": "Body is not application/json."},
            422: {"model": ValidationErrorBody, "description": "Not JSON, or invalid fields."},
        },
        tags=["recommendations"],
    )
    async def recommend(body: RecommendRequest, request: Request) -> Response:
        """Top-k items for a user, with the channel that produced them and why."""
        recommender: Recommender = request.app.state.recommender
        call = partial(
            recommender.recommend,
            user_id=body.user_id,
            user_type=body.user_type,
            device=body.device,
            action=body.action,
            k=body.k,
            exclude_seen=body.exclude_seen,
            item_id=body.item_id,
            recent_items=body.recent_items or None,
        )
        # Up to OFFLOAD_ABOVE_ITEMS items a request's numpy/faiss work is smaller than the cost of
        # a thread-pool hop, so it runs inline.
        # A big index (IVF over millions of items) takes milliseconds per search, and then it
        # goes to the thread pool so it never stalls the event loop that accepts requests.
        result = await run_in_threadpool(call) if request.app.state.offload else call()
        return Response(answer_json(body.user_id, result), media_type="application/json")

    return app


def answer_json(user_id: str, result: Recommendation) -> bytes:
    """The /recommend body (the ``RecommendResponse`` schema) as JSON, written in one pass.

    Returning pydantic objects would have FastAPI validate, dump and validate them again before
    encoding, once per item and per answer; this writes the same body once. The schema stays
    the documented contract (OpenAPI), and tests validate answers against it. A score that is
    not a finite number (a diverged model) is written as null, as pydantic would.
    """
    items = [
        {
            "item_id": item,
            "score": score if score is None or math.isfinite(score) else None,
            "stages": {k: v for k, v in stages.items() if math.isfinite(v)},
        }
        for item, score, stages in zip(
            result.item_ids, result.scores, result.item_stages, strict=True
        )
    ]
    answer = {
        "user_id": user_id,
        "items": items,
        "channel": result.channel.value,
        "stages": result.stages,
        "rule": result.rule,
        "reason": result.reason,
        "fallback": result.fallback,
        "known_user": result.known_user,
    }
    return json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _limit_faiss_threads(threads: int) -> None:
    """One OpenMP thread per search: requests already run in parallel across the thread pool,
    and nested OpenMP teams on a small machine cost more than they give at one query each."""
    try:
        import faiss
    except ImportError:
        return
    faiss.omp_set_num_threads(max(1, threads))
