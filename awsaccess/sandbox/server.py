"""Serve moto plus the sandbox extension, and a tiny `/_sandbox/` control API (health, clock)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import moto
from werkzeug.serving import run_simple

from awsaccess.sandbox import clock, extension

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


def _json(start_response: StartResponse, status: str, body: dict) -> Iterable[bytes]:
    payload = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    )
    return [payload]


def build_app() -> Callable[[dict, StartResponse], Iterable[bytes]]:
    extension.install()
    # Imported late: moto's werkzeug app pulls in every backend, which takes a while.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/_sandbox/health":
            return _json(
                start_response,
                "200 OK",
                {
                    "ok": True,
                    "moto": moto.__version__,
                    "clock_offset_seconds": clock.offset().total_seconds(),
                },
            )
        if path == "/_sandbox/clock" and environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                seconds = float(json.loads(environ["wsgi.input"].read(length))["offset_seconds"])
            except (ValueError, KeyError, TypeError):
                return _json(start_response, "400 Bad Request", {"error": "need offset_seconds"})
            clock.set_offset(seconds)
            return _json(start_response, "200 OK", {"clock_offset_seconds": seconds})
        return moto_app(environ, start_response)

    return app


def serve(host: str, port: int) -> None:
    if host not in ("127.0.0.1", "::1", "localhost"):
        # Anyone who reaches the sandbox can reset it or switch enforcement off.
        logger.warning("sandbox listening on %s: it has no protection of its own", host)
    os.environ.setdefault("MOTO_PORT", str(port))
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    run_simple(host, port, build_app(), threaded=True, request_handler=MotoRequestHandler)
