"""The browser is handed a private local page, never the authorize URL on its command line.

Another user of the machine reads every program's command line (``/proc/PID/cmdline``).
With the authorize URL there, they had the login's ``state``: they could complete the
login in their own browser and deliver their own code through a forwarder the person
runs (``ssh -L``, socat), which the listener sees as the person's own connection.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from fake_browser import page_target
from support import (
    TESTS,
    Browser,
    DemoServer,
    as_nobody,
    free_port,
    login_args,
    needs_second_user,
    run_cli,
    start_cli,
)

from loopback_login._demo.browser import play_browser
from loopback_login._login.page import LocalPage, is_confined, page_html


def _page_path(opened: str) -> Path:
    assert opened.startswith("file://"), opened
    return Path(unquote(urlsplit(opened).path))


def test_the_browser_gets_a_private_page_that_is_removed_after_the_login(
    demo: DemoServer, browser: Browser
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    result = run_cli(*login_args(demo, redirect), env=browser.env)
    assert result.returncode == 0, result.stderr
    log = browser.log
    opened, authorize_url = log["opened"], log["authorize_url"]
    # On its command line: a file name that says nothing; the state is in the page only.
    state = parse_qs(urlsplit(authorize_url).query)["state"][0]
    assert state not in opened and "state" not in opened and "client_id" not in opened
    assert log["page_modes"] == [0o600, 0o700]
    assert not _page_path(opened).parent.exists()  # removed when the login ended
    # The terminal still shows the URL itself.
    assert f"Open this URL to log in: {authorize_url}" in result.stderr


def test_the_page_is_removed_when_the_login_fails(demo: DemoServer, browser: Browser) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    env = {**browser.env, "TEST_BROWSER_ACTION": "nothing"}
    result = run_cli(*login_args(demo, redirect, "--timeout", "2"), env=env)
    assert result.returncode == 5, result.stderr
    assert not _page_path(browser.wait_log()["opened"]).parent.exists()


def test_no_page_without_a_browser(demo: DemoServer, tmp_path: Path) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    env = {"XDG_RUNTIME_DIR": str(tmp_path), "BROWSER": "true"}
    result = run_cli(*login_args(demo, redirect, "--no-browser", "--timeout", "1"), env=env)
    assert result.returncode == 5 and "Open this URL to log in: " in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_page_forwards_to_the_url_whatever_it_contains(tmp_path: Path) -> None:
    url = "https://as.example/authorize?state=s&x=\"><script>x</script>&q=’;'"
    page = LocalPage()
    opened = page.write(url, str(tmp_path))
    assert opened is not None
    text = _page_path(opened).read_text()
    assert "<script>" not in text and "’" not in text and "'" not in text.split("url=")[1]
    assert unquote(page_target(opened)) == url
    page.remove()
    assert list(tmp_path.iterdir()) == []
    # Removed first (the login ended before the browser's thread ran): nothing is written.
    assert page.write(url, str(tmp_path)) is None and list(tmp_path.iterdir()) == []
    assert 'http-equiv="refresh"' in page_html(url)


def _script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_confined_browsers_are_recognised(tmp_path: Path) -> None:
    snap = _script(tmp_path / "snap" / "bin" / "firefox", "#!/bin/sh\n")
    wrapper = _script(tmp_path / "usr" / "firefox", '#!/bin/sh\nexec /snap/bin/firefox "$@"\n')
    flatpak = _script(tmp_path / "fp", '#!/bin/sh\nexec flatpak run org.mozilla.firefox "$@"\n')
    plain = _script(tmp_path / "usr" / "browser", '#!/bin/sh\nexec /usr/lib/browser "$@"\n')
    assert is_confined([str(snap)]) and is_confined([str(wrapper)]) and is_confined([str(flatpak)])
    assert is_confined(["flatpak", "run", "org.chromium.Chromium"])
    assert not is_confined([str(plain)]) and not is_confined([sys.executable])


@pytest.mark.parametrize("downloads", [True, False], ids=["in Downloads", "the URL"])
def test_a_snap_browser_gets_the_page_where_it_can_read_it_or_the_url(
    demo: DemoServer, tmp_path: Path, downloads: bool
) -> None:
    """Snap and flatpak browsers read the download directory, not /tmp or /run/user."""
    home = tmp_path / "home"
    home.mkdir()
    if downloads:
        (home / "Downloads").mkdir()
    log = tmp_path / "browser.json"
    fake = shlex.join([sys.executable, str(TESTS / "fake_browser.py")])
    snap = _script(tmp_path / "snap" / "bin" / "browser", f'#!/bin/sh\nexec {fake} "$@"\n')
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    env = {"BROWSER": f"{snap} %s", "TEST_BROWSER_LOG": str(log), "HOME": str(home)}
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    result = run_cli(*login_args(demo, redirect), env=env)
    assert result.returncode == 0, result.stderr
    opened = Browser(env=env, log_path=log).log["opened"]
    if downloads:
        assert _page_path(opened).parent.parent == home / "Downloads"
        assert list((home / "Downloads").iterdir()) == []  # removed
    else:
        assert opened.startswith("http://127.0.0.1:")  # where the page is not possible


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
    assert not _page_path(opened).exists()
