"""Binding the redirect URI's loopback address, before anything else happens.

Stdlib only: the sockets are bound and listening before the browser opens and
before aiohttp is imported; connections wait in the listen backlog meanwhile.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
from typing import NamedTuple
from urllib.parse import urlsplit

from .._errors import ConfigError, PortInUse

_BACKLOG = 64
_ANY_PORT_TRIES = 8


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP literal (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoopbackTarget(NamedTuple):
    """The parts of a loopback redirect URI that the receiver serves."""

    redirect_uri: str
    host: str  # as written in the URI, lower-case, brackets kept for IPv6
    port: int  # 0: any free port (RFC 8252 §7.3)
    path: str
    query: str

    @property
    def addresses(self) -> list[tuple[socket.AddressFamily, str]]:
        bare = self.host.strip("[]")
        if bare == "localhost":
            # Browsers may resolve localhost to either; listen on both.
            return [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
        family = socket.AF_INET6 if ":" in bare else socket.AF_INET
        return [(family, bare)]

    def with_port(self, port: int) -> str:
        """The redirect URI as sent: the registered string itself, unless the port was 0."""
        if self.port == port:
            return self.redirect_uri
        query = f"?{self.query}" if self.query else ""
        return f"http://{self.host}:{port}{self.path}{query}"


def loopback_target(redirect_uri: str) -> LoopbackTarget:
    """Check that ``redirect_uri`` is an ``http`` loopback URI we can listen on (RFC 8252 §7.3)."""
    parts = urlsplit(redirect_uri)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"the redirect URI {redirect_uri!r} has an invalid port") from None
    host = parts.hostname or ""
    if parts.scheme != "http" or not is_loopback_host(host):
        raise ConfigError(
            f"the redirect URI {redirect_uri!r} is not an http loopback address "
            "(localhost, 127.0.0.1 or [::1]); loopback-login can only listen on this "
            "machine: use --paste for any other redirect URI"
        )
    if parts.fragment:
        raise ConfigError(f"the redirect URI {redirect_uri!r} must not have a #fragment")
    if parts.username or parts.password:
        raise ConfigError(f"the redirect URI {redirect_uri!r} must not carry credentials")
    if host != "localhost":
        # Browsers send the canonical form in Host ([0:0:0:0:0:0:0:1] arrives as [::1]).
        host = str(ipaddress.ip_address(host))
    netloc_host = f"[{host}]" if ":" in host else host.lower()
    return LoopbackTarget(
        redirect_uri=redirect_uri,
        host=netloc_host,
        port=80 if port is None else port,
        path=parts.path or "/",
        query=parts.query,
    )


class Listener:
    """Bound, listening sockets for one login, and the redirect URI they serve."""

    __slots__ = ("port", "sockets", "target")

    def __init__(self, target: LoopbackTarget, port: int, sockets: list[socket.socket]) -> None:
        self.target = target
        self.port = port
        self.sockets = sockets

    def __repr__(self) -> str:
        return f"Listener({self.redirect_uri!r}, {len(self.sockets)} sockets)"

    @property
    def redirect_uri(self) -> str:
        return self.target.with_port(self.port)

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """Host header values the redirect can carry; anything else may be DNS rebinding."""
        hosts = {f"{self.target.host}:{self.port}"}
        if self.port == 80:
            hosts.add(self.target.host)
        return frozenset(hosts)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets = []


def bind(target: LoopbackTarget) -> Listener:
    """Bind and listen on every address of ``target``; raise :class:`PortInUse` when held."""
    for _attempt in range(_ANY_PORT_TRIES if target.port == 0 else 1):
        sockets: list[socket.socket] = []
        port = target.port
        try:
            for family, address in target.addresses:
                sock = _bind_one(family, address, port, optional=bool(sockets))
                if sock is None:
                    continue
                sockets.append(sock)
                port = sock.getsockname()[1]
        except PortInUse:
            for sock in sockets:
                sock.close()
            if target.port == 0 and sockets:
                continue  # ::1 was taken on the port 127.0.0.1 got; try another port
            raise
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        return Listener(target=target, port=port, sockets=sockets)
    raise PortInUse("could not find a port free on both 127.0.0.1 and ::1")


def _bind_one(
    family: socket.AddressFamily, address: str, port: int, *, optional: bool
) -> socket.socket | None:
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        if optional and exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
            return None  # no IPv6 on this machine: 127.0.0.1 alone
        raise
    try:
        if sys.platform == "win32":
            # Windows' SO_REUSEADDR lets another program steal the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
        else:
            # Rebind at once after the previous login (its port sits in TIME_WAIT).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        sock.listen(_BACKLOG)
        sock.setblocking(False)
        return sock
    except OSError as exc:
        sock.close()
        shown = f"[{address}]:{port}" if family == socket.AF_INET6 else f"{address}:{port}"
        if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
            raise PortInUse(
                f"port {port} ({shown}) is in use by another program; stop it, "
                "or log in with --paste"
            ) from None
        if optional and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            return None  # ::1 does not exist here
        if exc.errno == errno.EACCES:
            raise ConfigError(
                f"not allowed to listen on {shown}: ports below 1024 need privileges"
            ) from None
        raise PortInUse(f"cannot listen on {shown}: {exc.strerror}") from None
