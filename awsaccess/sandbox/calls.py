"""Capture every call the sandbox serves, as WSGI saw it, for the CloudTrail emulation.

The request thread only copies what it already holds (method, path, headers, body, status,
response body) and hands it to the trail worker; building the CloudTrail record, matching
EventBridge rules and writing to SQS happen after the response, off the caller's path.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from awsaccess.sandbox import clock

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict, StartResponse], Iterable[bytes]]

# Bodies beyond this are not kept: request parameters are bounded anyway, and an S3 object's
# content is never a request parameter.
MAX_KEPT_BODY = 256 * 1024
_UNRECORDED_PREFIXES = ("/_sandbox/", "/moto-api/")
# The address of the request this thread serves, for aws:SourceIp (moto does not pass it on).
_current = threading.local()


def current_source_ip() -> str | None:
    return getattr(_current, "source_ip", None)


@dataclass
class CapturedCall:
    time: datetime
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names lower-case
    body: bytes
    source_ip: str
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""


def _headers(environ: dict) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = str(environ[key])
    return headers


def _read_body(environ: dict) -> bytes:
    """Read the body and put an identical stream back for moto."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return b""
    if length <= 0:
        return b""
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def recording(app: WsgiApp, sink: Callable[[CapturedCall], None]) -> WsgiApp:
    """Wrap moto's WSGI app so that every AWS call served is passed to `sink` afterwards."""

    def wrapped(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        _current.source_ip = environ.get("REMOTE_ADDR")
        if path.startswith(_UNRECORDED_PREFIXES):
            return app(environ, start_response)
        body = _read_body(environ)
        call = CapturedCall(
            time=clock.now(),
            method=environ.get("REQUEST_METHOD", "GET"),
            path=path,
            query=environ.get("QUERY_STRING", ""),
            headers=_headers(environ),
            body=body[:MAX_KEPT_BODY],
            source_ip=environ.get("REMOTE_ADDR", ""),
        )

        def capture_start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            call.status = int(status.split(" ", 1)[0])
            call.response_headers = {name.lower(): value for name, value in headers}
            return start_response(status, headers, *args)

        result = app(environ, capture_start)
        try:
            payload = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        call.response_body = payload[:MAX_KEPT_BODY]
        sink(call)
        return [payload]

    return wrapped
