"""Who owns the other end of a loopback connection: the kernel's one-socket answer (sock_diag)
against the /proc/net/tcp listing, on real sockets, and the fallback between them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from support import needs_ipv6_loopback, needs_second_user

from loopback_login._login import sock_diag
from loopback_login._login.peer import Owners, peer_owner, read_tables

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def _listener(kind: str) -> socket.socket:
    if kind == "v4":
        sock = socket.socket(socket.AF_INET)
        sock.bind(("127.0.0.1", 0))
    else:
        sock = socket.socket(socket.AF_INET6)
        # dual-stack: an IPv4 client shows up as ::ffff:127.0.0.1 on our side
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(kind == "v6"))
        sock.bind(("::1" if kind == "v6" else "::", 0))
    sock.listen(16)
    return sock


def _both(conn: socket.socket) -> tuple[sock_diag.Owner | None, sock_diag.Owner | None]:
    """The owner of the connection's client end, by sock_diag and by /proc."""
    ours, peer = conn.getsockname(), conn.getpeername()
    tables = read_tables()
    assert tables is not None
    return sock_diag.socket_owner(ours, peer), peer_owner(tables, ours, peer)


@pytest.mark.parametrize(
    ("kind", "family", "target"),
    [
        pytest.param("v4", socket.AF_INET, "127.0.0.1", id="v4"),
        pytest.param("v6", socket.AF_INET6, "::1", id="v6", marks=needs_ipv6_loopback),
        pytest.param(
            "dual", socket.AF_INET, "127.0.0.1", id="v4-to-dual", marks=needs_ipv6_loopback
        ),
        pytest.param(
            "dual", socket.AF_INET6, "::ffff:127.0.0.1", id="v4-mapped", marks=needs_ipv6_loopback
        ),
    ],
)
def test_the_kernel_names_the_client_socket_as_proc_does(
    kind: str, family: int, target: str
) -> None:
    with _listener(kind) as listener, socket.socket(family) as client:
        client.connect((target, listener.getsockname()[1]))
        conn, _ = listener.accept()
        with conn:
            diag, proc = _both(conn)
            assert diag is not None and diag == proc
            assert diag.uid == os.getuid()
            # The client's own socket: not ours, not the listener's.
            assert os.fstat(client.fileno()).st_ino == diag.inode


def test_no_such_socket_is_none_not_the_listener() -> None:
    with _listener("v4") as listener:
        port = listener.getsockname()[1]
        # An exact lookup that matches nothing falls back to a listener: not taken.
        assert sock_diag.socket_owner(("127.0.0.1", port), ("127.0.0.1", 1)) is None


def test_a_socket_no_process_holds_has_inode_0() -> None:
    """A client that closed first (FIN_WAIT_2, then TIME_WAIT) shows uid 0: never root."""
    with _listener("v4") as listener:
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        with conn:
            client.close()
            deadline = time.monotonic() + 5
            while (found := _both(conn))[0] != (0, 0) and time.monotonic() < deadline:
                time.sleep(0.01)  # the FIN arrives asynchronously
            assert found == (sock_diag.Owner(0, 0), sock_diag.Owner(0, 0))


_CLIENT = """
import socket, sys
client = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print(client.getsockname()[1], flush=True)
sys.stdin.read()
"""


@needs_second_user
def test_another_users_socket_is_theirs() -> None:
    with _listener("v4") as listener:
        with subprocess.Popen(
            [
                *("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"),
                *(sys.executable, "-c", _CLIENT, str(listener.getsockname()[1])),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stdout is not None and child.stdin is not None
            client_port = int(child.stdout.readline())
            conn, _ = listener.accept()
            with conn:
                assert conn.getpeername()[1] == client_port
                diag, proc = _both(conn)
            child.stdin.close()
        assert diag is not None and diag.uid == 65534 and diag.inode != 0
        assert diag == proc


def test_where_the_kernel_refuses_sock_diag_proc_is_read_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sandbox that refuses NETLINK_SOCK_DIAG (gVisor, seccomp): the /proc listing serves."""
    real = socket.socket

    def refuse(family: int = -1, *args: object, **kwargs: object) -> socket.socket:
        if family == socket.AF_NETLINK:
            raise PermissionError(13, "refused by a sandbox")
        return real(family, *args, **kwargs)  # type: ignore[arg-type]

    reads: list[int] = []

    def counted_read() -> object:
        reads.append(1)
        return read_tables()

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(sock_diag, "_available", None)
    monkeypatch.setattr("loopback_login._login.peer.read_tables", counted_read)
    assert not sock_diag.available()
    with _listener("v4") as listener:
        clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
        conns = [listener.accept()[0] for _ in clients]
        owners = Owners()
        try:
            found = [owners.of(conn.getsockname(), conn.getpeername()) for conn in conns]
        finally:
            for sock in [*clients, *conns]:
                sock.close()
    assert owners.known and len(reads) == 1
    assert [owner.uid if owner else None for owner in found] == [os.getuid()] * 3
    monkeypatch.undo()
    sock_diag._available = None
    assert sock_diag.available()


def test_a_kernel_without_tcp_diag_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without tcp_diag the kernel answers ENOENT to everything: the probe must not trust that."""
    monkeypatch.setattr(sock_diag, "_query", lambda *args: None)
    monkeypatch.setattr(sock_diag, "_available", None)
    with pytest.raises(OSError):
        sock_diag.socket_owner(("127.0.0.1", 1), ("127.0.0.1", 2))
