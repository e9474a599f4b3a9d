"""The HTTP service: FastAPI app, request/response schemas, and the request-time recommender.

`create_app()` builds the app (artifacts load in its lifespan); `serve()` runs it with uvicorn.
"""

from __future__ import annotations

from .app import create_app
from .server import serve

__all__ = ["create_app", "serve"]
