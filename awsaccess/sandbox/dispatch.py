"""moto's request routing without its per-request cost. moto's server picks the backend of every
request under one lock, and doing so lists moto's package directory (a stat per backend, twice)
and tries every backend's URL patterns: that serialised all callers at ~100 requests a second.
The answer depends only on the Host header (and the inferred service host), so it is computed
once per host; which backend serves a request is unchanged."""

from __future__ import annotations

from functools import cache
from typing import Any

import moto.backends as backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_original_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_original_moto_modules = backends.list_of_moto_modules


@cache
def _moto_modules() -> frozenset[str]:
    # The installed package's backends: fixed for the life of the process.
    return frozenset(_original_moto_modules())


@cache
def _backend_for_host(dispatcher: DomainDispatcherApplication, host: str | None) -> Any:
    return _original_backend_for_host(dispatcher, host)


def _get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
    return _backend_for_host(self, host)


def install() -> None:
    # werkzeug_app calls backends.list_of_moto_modules() through the module: patched there.
    backends.list_of_moto_modules = _moto_modules
    DomainDispatcherApplication.get_backend_for_host = _get_backend_for_host  # type: ignore[method-assign]  # patching moto in place
