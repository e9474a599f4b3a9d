"""Hostile request bodies, kept as data, and the rules every answer to them must follow.

Each case is an id, the raw bytes sent to `POST /recommend`, its Content-Type and the status
the service must answer. The rules hold for every case: never a 5xx, and every 4xx body is
JSON and shorter than `MAX_ERROR_BODY_BYTES`, however big or strange the input was.

tests/test_serving.py sends the corpus to the app in-process and to a real server on
loopback; benchmarks/fuzz.py sends it before its schemathesis run. Add a case here when a new
kind of input breaks the service, before fixing it. (A helper module, not a test module: it
lives under tests/ because only tests and benchmarks use it, never the service.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from {{ cookiecutter.package_name }}.serving.body import MAX_BODY_BYTES

MAX_ERROR_BODY_BYTES = 2048
"""A 4xx body quotes at most short excerpts of the input, so it stays under this size."""

JSON = "application/json"
VALID = {"user_id": "u1", "user_type": "returning", "device": "mobile", "action": "purchase"}


@dataclass(frozen=True)
class HostileCase:
    """One request body and the status it must get."""

    id: str
    body: bytes
    status: int
    content_type: str | None = JSON
    chunked: bool = False  # stream it without Content-Length (Transfer-Encoding: chunked)


def _request(**fields: object) -> str:
    """A valid request as JSON text, with `fields` added or replaced, for the cases to edit."""
    return json.dumps({**VALID, **fields})


def _with(raw: str) -> bytes:
    """A valid request with one raw `"key": value` member spliced in (`raw` is not JSON-escaped)."""
    return ("{" + _request()[1:-1] + ", " + raw + "}").encode("utf-8")


def hostile_corpus(max_body_bytes: int = MAX_BODY_BYTES, depth: int = 10_000) -> list[HostileCase]:
    """The corpus for a server with this body limit. `depth` sets the deep-nesting cases."""
    over = max(1 << 20, max_body_bytes + 1)  # a 1 MiB body, or just over the limit if larger
    deep = "[" * depth + "]" * depth
    return [
        # Controls: valid requests still get 200.
        HostileCase("valid", _request().encode(), 200),
        HostileCase("valid-surrogate-pair-emoji", _request(user_id="u-\U0001f600").encode(), 200),
        HostileCase("valid-escaped-backslash-then-ud800", _with('"item_id": "\\\\ud800"'), 200),
        # NaN and Infinity: Python's json reads them, no JSON encoder can write them back.
        HostileCase("nan-as-k", _with('"k": NaN'), 422),
        HostileCase("infinity-as-k", _with('"k": Infinity'), 422),
        HostileCase("minus-infinity-as-k", _with('"k": -Infinity'), 422),
        HostileCase("nan-deep-in-an-extra-field", _with('"extra": [1, {"a": [NaN]}]'), 422),
        HostileCase("nan-as-the-whole-body", b"NaN", 422),
        HostileCase("float-overflowing-to-infinity", _with('"k": 1e400'), 422),
        # Lone UTF-16 surrogates: valid JSON syntax, but no valid Unicode text.
        HostileCase("lone-high-surrogate-in-a-value", _request(user_id="\ud800").encode(), 422),
        HostileCase("lone-low-surrogate-in-a-value", _with('"item_id": "a\\udc00b"'), 422),
        HostileCase("lone-surrogate-in-a-key", _with('"\\ud800": 1'), 422),
        HostileCase("surrogate-pair-reversed", _with('"item_id": "\\udc00\\ud800"'), 422),
        # Size: the limit holds with and without Content-Length; under it, no echo of it all.
        HostileCase("1mib-body", _with('"pad": "' + "a" * over + '"'), 413),
        HostileCase("1mib-body-chunked", _with('"pad": "' + "a" * over + '"'), 413, chunked=True),
        HostileCase("long-string-under-the-limit", _request(user_id="x" * 60_000).encode(), 422),
        HostileCase("long-key-under-the-limit", _with('"' + "k" * 60_000 + '": 1'), 422),
        HostileCase(
            "thousands-of-unknown-fields",
            _with(", ".join(f'"f{i}": {i}' for i in range(3_000))),
            422,
        ),
        # Depth: the parser's recursion limit, and a nested value pydantic has to describe.
        HostileCase(f"nesting-{depth}-levels", deep.encode(), 422),
        HostileCase(f"nesting-{depth}-levels-in-a-field", _with(f'"user_id": {deep}'), 422),
        HostileCase(
            "nesting-200-levels-in-a-field", _with('"item_id": ' + "[" * 200 + "]" * 200), 422
        ),
        # Encoding: JSON is UTF-8.
        HostileCase("invalid-utf8-byte", b'{"user_id": "\xff"}', 400),
        HostileCase("truncated-utf8-sequence", b'{"user_id": "\xc3"}', 400),
        HostileCase("utf8-encoded-surrogate", b'{"user_id": "\xed\xa0\x80"}', 400),
        HostileCase("utf16-with-bom", _request().encode("utf-16"), 400),
        # Content type and shape.
        HostileCase("text-plain", _request().encode(), 415, content_type="text/plain"),
        HostileCase(
            "form-urlencoded", b"user_id=u1", 415, content_type="application/x-www-form-urlencoded"
        ),
        HostileCase("no-content-type", _request().encode(), 415, content_type=None),
        HostileCase("empty-body", b"", 422),
        HostileCase("array-body", b"[]", 422),
        HostileCase("null-body", b"null", 422),
        HostileCase("truncated-json", b'{"user_id": ', 422),
        HostileCase("trailing-garbage", _request().encode() + b" x", 422),
        # Huge integers: over CPython's 4300-digit limit, and big but parseable.
        HostileCase("integer-of-5000-digits", _with('"k": ' + "9" * 5000), 422),
        HostileCase("integer-of-400-digits", _with('"k": 1' + "0" * 400), 422),
        HostileCase("integer-of-40-digits-as-item-id", _with('"item_id": ' + "7" * 40), 422),
    ]


def send(client: httpx.Client, case: HostileCase) -> httpx.Response:
    """POST the case's bytes as they are (a TestClient is an httpx.Client too)."""
    headers = {"content-type": case.content_type} if case.content_type else {}
    content: bytes | Iterator[bytes] = case.body
    if case.chunked:
        content = (case.body[i : i + 16_384] for i in range(0, len(case.body), 16_384))
    return client.post("/recommend", content=content, headers=headers)


def problems(case: HostileCase, response: httpx.Response) -> list[str]:
    """What is wrong with the answer to `case`; empty when it follows every rule."""
    found = []
    if response.status_code != case.status:
        found.append(f"status {response.status_code}, expected {case.status}")
    if response.status_code >= 500:
        found.append("a server error for a client's mistake")
    if 400 <= response.status_code < 500:
        size = len(response.content)
        if size >= MAX_ERROR_BODY_BYTES:
            found.append(f"a {size}-byte error body (limit {MAX_ERROR_BODY_BYTES})")
        try:
            json.loads(response.content)
        except ValueError:
            found.append(f"an error body that is not JSON: {response.content[:80]!r}")
    return [f"{case.id}: {problem}" for problem in found]
