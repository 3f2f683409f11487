"""Who owns the client end of one loopback TCP connection, asked of the kernel (Linux).

The /proc way (:mod:`.peer`'s fallback) reads and parses every line of
``/proc/net/tcp`` and ``/proc/net/tcp6``; the kernel produces those by walking every
bucket of the TCP established hash
(sized by RAM: 262144 buckets on a 24 GB machine), then Python parses each
line: milliseconds, growing with RAM and socket count. Here we ask the kernel for
the one socket we care about, through the ``NETLINK_SOCK_DIAG`` netlink family
(``sock_diag(7)``; the interface ``ss`` uses), with an *exact* lookup rather
than a dump:

* request: ``nlmsghdr`` (type ``SOCK_DIAG_BY_FAMILY``, flags ``NLM_F_REQUEST``
  only, no ``NLM_F_DUMP``) followed by ``struct inet_diag_req_v2``
  (``linux/inet_diag.h``): family, ``IPPROTO_TCP``, no extensions, all states,
  and ``struct inet_diag_sockid`` naming the socket by its local ("src") and
  remote ("dst") address and port, with ``idiag_cookie = INET_DIAG_NOCOOKIE``
  (we do not know the cookie; ``sock_diag_check_cookie`` then accepts any);
* answer: one ``nlmsghdr`` + ``struct inet_diag_msg`` whose ``idiag_uid`` and
  ``idiag_inode`` are what ``/proc/net/tcp`` prints in its ``uid`` and
  ``inode`` columns (both come from ``sock_i_uid``/``sock_i_ino``), or an
  ``NLMSG_ERROR`` with ``-ENOENT`` when there is no such socket.

The kernel side is ``inet_diag_find_one_icsk`` (net/ipv4/inet_diag.c): it looks
the 4-tuple up in the TCP hash tables of the caller's network namespace, the
same sockets ``/proc/net/tcp*`` lists. It sees established, TIME_WAIT and
orphaned sockets; TIME_WAIT ones come back with uid 0 and inode 0
(``inet_twsk_diag_fill``), exactly like /proc, and inode 0 must be refused.

Families. The client socket of ``peer -> ours`` may be ``AF_INET`` (a client
that connected to 127.0.0.1 with an IPv4 socket, even to a dual-stack ``::``
listener, whose accepted socket then shows ``::ffff:127.0.0.1``), or
``AF_INET6`` (``::1``, or an IPv6 client socket connecting to
``::ffff:127.0.0.1``). For IPv4(-mapped) addresses we ask as ``AF_INET`` with
the plain IPv4 addresses first and, only if that answers ``ENOENT``, as
``AF_INET6`` with the mapped addresses; for real IPv6 addresses only
``AF_INET6``. (Current kernels look v4-mapped ``AF_INET6`` requests up in the
IPv4 table and do not compare the socket's family with the request's -- checked
on 6.18: all four family/socket combinations answer -- so the first query
normally suffices; the second costs a round trip only when the socket is
absent, and covers kernels that behave otherwise.) An exact lookup that
matches no connection falls back to a *listening* socket on the same local
port; such an answer is discarded (state and both ports are checked).

Availability. ``socket_owner`` raises ``OSError`` (the ``DiagUnavailable``
subclass) whenever the answer cannot be trusted: not Linux / no
``AF_NETLINK``, ``socket(AF_NETLINK, ..., NETLINK_SOCK_DIAG)`` refused
(gVisor, seccomp, ``EPROTONOSUPPORT``), a kernel without ``inet_diag`` /
``tcp_diag`` (which also answers ``ENOENT``: see below), timeouts, garbage.
The caller then falls back to ``read_tables``/``peer_owner``. Because a kernel
with no TCP diag handler answers ``ENOENT`` just like an absent socket
(``__sock_diag_cmd``/``inet_diag_lock_handler``), the first use probes once
with a socket known to exist (a throw-away listener on 127.0.0.1) and caches
the verdict (for the life of the process, failures included);
``available()`` exposes it.

Network namespaces: the netlink socket answers for the namespace it was
created in (a new one per lookup), as /proc/net does for the reading process.

Only ``struct``, ``socket`` and ``select`` from the stdlib are used; the
module imports fine everywhere.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import sys
from typing import NamedTuple


class Owner(NamedTuple):
    """Who holds a socket, as the kernel tells (sock_diag or /proc/net/tcp alike)."""

    uid: int
    #: 0 for a socket no process holds any more (closed, in TIME_WAIT or an
    #: orphan): the kernel shows uid 0 for those too, which must not pass for root.
    inode: int


class DiagUnavailable(OSError):
    """NETLINK_SOCK_DIAG cannot answer here; fall back to /proc/net/tcp*."""


# --- constants (linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h) ------

NETLINK_SOCK_DIAG = 4  # linux/netlink.h
SOCK_DIAG_BY_FAMILY = 20  # linux/sock_diag.h
NLM_F_REQUEST = 0x01  # linux/netlink.h; no NLM_F_DUMP: exact lookup
NLMSG_ERROR = 0x2
NLMSG_DONE = 0x3
INET_DIAG_NOCOOKIE = 0xFFFFFFFF  # both halves of idiag_cookie[2]
TCP_LISTEN = 10  # include/net/tcp_states.h
ALL_STATES = 0xFFFFFFFF  # idiag_states: bit per TCP state

# struct nlmsghdr { __u32 nlmsg_len; __u16 nlmsg_type, nlmsg_flags; __u32 nlmsg_seq, nlmsg_pid; }
_NLMSGHDR = struct.Struct("=IHHII")
# struct inet_diag_req_v2 {
#     __u8 sdiag_family, sdiag_protocol, idiag_ext, pad; __u32 idiag_states;
#     struct inet_diag_sockid {
#         __be16 idiag_sport, idiag_dport;       <- network byte order
#         __be32 idiag_src[4], idiag_dst[4];     <- address bytes as on the wire
#         __u32  idiag_if; __u32 idiag_cookie[2];
#     } id;
# };                                            (56 bytes)
_REQUEST = struct.Struct("=IHHIIBBBxIHH16s16sIII")  # ports: htons() below
# struct inet_diag_msg {
#     __u8 idiag_family, idiag_state, idiag_timer, idiag_retrans;
#     struct inet_diag_sockid id;
#     __u32 idiag_expires, idiag_rqueue, idiag_wqueue, idiag_uid, idiag_inode;
# };                                            (72 bytes)
_MSG = struct.Struct("=BBBBHH16s16sIIIIIIII")  # ports: ntohs() below
_ERRNO = struct.Struct("=i")  # struct nlmsgerr starts with int error (negative errno)

# The kernel handles a sock_diag request synchronously inside our sendmsg()
# (netlink_unicast_kernel → sock_diag_rcv → inet_diag_dump_one_icsk →
# nlmsg_unicast), so the answer is queued when send() returns: receive with
# MSG_DONTWAIT and only wait (up to _TIMEOUT) if it somehow is not. (A Python
# socket timeout would add a poll() before every send and recv.)
_TIMEOUT = 1.0  # seconds

_available: bool | None = None  # the probe's verdict, for the life of the process


def _netlink() -> socket.socket:
    """A netlink socket for one lookup (closed after it: nothing shared between threads,
    nothing inherited across fork, nothing left open at exit; it costs about 10 us)."""
    if not hasattr(socket, "AF_NETLINK"):
        raise DiagUnavailable(errno.EAFNOSUPPORT, "no AF_NETLINK on " + sys.platform)
    try:
        return socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG
        )
    except OSError as exc:
        raise DiagUnavailable(exc.errno, f"NETLINK_SOCK_DIAG refused: {exc}") from exc


def _query(
    sock: socket.socket,
    seq: int,
    family: int,
    src: bytes,
    sport: int,
    dst: bytes,
    dport: int,
    ifindex: int,
) -> tuple[int, int, int, int, int] | None:
    """One exact SOCK_DIAG_BY_FAMILY lookup: ``(state, sport, dport, uid, inode)``;
    ``None`` on ENOENT.

    ``src``/``dst`` are the socket's *local*/*remote* address, 4 or 16 bytes in
    network order (zero-padded to 16).
    """
    buffer = bytearray(8192)
    request = _REQUEST.pack(
        _REQUEST.size, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, seq, 0,
        family, socket.IPPROTO_TCP, 0, ALL_STATES,
        socket.htons(sport), socket.htons(dport), src.ljust(16, b"\0"), dst.ljust(16, b"\0"),
        ifindex, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE,
    )  # fmt: skip
    try:
        sock.send(request)
        while True:
            try:
                size = sock.recv_into(buffer, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if not select.select([sock], [], [], _TIMEOUT)[0]:
                    raise DiagUnavailable(errno.ETIMEDOUT, "sock_diag: no answer") from None
                continue
            offset = 0
            while offset + _NLMSGHDR.size <= size:
                length, kind, _flags, reply_seq, _pid = _NLMSGHDR.unpack_from(buffer, offset)
                if length < _NLMSGHDR.size or offset + length > size:
                    raise DiagUnavailable(errno.EBADMSG, "malformed netlink reply")
                body = offset + _NLMSGHDR.size
                offset += (length + 3) & ~3  # NLMSG_ALIGN
                if reply_seq != seq:
                    continue  # not the answer to this request
                if kind == NLMSG_ERROR:
                    (error,) = _ERRNO.unpack_from(buffer, body)
                    if error == -errno.ENOENT:
                        return None
                    raise DiagUnavailable(-error, f"sock_diag: {os.strerror(-error)}")
                if kind == SOCK_DIAG_BY_FAMILY and length - _NLMSGHDR.size >= _MSG.size:
                    fields = _MSG.unpack_from(buffer, body)
                    # (family, state, timer, retrans, sport, dport, src, dst, if, cookie0, cookie1,
                    #  expires, rqueue, wqueue, uid, inode)
                    return (
                        fields[1],
                        socket.ntohs(fields[4]),
                        socket.ntohs(fields[5]),
                        fields[14],
                        fields[15],
                    )
                if kind == NLMSG_DONE:
                    return None
                raise DiagUnavailable(errno.EBADMSG, f"unexpected netlink message type {kind}")
    except DiagUnavailable:
        raise
    except OSError as exc:  # EACCES (SELinux), ENOBUFS, ...
        raise DiagUnavailable(exc.errno or errno.EIO, f"sock_diag: {exc}") from exc


_MAPPED = b"\0" * 10 + b"\xff\xff"  # ::ffff:0:0/96


def _split(address: tuple[object, ...]) -> tuple[bytes, int, int]:
    """``(ip, port[, flowinfo, scope_id])`` → ``(4 or 16 address bytes, port, scope_id)``.

    ``::ffff:a.b.c.d`` becomes the 4 bytes of ``a.b.c.d``. (``inet_pton`` rather
    than ``ipaddress``: several microseconds less per call.)
    """
    host = str(address[0]).split("%")[0]
    if ":" in host:
        raw = socket.inet_pton(socket.AF_INET6, host)
        if raw[:12] == _MAPPED:
            raw = raw[12:]
    else:
        raw = socket.inet_pton(socket.AF_INET, host)
    scope = int(address[3]) if len(address) >= 4 else 0  # type: ignore[call-overload]
    return raw, int(address[1]), scope  # type: ignore[call-overload]


def _lookup(local: tuple[object, ...], remote: tuple[object, ...]) -> Owner | None:
    """Owner of the TCP socket whose own address is ``local`` and whose peer is ``remote``."""
    lip, lport, _ = _split(local)
    rip, rport, scope = _split(remote)
    if len(lip) != len(rip):
        return None  # an IPv4 and a real IPv6 end: cannot be one connection
    if len(lip) == 4:
        attempts = [
            (socket.AF_INET, lip, rip, 0),
            (socket.AF_INET6, _MAPPED + lip, _MAPPED + rip, 0),
        ]
    else:
        attempts = [(socket.AF_INET6, lip, rip, scope)]
    with _netlink() as sock:
        for seq, (family, src, dst, ifindex) in enumerate(attempts, 1):
            found = _query(sock, seq, family, src, lport, dst, rport, ifindex)
            # An exact lookup falls back to listening sockets (inet_lookup →
            # __inet_lookup_listener) when no connection matches: only a
            # socket with exactly these ports, not listening, is the one.
            if found is not None:
                state, sport, dport, uid, inode = found
                if state != TCP_LISTEN and sport == lport and dport == rport:
                    return Owner(uid=uid, inode=inode)
    return None


def available() -> bool:
    """Whether NETLINK_SOCK_DIAG answers TCP lookups here (probed once, then cached).

    A kernel without ``inet_diag``/``tcp_diag`` answers ``ENOENT`` to every
    lookup, which would pass for "no such socket"; so look up a socket that
    certainly exists: the server end of a connection we make to ourselves.
    """
    global _available
    if _available is None:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
                listener.bind(("127.0.0.1", 0))
                listener.listen(1)
                with socket.create_connection(listener.getsockname(), timeout=_TIMEOUT) as client:
                    conn, _ = listener.accept()
                    with conn:
                        owner = _lookup(conn.getpeername(), conn.getsockname())
                        # a socket's st_ino is the inode sock_diag and /proc report
                        _available = (
                            owner is not None and owner.inode == os.fstat(client.fileno()).st_ino
                        )
        except OSError:
            _available = False
    return _available


def socket_owner(ours: tuple[object, ...], peer: tuple[object, ...]) -> Owner | None:
    """Owner of the client socket of the connection we accepted from ``peer`` on ``ours``.

    ``ours`` is ``conn.getsockname()``, ``peer`` is ``conn.getpeername()``
    (IPv4, IPv6 or IPv4-mapped IPv6 tuples). The client's socket is the one
    whose local address is ``peer`` and whose remote address is ``ours``.

    Returns ``Owner(uid, inode)`` (``inode == 0``: no process holds it any
    more, e.g. TIME_WAIT or orphaned — refuse it) or ``None`` when the kernel
    has no such socket (in this network namespace). Raises
    ``DiagUnavailable`` (an ``OSError``) when sock_diag cannot tell: fall back
    to ``/proc/net/tcp*`` then.
    """
    if not available():
        raise DiagUnavailable(errno.EOPNOTSUPP, "NETLINK_SOCK_DIAG unavailable for TCP")
    return _lookup(peer, ours)
