"""Where the portal may send HTTP requests it was told to send (webhooks): never inside.

A URL is checked when it is set (scheme, no credentials, no literal internal address) and again
at every send, on the addresses its name resolves to *at connection time*: the connection goes to
the address that was checked, so a name that re-resolves inside (DNS rebinding) gains nothing.
"""

import http.client
import ipaddress
import socket
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


class EgressRefused(OSError):
    """The destination is inside; raised as an OSError so a send records it as a failure."""


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(net, strict=False) for net in settings.WEBHOOK_ALLOWED_NETWORKS]


def address_refusal(address: IPAddress) -> str | None:
    """Why the portal must not connect to this address, or None. Anything not globally routable
    (private, link-local and the 169.254.169.254 metadata service, loopback, shared, reserved,
    multicast) is refused unless allow-listed; loopback also when development allows it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in _allowed_networks()):
        return None
    if address.is_loopback and settings.WEBHOOK_ALLOW_HTTP_LOOPBACK:
        return None
    if address.is_global and not address.is_multicast:
        return None
    return f"{address} is not a public address (BREAKGLASS_WEBHOOK_ALLOWED_NETWORKS may allow it)"


def url_refusal(url: str) -> str | None:
    """Why this URL may not be set as a destination, or None: https:// only (http:// to loopback
    when BREAKGLASS_WEBHOOK_ALLOW_HTTP_LOOPBACK allows it), a host, no user:password, and no
    literal address that is refused anyway. Names are checked again at every send."""
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError:
        return "the URL is not valid"
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return "the URL must be an absolute https:// URL"
    if parts.username is not None or parts.password is not None:
        return "the URL must not carry a user name or password"
    if port == 0:
        return "the URL's port is not valid"
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    loopback = host in _LOOPBACK_NAMES or (literal is not None and literal.is_loopback)
    if parts.scheme == "http" and not (loopback and settings.WEBHOOK_ALLOW_HTTP_LOOPBACK):
        return "the URL must be https:// (http:// only to loopback, in development)"
    if literal is not None:
        return address_refusal(literal)
    return None


def _vetted_connection(
    address: tuple[str, int], timeout: object = None, source_address: object = None
) -> socket.socket:
    """socket.create_connection, but only to resolved addresses that pass address_refusal."""
    host, port = address
    refusals: list[str] = []
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        refusal = address_refusal(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
        if refusal is not None:
            refusals.append(refusal)
            continue
        sock = socket.socket(family, kind, proto)
        try:
            # http.client passes its "no timeout given" sentinel when there is none.
            if isinstance(timeout, int | float):
                sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError:
            sock.close()
            raise
        return sock
    raise EgressRefused(f"refused to connect to {host}: " + "; ".join(refusals or ["no address"]))


class _VettedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _vetted_connection


class _VettedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _vetted_connection


class _VettedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_VettedHTTPConnection, req)


class _VettedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_VettedHTTPSConnection, req)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery: a signed body is never re-sent somewhere else (and a
    redirect would be a way around the URL's own check)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def vetted_opener() -> urllib.request.OpenerDirector:
    """An opener that connects only to checked addresses, follows no redirect, and ignores the
    environment's proxies (a proxy would connect on our behalf to an address never checked)."""
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _VettedHTTPHandler,
        _VettedHTTPSHandler,
        _NoRedirects,
    )
