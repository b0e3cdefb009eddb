"""Serve moto plus the sandbox extension, and a tiny `/_sandbox/` control API (health, clock,
CloudTrail delivery switch and recent records, events as AWS services emit them, IAM reads that
lag writes)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import moto
from werkzeug.serving import run_simple

from awsaccess.sandbox import (
    calls,
    clock,
    consistency,
    delivery,
    dispatch,
    event_sources,
    extension,
    history,
)

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


def _json(start_response: StartResponse, status: str, body: dict) -> Iterable[bytes]:
    payload = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    )
    return [payload]


def _read_json(environ: dict) -> dict:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length) or b"{}")
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    return body


def _cloudtrail_control(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    """GET: delivery counters. POST {"drop_fraction": 0.5, "seed": 7}: drop that share of
    EventBridge deliveries from now on (the history keeps every record)."""
    if environ.get("REQUEST_METHOD") != "POST":
        return _json(start_response, "200 OK", delivery.stats())
    try:
        body = _read_json(environ)
        seed = body.get("seed")
        answer = delivery.configure(
            float(body.get("drop_fraction", 0.0)), None if seed is None else int(seed)
        )
    except (ValueError, TypeError):
        return _json(start_response, "400 Bad Request", {"error": "need drop_fraction in 0..1"})
    return _json(start_response, "200 OK", answer)


def _cloudtrail_events(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    """The newest CloudTrail records (management and data events), oldest first."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    try:
        limit = max(1, min(int(query.get("limit", ["100"])[0]), 10_000))
    except ValueError:
        return _json(start_response, "400 Bad Request", {"error": "limit must be a number"})
    return _json(start_response, "200 OK", {"records": history.recent(limit)})


def _service_events(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    """POST {"account": ..., "region": ..., "entries": [PutEvents entries]}: put them on the
    default bus as an AWS service would, "aws." sources included (the API refuses those)."""
    if environ.get("REQUEST_METHOD") != "POST":
        return _json(start_response, "405 Method Not Allowed", {"error": "POST only"})
    try:
        body = _read_json(environ)
        answer = event_sources.service_events_put(
            str(body["account"]), str(body["region"]), list(body["entries"])
        )
    except (ValueError, KeyError, TypeError):
        return _json(start_response, "400 Bad Request", {"error": "need account, region, entries"})
    return _json(start_response, "200 OK", {"Entries": answer})


def _iam_stale_reads(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    """POST {"role": NAME, "reads": N}: the role's next N GetRolePolicy reads lag its writes."""
    if environ.get("REQUEST_METHOD") != "POST":
        return _json(start_response, "405 Method Not Allowed", {"error": "POST only"})
    try:
        body = _read_json(environ)
        lagging = consistency.stale_reads_set(str(body["role"]), int(body["reads"]))
    except (ValueError, KeyError, TypeError):
        return _json(start_response, "400 Bad Request", {"error": "need role and reads"})
    return _json(start_response, "200 OK", {"stale_reads": lagging})


def build_app() -> Callable[[dict, StartResponse], Iterable[bytes]]:
    extension.install()
    delivery.install()
    # Imported late: moto's werkzeug app pulls in every backend, which takes a while.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    dispatch.install()
    moto_app = calls.recording(DomainDispatcherApplication(create_backend_app), delivery.submit)

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
        if path == "/_sandbox/cloudtrail":
            return _cloudtrail_control(environ, start_response)
        if path == "/_sandbox/cloudtrail/events":
            return _cloudtrail_events(environ, start_response)
        if path == "/_sandbox/events":
            return _service_events(environ, start_response)
        if path == "/_sandbox/iam/stale-reads":
            return _iam_stale_reads(environ, start_response)
        return moto_app(environ, start_response)

    return app


def serve(host: str, port: int) -> None:
    if host not in ("127.0.0.1", "::1", "localhost"):
        # Anyone who reaches the sandbox can reset it or switch enforcement off.
        logger.warning("sandbox listening on %s: it has no protection of its own", host)
    os.environ.setdefault("MOTO_PORT", str(port))
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    run_simple(host, port, build_app(), threaded=True, request_handler=MotoRequestHandler)
