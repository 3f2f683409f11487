"""Who is on the other end of a loopback connection (Linux).

TCP has no ``SO_PEERCRED``, but the kernel knows the uid that created every
socket of this network namespace. The client's socket is the one whose local
address is our peer's address and whose remote address is ours. It is asked
for that one socket (:mod:`.sock_diag`, what ``ss`` uses: microseconds); where
that interface is refused, ``/proc/net/tcp`` and ``tcp6`` are read and parsed
once per batch of connections (milliseconds: every socket is listed).
Elsewhere (macOS, Windows) there is no such table and the owner is unknown.
"""

from __future__ import annotations

import ipaddress
import sys

from .sock_diag import Owner as Owner  # the kernel's answer, either way
from .sock_diag import available, socket_owner

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    Address = tuple[str, int]  # (ip, port) as ipaddress spells the ip
    Tables = dict[tuple[Address, Address], Owner]  # (local, remote) -> owner

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


class Owners:
    """The owners of one batch of accepted connections.

    ``known`` is false where no owner can be learned at all (no socket table);
    otherwise :meth:`of` answers, ``None`` for a socket the kernel does not list.
    """

    def __init__(self) -> None:
        self._tables: Tables | None = None
        self._read = False
        self.known = True

    @staticmethod
    def prepare() -> None:
        """Find out once whether the kernel answers for one socket (see :mod:`.sock_diag`)."""
        available()

    def of(self, ours: tuple[object, ...], peer: tuple[object, ...]) -> Owner | None:
        if not self._read:
            try:
                return socket_owner(ours, peer)
            except OSError:
                pass  # sock_diag refused here: /proc, read once for the whole batch
            self._tables, self._read = read_tables(), True
            self.known = self._tables is not None
        if self._tables is None:
            return None
        return peer_owner(self._tables, ours, peer)


def _address(field: str, byteorder: str) -> Address:
    """``0100007F:1F90`` → ``("127.0.0.1", 8080)``.

    The kernel prints the address as 32-bit words in host byte order (``%08X``
    of each ``__be32``) and the port as a plain number.
    """
    hex_ip, hex_port = field.split(":")
    raw = b"".join(
        int(hex_ip[i : i + 8], 16).to_bytes(4, byteorder)  # type: ignore[arg-type]
        for i in range(0, len(hex_ip), 8)
    )
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), int(hex_port, 16)


def parse_table(text: str, byteorder: str = sys.byteorder) -> Tables:
    """``(local, remote) → Owner`` for every socket listed in a ``/proc/net/tcp*`` file."""
    sockets: Tables = {}
    for line in text.splitlines()[1:]:
        # sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            local = _address(fields[1], byteorder)
            remote = _address(fields[2], byteorder)
            owner = Owner(uid=int(fields[7]), inode=int(fields[9]))
        except ValueError:
            continue
        sockets[(local, remote)] = owner
    return sockets


def read_tables(paths: Iterable[str] = TABLES) -> Tables | None:
    """Every TCP socket of this network namespace, or ``None`` where there is no such table."""
    if not sys.platform.startswith("linux"):
        return None
    sockets: Tables = {}
    readable = False
    for path in paths:
        try:
            with open(path, encoding="ascii", errors="replace") as file:
                text = file.read()
        except OSError:
            continue  # tcp6 is missing where IPv6 is off
        readable = True
        sockets.update(parse_table(text))
    return sockets if readable else None


def _canonical(address: tuple[object, ...]) -> Address:
    ip = ipaddress.ip_address(str(address[0]).split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), int(address[1])  # type: ignore[call-overload]


def peer_owner(
    tables: Tables,
    ours: tuple[object, ...],
    peer: tuple[object, ...],
) -> Owner | None:
    """The owner of the client socket connected from ``peer`` to ``ours``; ``None`` if absent."""
    return tables.get((_canonical(peer), _canonical(ours)))
