"""Another user of the same machine (uid 65534) attacks a login in progress.

The attacker runs as a second uid through ``setpriv``, as the issue's attack
did; it only needs Python's standard library, so it runs the system's
interpreter (the tests' virtual environment may not be readable by it).
"""

from __future__ import annotations

import asyncio
import re
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import aiohttp
import pytest
from fake_browser import page_target
from support import (
    CLI,
    NEUTRAL_CWD,
    NOBODY,
    TESTS,
    Browser,
    DemoServer,
    ServedLogin,
    as_nobody,
    free_port,
    login_args,
    needs_second_user,
    receiving,
    start_cli,
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


# --- another user, and a forwarder the person runs ------------------------------------

# A TCP forwarder like `ssh -L` or socat, run by the person: its connections to the
# listener are the person's own.
_FORWARDER = r"""
import asyncio, sys
listen, target = int(sys.argv[1]), int(sys.argv[2])
async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
async def serve(reader, writer):
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", listen)
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""

# The attacker (another uid) looks for the state on every command line, reads the page
# named there if it can, and sends a callback through the forwarder with what it found.
_ATTACKER = r"""
import glob, os, re, socket, sys
from urllib.parse import unquote
forwarder, port = int(sys.argv[1]), sys.argv[2]
found, pages = set(), []
for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        line = open(path, "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        continue
    if ("loopback-login" not in line and port not in line) or "glob.glob" in line:
        continue  # this machine's other programs (and this one): not the login under attack
    found.update(re.findall(r"state=([A-Za-z0-9_-]{20,})", line))
    for page in re.findall(r"file://(\S+)", line):
        try:
            found.update(re.findall(r"state=([A-Za-z0-9_-]{20,})", open(unquote(page)).read()))
            pages.append("read")
        except OSError as exc:
            pages.append(type(exc).__name__)
state = sorted(found)[0] if found else "guessed-state-0123456789abcdef"
with socket.create_connection(("127.0.0.1", forwarder), timeout=10) as s:
    s.sendall(
        f"GET /callback?code=attackers-code&state={state} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{forwarder}\r\nConnection: close\r\n\r\n".encode()
    )
    answer = b""
    while chunk := s.recv(65536):
        answer += chunk
print(len(found), ",".join(pages) or "-", answer.split(b" ", 2)[1].decode())
"""


@needs_second_user
def test_another_user_finds_no_state_to_forward(demo: DemoServer, tmp_path: Path) -> None:
    port, forwarded = free_port(), free_port()
    # The forwarder's port is the redirect URI's, as with `ssh -L 8080:127.0.0.1:8080`:
    # the Host header the listener checks is the same through it.
    redirect = f"http://127.0.0.1:{port}/callback"
    demo.register(redirect)
    log = tmp_path / "browser.json"
    browser = Browser(
        env={
            "BROWSER": shlex.join([sys.executable, str(TESTS / "fake_browser.py")]) + " %s",
            "TEST_BROWSER_LOG": str(log),
            "TEST_BROWSER_ACTION": "nothing",
            "TEST_BROWSER_LINGER": "60",  # on the process list while the attack runs
        },
        log_path=log,
    )
    forwarder = subprocess.Popen(
        [sys.executable, "-c", _FORWARDER, str(forwarded), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    login = start_cli(*login_args(demo, redirect, "--timeout", "60"), env=browser.env)
    try:
        assert forwarder.stdout is not None and forwarder.stdout.readline() == "ready\n"
        opened = browser.wait_log()["opened"]
        # The page's browser is still running, its command line on view.
        time.sleep(0.2)
        attack = subprocess.run(
            as_nobody(_ATTACKER, str(forwarded), str(port)),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert attack.returncode == 0, attack.stderr
        found, pages, status = attack.stdout.split()
        assert found == "0"  # no state on any command line, none in a page it could read
        assert pages == "PermissionError"  # it saw the page's name, and could not open it
        assert status == "400"  # through the forwarder, a made-up state is refused
        # The login goes on, and the person completes it.
        visit = play_browser(page_target(opened))
        assert visit.status == 200, visit.body
        out, err = login.communicate(timeout=30)
        assert login.returncode == 0, err
        assert "attackers-code" not in err
    finally:
        for process in (login, forwarder):
            if process.poll() is None:
                process.kill()
            process.communicate()  # and its pipes closed
    assert not Path(unquote(urlsplit(opened).path)).exists()  # the page is gone


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
