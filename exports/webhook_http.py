"""Where a webhook may point, and one delivery: a JSON POST to an address checked just before it is sent.

The rules are those of image fetching (exports/converters/images.py), with the same address check and pinned
connections (exports/outbound.py): an http(s) URL without credentials, whose host resolves only to public addresses
(never private, loopback, link-local, shared, multicast or reserved) unless the host, or each such address, is listed
in WEBHOOK_HOSTS. The connection goes to the address that was checked, so a second DNS answer cannot move it
elsewhere; redirects are not followed; the whole exchange has one time limit. This module reads no settings and no
database: callers pass the allowed hosts and the time limit.
"""

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from exports.outbound import PinnedHTTPConnection, PinnedHTTPSConnection, address_allowed, cut_off, normal_host

__all__ = ["Outcome", "TargetRefused", "check_target", "post_json"]

USER_AGENT = "ls-export-service webhook"
MAX_ANSWER_BYTES = 64 * 1024  # of the receiver's answer, read and dropped


class TargetRefused(Exception):
    """The URL may not be sent to; the message is the reason. `transient`: it may change (the host did not resolve)."""

    def __init__(self, reason: str, *, transient: bool = False):
        super().__init__(reason)
        self.transient = transient


@dataclass(frozen=True)
class Outcome:
    """How one delivery went: the receiver's HTTP status (None without an answer), why it failed ("" when it did not)
    and whether another attempt may go better (no answer, timeouts, 408, 429 and 5xx)."""

    status: int | None
    error: str = ""
    retry: bool = False

    @property
    def ok(self) -> bool:
        return not self.error


def _parts(url: str) -> tuple[SplitResult, str, int]:
    """The URL's parts, normalised host and port; TargetRefused when it is not an http(s) URL one may post to."""
    if not isinstance(url, str) or any(ord(char) < 0x21 for char in url):
        raise TargetRefused("the URL contains spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise TargetRefused("only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("URLs with credentials are not allowed; send them in `headers` instead")
    host = normal_host(parts.hostname or "")
    if not host:
        raise TargetRefused("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        raise TargetRefused("the URL has an invalid port") from None
    return parts, host, port


def _listed(allowed: Collection[str]) -> frozenset[str]:
    return frozenset(normal_host(host) for host in allowed if host and host.strip())


def _address_listed(address: str, listed: frozenset[str]) -> bool:
    bare = address.split("%", 1)[0]
    if bare in listed:
        return True
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if ip.version == 6 else None
    return mapped is not None and str(mapped) in listed


def _address(host: str, port: int, listed: frozenset[str]) -> str:
    """The address to connect to: every address `host` resolves to is checked, the first is used."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise TargetRefused(f"the host {host} does not resolve", transient=True) from None
    addresses = list(dict.fromkeys(str(answer[4][0]) for answer in answers))
    if not addresses:
        raise TargetRefused(f"the host {host} does not resolve", transient=True)
    if host not in listed:
        for address in addresses:
            if not address_allowed(address) and not _address_listed(address, listed):
                raise TargetRefused(
                    f"the host {host} resolves to a non-public address ({address}); "
                    "list the host in WEBHOOK_HOSTS to allow it"
                )
    return addresses[0]


def check_target(url: str, *, allowed: Collection[str]) -> None:
    """Raise TargetRefused (with the reason) unless `url` may receive webhooks now. Resolves the host, unless it is
    listed in `allowed`."""
    _, host, port = _parts(url)
    listed = _listed(allowed)
    if host not in listed:
        _address(host, port, listed)


def post_json(
    url: str, body: bytes, headers: Mapping[str, str], *, allowed: Collection[str], timeout: float
) -> Outcome:
    """POST `body` (JSON) to `url` with `headers`, after checking the target again (DNS may have changed since the
    webhook was saved). Never raises: every failure is an Outcome."""
    try:
        parts, host, port = _parts(url)
        address = _address(host, port, _listed(allowed))
    except TargetRefused as refused:
        return Outcome(None, f"refused: {refused}", retry=refused.transient)
    connection_class = PinnedHTTPSConnection if parts.scheme.lower() == "https" else PinnedHTTPConnection
    connection = connection_class(host, port, address, timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    late = f"no answer within {timeout:g} s"
    deadline = time.monotonic() + timeout
    watchdog = None
    try:
        connection.connect()
        # A receiver that trickles bytes never trips the socket timeout: cut it off at the deadline.
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), cut_off, (connection.sock,))
        watchdog.daemon = True
        watchdog.start()
        sent = {**headers, "Content-Type": "application/json", "User-Agent": USER_AGENT}
        connection.request("POST", target, body=body, headers=sent)
        response = connection.getresponse()
        status = response.status
        response.read(MAX_ANSWER_BYTES)
        if time.monotonic() > deadline:
            return Outcome(status, late, retry=True)
    except TimeoutError:
        return Outcome(None, late, retry=True)
    except ssl.SSLError as exc:
        return Outcome(None, f"TLS failed ({exc.reason or exc.__class__.__name__})", retry=True)
    except ValueError as exc:  # a header http.client refuses to send (the API refuses such headers beforehand)
        return Outcome(None, f"the request could not be sent ({exc})")
    except (OSError, http.client.HTTPException) as exc:
        if time.monotonic() > deadline:
            return Outcome(None, late, retry=True)
        return Outcome(None, f"the connection failed ({exc.__class__.__name__})", retry=True)
    finally:
        if watchdog is not None:
            watchdog.cancel()
        connection.close()
    if 200 <= status < 300:
        return Outcome(status)
    if 300 <= status < 400:
        return Outcome(status, f"the receiver answered with a redirect (HTTP {status}), which is not followed")
    return Outcome(status, f"the receiver answered HTTP {status}", retry=status >= 500 or status in (408, 429))
