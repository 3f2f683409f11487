"""The loopback receiver on real sockets, driven by a real HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
from support import HAS_IPV6_LOOPBACK, free_port, needs_ipv6_loopback, receiving

from loopback_login._demo.browser import BrowserVisit, play_browser
from loopback_login._demo.provider import DemoClient, DemoProvider, RunningDemo
from loopback_login._errors import AuthorizationDenied, ConfigError, PortInUse, TokenEndpointError
from loopback_login._login.bind import bind, loopback_target
from loopback_login._login.flow import login
from loopback_login._login.receiver import Receiver
from loopback_login._profiles.profile import resolve_profile
from loopback_login._store import Store
from loopback_login._ui import Terminal

if TYPE_CHECKING:
    from loopback_login._tokens.record import TokenRecord

STATE = "the-state-0123456789abcdefghijklmnopqrstuvw"


@pytest.mark.parametrize(
    "uri",
    [
        "https://localhost:8080/cb",
        "http://example.com:8080/cb",
        "http://0.0.0.0:8080/cb",
        "http://192.168.1.2:8080/cb",
        "http://localhost:8080/cb#frag",
        "http://localhost:99999/cb",
    ],
)
def test_only_http_loopback_redirects(uri: str) -> None:
    with pytest.raises(ConfigError):
        loopback_target(uri)


def test_redirect_uri_kept_byte_for_byte_and_port_zero_filled_in() -> None:
    fixed = loopback_target("http://localhost:8080/callback")
    assert fixed.with_port(8080) == "http://localhost:8080/callback"
    listener = bind(loopback_target("http://127.0.0.1:0/cb?x=1"))
    try:
        assert listener.port != 0
        assert listener.redirect_uri == f"http://127.0.0.1:{listener.port}/cb?x=1"
        assert listener.allowed_hosts == {f"127.0.0.1:{listener.port}"}
    finally:
        listener.close()


def test_localhost_binds_both_loopbacks_and_never_all_interfaces() -> None:
    port = free_port()
    listener = bind(loopback_target(f"http://localhost:{port}/callback"))
    try:
        addresses = {sock.getsockname()[0] for sock in listener.sockets}
        expected = {"127.0.0.1", "::1"} if HAS_IPV6_LOOPBACK else {"127.0.0.1"}
        assert addresses == expected
        assert all(sock.getsockname()[1] == port for sock in listener.sockets)
    finally:
        listener.close()


def test_busy_port_is_reported_with_its_number() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} .*--paste"):
            bind(loopback_target(f"http://127.0.0.1:{port}/callback"))


@needs_ipv6_loopback
def test_localhost_fails_when_ipv6_side_is_held() -> None:
    with socket.socket(socket.AF_INET6) as other:
        other.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        other.bind(("::1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(PortInUse, match=r"\[::1\]"):
            bind(loopback_target(f"http://localhost:{port}/callback"))


@contextlib.asynccontextmanager
async def _serve(uri: str) -> AsyncIterator[tuple[Receiver, str]]:
    async with receiving(uri, state=STATE) as (receiver, listener):
        yield receiver, listener.redirect_uri


async def test_receiver_ignores_everything_but_this_logins_callback() -> None:
    async with _serve("http://127.0.0.1:0/callback") as (receiver, redirect):
        origin = redirect.removesuffix("/callback")
        waiting = asyncio.ensure_future(receiver.wait())
        async with aiohttp.ClientSession() as http:
            checks = [
                ("GET", f"{origin}/favicon.ico", {}, 404),
                ("GET", f"{origin}/", {}, 404),
                ("GET", f"{origin}/callback/", {}, 404),
                ("POST", f"{redirect}?code=c&state={STATE}", {}, 405),
                ("HEAD", f"{redirect}?code=c&state={STATE}", {}, 405),
                ("GET", f"{redirect}?code=c&state={STATE}", {"Host": "evil.example"}, 400),
                ("GET", f"{redirect}?code=c&state={STATE}", {"Host": "localhost:1"}, 400),
                ("GET", f"{redirect}?code=c&state=wrong", {}, 400),
                ("GET", f"{redirect}?code=c", {}, 400),
                ("GET", f"{redirect}?error=access_denied&state=wrong", {}, 400),
            ]
            for method, url, headers, status in checks:
                async with http.request(method, url, headers=headers) as response:
                    assert response.status == status, (method, url, headers)
                    assert response.headers["Cache-Control"] == "no-store"
                    assert response.headers["Referrer-Policy"] == "no-referrer"
            # A preconnect: a connection opened and closed without a request.
            host, port = redirect.removeprefix("http://").split("/")[0].split(":")
            _reader, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            await writer.wait_closed()
            # The event to wait for: the receiver answering a later request. An ended
            # wait would show by then (its wake-up is queued on this loop before that).
            async with http.get(f"{origin}/favicon.ico") as probe:
                assert probe.status == 404
            assert not waiting.done()

            # The real callback: the page waits for the exchange's outcome.
            page = asyncio.ensure_future(http.get(f"{redirect}?code=the-code&state={STATE}"))
            assert await asyncio.wait_for(waiting, 5) == "the-code"
            async with http.get(f"{origin}/favicon.ico") as probe:
                assert probe.status == 404
            assert not page.done()
            receiver.finish(None, profile="home")
            response = await asyncio.wait_for(page, 5)
            assert response.status == 200
            assert "You are logged in" in await response.text()
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            response.release()
            # Single use: the same callback again is refused.
            async with http.get(f"{redirect}?code=the-code&state={STATE}") as again:
                assert again.status == 400


async def test_failed_exchange_gives_a_failure_page_with_escaped_text() -> None:
    async with _serve("http://127.0.0.1:0/callback") as (receiver, redirect):
        async with aiohttp.ClientSession() as http:
            page = asyncio.ensure_future(http.get(f"{redirect}?code=c&state={STATE}"))
            await asyncio.wait_for(receiver.wait(), 5)
            receiver.finish(TokenEndpointError("bad <script>x</script>"), profile="home")
            response = await asyncio.wait_for(page, 5)
            text = await response.text()
            response.release()
        assert "Login failed" in text and "You are logged in" not in text
        assert "<script>x" not in text and "&lt;script&gt;" in text


async def test_error_callback_ends_the_wait() -> None:
    async with _serve("http://127.0.0.1:0/callback") as (receiver, redirect):
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{redirect}?error=access_denied&error_description=nope&state={STATE}"
            ) as response,
        ):
            assert "nope" in await response.text()
        with pytest.raises(AuthorizationDenied, match="nope"):
            await asyncio.wait_for(receiver.wait(), 5)


async def test_port_is_free_again_at_once_after_a_served_login() -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}/callback"
    for _ in range(2):
        async with _serve(uri) as (receiver, redirect), aiohttp.ClientSession() as http:
            page = asyncio.ensure_future(http.get(f"{redirect}?code=c&state={STATE}"))
            await asyncio.wait_for(receiver.wait(), 5)
            receiver.finish(None, profile="p")
            (await page).release()
    # And nothing is listening any more.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


class _Visiting:
    """A played browser that says when its visit (the callback's page included) is over."""

    def __init__(self) -> None:
        self.visit: BrowserVisit | None = None
        self.done = threading.Event()

    def unavailable(self) -> str | None:
        return None

    def open(self, url: str, say: object) -> None:
        def run() -> None:
            self.visit = play_browser(url)
            self.done.set()

        threading.Thread(target=run, daemon=True).start()


class _SlowDisk(Store):
    """A store whose token write waits until the test lets it go."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.release = threading.Event()
        self.writing = threading.Event()

    def write_record(self, name: str, record: TokenRecord, path: str | None = None) -> str:
        self.writing.set()
        assert self.release.wait(30), "never released"
        return super().write_record(name, record, path)


async def test_the_page_goes_out_while_the_tokens_are_written(tmp_path: Path) -> None:
    """The exchange's answer reaches the browser without waiting for the disk (fsync is slow);
    the login itself returns only once the tokens are saved."""
    redirect = "http://127.0.0.1:0/callback"
    client = DemoClient("app", "secret", (redirect,), any_loopback_port=True)
    store = _SlowDisk(str(tmp_path / "config"))
    browser = _Visiting()
    async with RunningDemo(DemoProvider([client])) as demo:
        profile = resolve_profile(
            "home",
            None,
            {
                "provider": "demo",
                "base_url": demo.base_url,
                "client_id": "app",
                "client_secret": "secret",
                "redirect_uri": redirect,
                "client_check": False,
            },
        )
        logging_in = asyncio.ensure_future(
            login(profile, store=store, browser=browser, reporter=Terminal(io.StringIO()))
        )
        assert await asyncio.to_thread(store.writing.wait, 30)
        assert await asyncio.to_thread(browser.done.wait, 30), "the page waited for the disk"
        assert browser.visit is not None and "You are logged in" in browser.visit.body
        assert not logging_in.done()
        store.release.set()
        token = await asyncio.wait_for(logging_in, 30)
    assert store.require_record("home")["access_token"] == token.access_token
