"""Another user of the same machine (uid 65534) attacks a login in progress.

The attacker runs as a second uid through ``setpriv``, as the issue's attack
did; it only needs Python's standard library, so it runs the system's
interpreter (the tests' virtual environment may not be readable by it).
"""

from __future__ import annotations

import asyncio
import re
import resource
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from support import (
    CLI,
    NEUTRAL_CWD,
    NOBODY,
    DemoServer,
    ServedLogin,
    as_nobody,
    free_port,
    login_args,
    needs_second_user,
    receiving,
)

from loopback_login._demo.browser import play_browser
from loopback_login._login.peer import Owner, parse_table, peer_owner

STATE = "c3RvbGVuLWZyb20tcHJvYy1jbWRsaW5lLTAxMjM0NTY3ODk"


# The attacker read the authorize URL (state included) from /proc/PID/cmdline
# and sends its own code, or a forged error, with it.
_FORGE = r"""
import socket, sys
port, target = int(sys.argv[1]), sys.argv[2]
with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
print(data.split(b" ", 2)[1].decode(), data.count(b"belongs to another user"))
"""


@pytest.fixture
async def login() -> AsyncIterator[ServedLogin]:
    async with receiving("http://127.0.0.1:0/callback", state=STATE) as served:
        yield ServedLogin(*served, STATE)


@needs_second_user
@pytest.mark.parametrize(
    "query",
    [f"code=attackers-own-code&state={STATE}", f"error=access_denied&state={STATE}"],
    ids=["code", "error"],
)
async def test_another_user_with_the_stolen_state_gets_403(login: ServedLogin, query: str) -> None:
    attacker = await asyncio.create_subprocess_exec(
        *as_nobody(_FORGE, str(login.port), f"/callback?{query}"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(attacker.communicate(), 30)
    assert attacker.returncode == 0, err.decode()
    assert out.decode().split() == ["403", "1"]
    await asyncio.sleep(0.05)
    assert not login.waiting.done(), "another user ended or completed the login"
    await login.finish_for_real()


# --- the owner lookup, pure ---------------------------------------------------------

_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0
   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 65534        0 2002 1 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3003 1 0
   3: 0100007F:C351 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0
"""
_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:C352 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 4004 1 0
   1: 0000000000000000FFFF00000100007F:C353 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000  1001        0 5005 1 0
"""


def test_peer_owner_from_proc_net_tcp() -> None:
    tables = {**parse_table(_TCP, "little"), **parse_table(_TCP6, "little")}
    ours = ("127.0.0.1", 8080)
    assert peer_owner(tables, ours, ("127.0.0.1", 50000)) == Owner(uid=65534, inode=2002)
    # A socket closed already (TIME_WAIT) shows uid 0 and inode 0: not root's.
    assert peer_owner(tables, ours, ("127.0.0.1", 50001)) == Owner(uid=0, inode=0)
    assert peer_owner(tables, ("::1", 8080, 0, 0), ("::1", 50002, 0, 0)) == Owner(1000, 4004)
    # IPv4-mapped IPv6 addresses are the IPv4 ones.
    assert peer_owner(tables, ours, ("::ffff:127.0.0.1", 50003, 0, 0)) == Owner(1001, 5005)
    assert peer_owner(tables, ours, ("127.0.0.1", 50009)) is None
    # Big-endian machines print the same address the other way round.
    big = parse_table(_TCP.replace("0100007F", "7F000001"), "big")
    assert peer_owner(big, ours, ("127.0.0.1", 50000)) == Owner(uid=65534, inode=2002)


# --- a flood of idle connections from another user ----------------------------------

_FLOOD = r"""
import resource, selectors, socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 200) if hard > 0 else count + 200, hard))
held = []
for _ in range(count):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    held.append(s)
sel = selectors.DefaultSelector()
for s in held:
    sel.register(s, selectors.EVENT_WRITE)
deadline, connected = time.monotonic() + 10, 0
while connected < count and time.monotonic() < deadline:
    for key, _ in sel.select(0.5):
        sel.unregister(key.fileobj)
        connected += key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
print("ready", connected, flush=True)
sys.stdin.read()  # hold every connection until the test is done
"""


def _limit_descriptors() -> None:
    # The login gets a usual desktop limit (macOS: 256), so that a flood of
    # about a thousand connections would exhaust it without the per-client bound.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


@needs_second_user
def test_flood_of_idle_connections_from_another_user(tmp_path: Path, demo: DemoServer) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    port = int(redirect.split(":")[2].split("/")[0])
    login = subprocess.Popen(
        [CLI, *login_args(demo, redirect, "--no-browser", "--timeout", "60")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=NEUTRAL_CWD,
        preexec_fn=_limit_descriptors,
    )
    flood = None
    try:
        assert login.stderr is not None
        line = login.stderr.readline()
        while "http" not in line:
            assert line, "the login ended before showing its URL"
            line = login.stderr.readline()
        url = re.search(r"https?://\S+", line)
        assert url is not None
        flood = subprocess.Popen(
            as_nobody(_FLOOD, str(port), "1000"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert flood.stdout is not None
        ready = flood.stdout.readline().split()
        assert ready[0] == "ready" and int(ready[1]) >= 900, ready
        time.sleep(
            3
        )  # the listener has met the flood (connects past the backlog retry at 1 s, 3 s)
        visit = play_browser(url.group(0))
        assert visit.status == 200 and "You are logged in" in visit.body
        out, err = login.communicate(timeout=60)
    finally:
        if flood is not None:
            flood.kill()
            flood.communicate()
        if login.poll() is None:
            login.kill()
            login.communicate()
    print(
        f"flood of {ready[1]} connections from uid {NOBODY}; login stderr: {len(err.splitlines())} lines"
    )
    assert login.returncode == 0, err
    assert "Traceback" not in err and "out of system resource" not in err
    assert len(err.splitlines()) < 10, err


# --- big localhost cookies ---------------------------------------------------------------


async def test_callback_with_64_kib_of_cookies_is_accepted_and_never_logged(
    login: ServedLogin, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(0)  # everything, from every logger
    cookies = "; ".join(f"c{i}=cookie-value-{i:05d}-" + "x" * 40 for i in range(1100))
    assert len(cookies) >= 64 * 1024
    async with aiohttp.ClientSession() as http:
        page = asyncio.ensure_future(
            http.get(
                f"{login.redirect}?code=real&state={quote(STATE)}", headers={"Cookie": cookies}
            )
        )
        assert await asyncio.wait_for(login.waiting, 10) == "real"
        login.receiver.finish(None, profile="p")
        response = await asyncio.wait_for(page, 10)
        assert response.status == 200
        response.release()
        # Beyond any bound: refused, and still not logged.
        huge = "big=" + "y" * (512 * 1024)
        async with http.get(f"{login.redirect}?x=1", headers={"Cookie": huge}) as refused:
            assert refused.status >= 400
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert "cookie-value" not in text and "yyyy" not in text
        assert "Traceback" not in text
