"""Outbound HTTP the service makes on its own (image fetching, webhook deliveries): which resolved addresses count
as public, and connections pinned to an address checked beforehand. Callers decide what to allow and what to say."""

import contextlib
import http.client
import ipaddress
import socket
import ssl

__all__ = ["PinnedHTTPConnection", "PinnedHTTPSConnection", "address_allowed", "cut_off", "normal_host"]


def normal_host(host: str) -> str:
    """A host name as compared with allow-lists: no brackets, no trailing dot, lower case."""
    return host.strip().strip("[]").rstrip(".").lower()


def address_allowed(address: str) -> bool:
    """Whether a resolved address is public: not private, loopback, link-local, shared, multicast or reserved."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


class PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to an address checked beforehand, whatever the host name resolves to later."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        context = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._ssl_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)


def cut_off(sock: socket.socket | None) -> None:
    """End a connection from another thread (a deadline passed), whatever it is doing."""
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)
