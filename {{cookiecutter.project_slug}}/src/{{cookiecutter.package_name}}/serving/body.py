"""Reading request bodies defensively: a size limit, strict JSON, and short echoes of bad input.

A client's mistake must get a 4xx that says what was wrong, never a 500 and never a copy of a
megabyte of its own input. Three pieces, each small enough to read in one go:

- `LimitRequestBody`: ASGI middleware that answers **413** for a body over the limit, whether the
  client declared its size (`Content-Length`) or streams it in chunks without one.
- `StrictJSONRoute`: the route class of the app. A body must be `application/json` (else **415**),
  UTF-8 (else **400**) and JSON as RFC 8259 defines it (else **422**): Python's `json` module also
  accepts `NaN`, `Infinity` and `-Infinity`, which no JSON encoder can write back, and lone UTF-16
  surrogates (`"\\ud800"`), which cannot be encoded as UTF-8 at all; both used to end in a 500
  when the error handler tried to echo them.
- `excerpt`: what a 4xx body may quote of the input: at most `EXCERPT_CHARS` characters, always
  encodable as JSON.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage

MAX_BODY_BYTES = 64 * 1024
"""Default request-body limit: a recommendation request is about 150 bytes."""

EXCERPT_CHARS = 80
"""The most characters of a client's input that an error body quotes back."""

_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|.)", re.DOTALL)
"""One escape inside a JSON string: `\\uXXXX` (group 1 holds the hex) or `\\` + one character."""


def _short_repr() -> reprlib.Repr:
    """repr() with bounded depth and width: safe on a list nested 10,000 levels deep."""
    short = reprlib.Repr()  # keyword arguments need Python 3.12; attributes work everywhere
    short.maxlevel, short.maxlist, short.maxdict = 2, 4, 4
    short.maxstring, short.maxother = EXCERPT_CHARS, 20
    return short


_SHORT = _short_repr()


class BodyTooLarge(HTTPException):
    """413. An HTTPException, so FastAPI's own handler turns it into a JSON response even when
    it is raised from deep inside the body reading (FastAPI re-raises HTTPExceptions there)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"Request body larger than {limit} bytes. Send a smaller body; "
            "a recommendation request is a few hundred bytes.",
        )


class LimitRequestBody:
    """ASGI middleware: refuse request bodies over `max_bytes` with 413, without buffering them.

    A declared `Content-Length` over the limit is answered at once, before any of the body is
    read. A body without one (`Transfer-Encoding: chunked`) is counted as it arrives, and the
    read that crosses the limit raises `BodyTooLarge`, so at most `max_bytes` plus one chunk is
    ever held in memory.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _send_json(send, BodyTooLarge(self.max_bytes))
            return

        received = 0

        async def counting_receive() -> ASGIMessage:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        started = False

        async def tracking_send(message: ASGIMessage) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as error:
            # Only reached when no exception handler answered first (e.g. a plain ASGI route).
            if started:
                raise
            await _send_json(send, error)


async def _send_json(send: Send, error: HTTPException) -> None:
    body = json.dumps({"detail": error.detail}).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def is_json_content_type(value: str | None) -> bool:
    """`application/json`, with or without parameters, or any `application/*+json`."""
    if not value:
        return False
    message = Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class _NotJSON(ValueError):
    """Raised by the parser hooks below for tokens Python accepts and JSON does not."""


def _no_constants(name: str) -> Any:
    raise _NotJSON(f"{name} is not a JSON value (JSON has no NaN or Infinity); send a number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses to inf, which cannot be written back as JSON
        raise _NotJSON(f"{excerpt(text)} is too large for a 64-bit float")
    return value


def lone_surrogate(text: str) -> re.Match[str] | None:
    """The first `\\uD800`-`\\uDFFF` escape in `text` that is not half of a surrogate pair.

    `text` must already parse as JSON: then every backslash belongs to an escape, and scanning
    the escapes left to right keeps them aligned (`\\\\ud800` is an escaped backslash, not a
    surrogate). A surrogate cannot arrive unescaped: strict UTF-8 decoding rejects it.
    """
    high: re.Match[str] | None = None  # a high surrogate waiting for its low half
    for match in _ESCAPE.finditer(text):
        code = int(match.group(1), 16) if match.group(1) else -1
        if high is not None:
            if 0xDC00 <= code <= 0xDFFF and match.start() == high.end():
                high = None
                continue
            return high
        if 0xD800 <= code <= 0xDBFF:
            high = match
        elif 0xDC00 <= code <= 0xDFFF:
            return match
    return high


def parse_json_body(raw: bytes) -> Any:
    """Decode and parse a request body strictly; raise 400 or 422 with a clear message.

    400: not UTF-8. 422 (`RequestValidationError`, like a schema error, field `body`): not JSON,
    including NaN/Infinity, numbers that overflow a float, integers longer than Python's
    4300-digit limit, nesting deeper than the parser's recursion limit, and lone surrogates.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HTTPException(
            status_code=400,
            detail=f"The body is not UTF-8 text (byte 0x{raw[error.start]:02x} at position "
            f"{error.start}). Send JSON encoded as UTF-8.",
        ) from None
    try:
        value = json.loads(text, parse_constant=_no_constants, parse_float=_finite_float)
    except json.JSONDecodeError as error:
        raise _invalid_json(
            f"{error.msg} at line {error.lineno} column {error.colno}", text, error.pos
        ) from None
    except RecursionError:
        raise _invalid_json("nested deeper than the parser allows", text, 0) from None
    except _NotJSON as error:
        raise _invalid_json(str(error), text, 0) from None
    except ValueError:  # int() refuses more than 4300 digits (CPython's guard against DoS)
        raise _invalid_json("an integer with more than 4300 digits", text, 0) from None
    if "\\" in text and (match := lone_surrogate(text)):
        raise _invalid_json(
            f"lone UTF-16 surrogate {match.group(0)} in a string; JSON text must be valid "
            "Unicode (pair it, or send the character itself)",
            text,
            match.start(),
        )
    return value


def _invalid_json(reason: str, text: str, position: int) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "type": "json_invalid",
                "loc": ("body",),
                "msg": f"Invalid JSON: {reason}.",
                "input": text[max(0, position - 10) :],
            }
        ]
    )


class StrictJSONRequest(Request):
    """A Request whose `.json()` is `parse_json_body`: what FastAPI calls to read a JSON body."""

    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            self._strict_json = parse_json_body(await self.body())
        return self._strict_json


class StrictJSONRoute(APIRoute):
    """Route class that checks the content type and parses the body before FastAPI's handler.

    Errors raised here reach the app's exception handlers like any other, so a 413 from
    `LimitRequestBody` and a 422 from `parse_json_body` are answered as JSON.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            strict = StrictJSONRequest(request.scope, request.receive)
            if self.body_field is not None and await strict.body():
                content_type = strict.headers.get("content-type")
                if not is_json_content_type(content_type):
                    raise HTTPException(
                        status_code=415,
                        detail=f"Content-Type {excerpt(content_type or '(none)')!r} is not "
                        "supported. Send the body as JSON with 'Content-Type: application/json'.",
                    )
                await strict.json()  # parsed once here; FastAPI's handler gets the cached value
            return await handler(strict)

        return strict_handler


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> Any:
    """A short, JSON-encodable stand-in for a client's input, for error bodies.

    Small numbers, booleans and None come back as they are; strings are cut to `limit`
    characters (with the full length noted) and lone surrogates are written as `\\udXXX`;
    anything else becomes a bounded repr, however big or deep it is.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else f"{str(value)[:20]}... ({len(str(value))} digits)"
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    text = value if isinstance(value, str) else _SHORT.repr(value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"
