"""Helpers shared by the tests: the demo provider in a thread, the CLI, the browser."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web

from loopback_login._demo.provider import DemoClient, DemoProvider, RunningDemo
from loopback_login._http.retry import RetryPolicy
from loopback_login._login.bind import Listener, bind, loopback_target
from loopback_login._login.receiver import Receiver
from loopback_login._login.start import Started
from loopback_login._profiles.profile import Profile
from loopback_login._protocol import ClientAuth
from loopback_login._tokens.record import make_record, parse_record
from loopback_login._tokens.token import Token

if TYPE_CHECKING:
    from loopback_login._tokens.record import TokenRecord

T = TypeVar("T")

TESTS = Path(__file__).parent
# The console script installed with the package, as a user runs it.
CLI = str(Path(sysconfig.get_path("scripts")) / "loopback-login")

# Subprocesses run away from the source tree, so they import the installed package.
NEUTRAL_CWD = tempfile.gettempdir()

#: The Basic credentials in the Honeywell documentation (shared/seeds/000_b19f047d485421a7.txt):
#: (client id, secret, header); Base64 of "id:secret" as they are, which RFC 6749's
#: form-encoding leaves unchanged for these characters.
HONEYWELL_BASIC_VECTORS = [
    ("123abc", "456def", "Basic MTIzYWJjOjQ1NmRlZg=="),
    ("123", "abc", "Basic MTIzOmFiYw=="),
    (
        "9UY8NrmDtIh8GVTkNdX0Y7I6k37254a9",
        "Z1947381rwgf0WkPPGPHnGik6h3LdhZ9",
        "Basic OVVZOE5ybUR0SWg4R1ZUa05kWDBZN0k2azM3MjU0YTk6WjE5NDczODFyd2dmMFdrUFBHUEhuR2lrNmgzTGRoWjk=",
    ),
]

CLIENT_ID = "123abc"
# Characters that break naive Basic auth: RFC 6749 §2.3.1 form-encodes them.
CLIENT_SECRET = "s3cr+t%2F:/x y"


def token_record(**fields: Any) -> TokenRecord:
    """A token record as a login writes it, fresh for ten minutes, ``fields`` replacing its values.

    The one way the tests make records: through the product's own writer and
    reader, so a record the product could not have written is made on purpose.
    """
    now = time.time()
    made = make_record(
        Token(access_token="tok", expires_at=now + 600, obtained_at=now),
        {"profile": "home", "provider": "custom", "client_auth": "none", "skew": 60},
    )
    return parse_record({**made, **fields})


@contextlib.asynccontextmanager
async def receiving(redirect_uri: str, **settings: Any) -> AsyncIterator[tuple[Receiver, Listener]]:
    """A receiver serving a freshly bound redirect URI, the listener closed after (by
    :class:`Started`, its owner in a login)."""
    with Started(bind(loopback_target(redirect_uri))) as started:
        assert started.listener is not None
        async with Receiver(started.listener, **settings) as receiver:
            yield receiver, started.listener


class ServedLogin:
    """A login's receiver under test: raw requests to it, and its real end."""

    def __init__(self, receiver: Receiver, listener: Listener, state: str) -> None:
        self.state = state
        self.receiver = receiver
        self.port = listener.port
        self.redirect = listener.redirect_uri
        self.origin = f"http://127.0.0.1:{listener.port}"
        self.waiting = asyncio.ensure_future(receiver.wait())

    async def raw(self, request: bytes, *, read: bool = True) -> tuple[int, bytes]:
        """Send bytes as they are, without any client's help; the status and body."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(request)
            await writer.drain()
            if not read:
                return 0, b""
            data = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
        return status, data.partition(b"\r\n\r\n")[2]

    async def get(self, target: str, **headers: str) -> tuple[int, bytes]:
        host = headers.pop("Host", f"127.0.0.1:{self.port}")
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return await self.raw(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def assert_still_waiting(self) -> None:
        """The wait goes on after what was sent before.

        The event waited for is the receiver answering a later request: a wait
        ended by an earlier one is woken through callbacks queued on this loop
        before that answer can arrive, so it would show by then.
        """
        status, _ = await self.get("/favicon.ico")
        assert status == 404
        assert not self.waiting.done(), "the wait ended"

    async def finish_for_real(self) -> None:
        async with aiohttp.ClientSession() as http:
            page = asyncio.ensure_future(http.get(f"{self.redirect}?code=real&state={self.state}"))
            assert await asyncio.wait_for(self.waiting, 10) == "real"
            self.receiver.finish(None, profile="p")
            response = await asyncio.wait_for(page, 10)
            assert response.status == 200
            response.release()


def exchanges(provider: DemoProvider) -> int:
    """Code exchanges the provider saw, not counting client checks (codes that cannot exist)."""
    return provider.requests["authorization_code"] - provider.requests["unknown code"]


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


#: Whether this machine has ::1 (a container may not).
HAS_IPV6_LOOPBACK = _has_ipv6_loopback()
needs_ipv6_loopback = pytest.mark.skipif(not HAS_IPV6_LOOPBACK, reason="no ::1 on this machine")


def free_port() -> int:
    """A port to register as a fixed redirect URI port (the product never does this)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LoopThread:
    """An event loop in a thread of its own, for servers that CLI subprocesses reach."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class AsgiThread:
    """An ASGI app served by uvicorn in a thread, on a port bound first: its URL is known
    before the app is made (an MCP server names its own URL in its metadata)."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def start(self, app: Any, what: str) -> None:
        import uvicorn

        config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none")
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._uvicorn.serve(sockets=[self.socket])), daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._uvicorn.started:
            assert time.monotonic() < deadline, f"{what} did not start"
            time.sleep(0.05)

    def close(self) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(10)
        self.socket.close()


class DemoServer:
    """The demo provider served from a thread, reachable by CLI subprocesses."""

    def __init__(self) -> None:
        self.provider = DemoProvider([])
        self._thread = LoopThread()
        self._running = RunningDemo(self.provider)
        self._thread.run(self._running.__aenter__())
        self.base_url = self._running.base_url

    def register(
        self, redirect_uri: str, *, client_id: str = CLIENT_ID, secret: str | None = CLIENT_SECRET
    ) -> DemoClient:
        client = DemoClient(
            client_id=client_id, client_secret=secret, redirect_uris=(redirect_uri,)
        )
        self.provider.clients[client_id] = client
        return client

    def close(self) -> None:
        self._thread.run(self._running.__aexit__())
        self._thread.close()


DEVICE_CODE = "dev-code-kept-secret"
USER_CODE = "WDJB-MJHT"


class DeviceServer:
    """An RFC 8628 server in a thread: metadata, device authorization, a scripted token endpoint.

    ``answers`` are the token endpoint's answers to successive polls (the last
    one repeats): an RFC 8628 §3.5 error code, or ``"tokens"``.
    """

    def __init__(self) -> None:
        self.answers: list[str] = ["tokens"]
        self.interval: int | None = 1
        self.expires_in: int = 600
        self.advertise = True
        self.authorizations: list[tuple[dict[str, str], dict[str, str]]] = []
        self.polls: list[tuple[dict[str, str], dict[str, str]]] = []
        self.polled = threading.Event()
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._metadata)
        app.router.add_post("/device", self._device)
        app.router.add_post("/token", self._token)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner = web.AppRunner(app, handle_signals=False)
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.issuer = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def profile(self, **fields: Any) -> Profile:
        settings: dict[str, Any] = {
            "name": "home",
            "provider": "custom",
            "client_id": "tv-app",
            "client_secret": None,
            "redirect_uri": None,
            "authorize_url": None,
            "token_url": f"{self.issuer}/token",
            "client_auth": ClientAuth.NONE,
            "scope": "read offline_access",
            "device_authorization_url": f"{self.issuer}/device",
        }
        return Profile(**{**settings, **fields})

    def cli_args(self, *extra: str) -> list[str]:
        return [
            "login", "home", "--token-url", f"{self.issuer}/token", "--client-id", "tv-app",
            "--client-auth", "none", "--scope", "read offline_access", *extra,
        ]  # fmt: skip

    async def _metadata(self, request: web.Request) -> web.Response:
        document = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
        }
        if self.advertise:
            document["device_authorization_endpoint"] = f"{self.issuer}/device"
        return web.json_response(document)

    async def _device(self, request: web.Request) -> web.Response:
        self.authorizations.append((dict(request.headers), dict(parse_qsl(await request.text()))))
        answer: dict[str, Any] = {
            "device_code": DEVICE_CODE,
            "user_code": USER_CODE,
            "verification_uri": f"{self.issuer}/activate",
            "verification_uri_complete": f"{self.issuer}/activate?user_code={USER_CODE}",
            "expires_in": self.expires_in,
        }
        if self.interval is not None:
            answer["interval"] = self.interval
        return web.json_response(answer)

    async def _token(self, request: web.Request) -> web.Response:
        self.polls.append((dict(request.headers), dict(parse_qsl(await request.text()))))
        self.polled.set()
        answer = self.answers[min(len(self.polls), len(self.answers)) - 1]
        if answer != "tokens":
            return web.json_response({"error": answer}, status=400)
        return web.json_response(
            {
                "access_token": f"at-{len(self.polls)}",
                "token_type": "Bearer",
                "expires_in": 3600,
                "refresh_token": "rt-1",
                "scope": "read offline_access",
            }
        )


@dataclass
class Browser:
    """The $BROWSER the CLI gets, and what it saw."""

    env: dict[str, str]
    log_path: Path

    @property
    def log(self) -> dict[str, Any]:
        return json.loads(self.log_path.read_text()) if self.log_path.exists() else {}

    def wait_log(self, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.exists():
                try:
                    return self.log
                except ValueError:
                    pass  # being written
            time.sleep(0.05)
        raise AssertionError("the browser never ran")

    def assert_never_ran(self) -> None:
        """No browser ran for this test, and none is still on its way.

        Checked in that order, without waiting: a browser started by the CLI
        carries this log path in its environment from the fork on and writes
        the log before it ends, so it is either alive now (and listed in /proc)
        or its log is there.
        """
        marker = f"TEST_BROWSER_LOG={self.log_path}\0".encode()
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                alive = marker in environ.read_bytes() + b"\0"
            except OSError:
                continue  # ended meanwhile, or not ours
            assert not alive, f"a browser is running: {environ.parent}"
        assert not self.log_path.exists(), "a browser ran"


def browser_for(tmp_path: Path) -> Browser:
    log = tmp_path / "browser.json"
    # The `%s` form of $BROWSER, as webbrowser reads it.
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(TESTS / 'fake_browser.py'))} %s"
    return Browser(env={"BROWSER": command, "TEST_BROWSER_LOG": str(log)}, log_path=log)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        cwd=NEUTRAL_CWD,
    )


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CLI, *args],
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=NEUTRAL_CWD,
    )


def login_args(
    demo: DemoServer, redirect_uri: str, *extra: str, profile: str = "home"
) -> list[str]:
    return [
        "login",
        profile,
        "--provider",
        "honeywell",
        "--base-url",
        demo.base_url,
        "--client-id",
        CLIENT_ID,
        "--redirect-uri",
        redirect_uri,
        *extra,
    ]


def login_home(
    demo: DemoServer, browser: Browser, *extra: str, provider: str = "honeywell"
) -> dict[str, Any]:
    """Log in as profile `home` through the CLI; return the stored record."""
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    args = login_args(demo, redirect, *extra)
    args[args.index("--provider") + 1] = provider
    result = run_cli(*args, env=browser.env)
    assert result.returncode == 0, result.stderr
    return read_record()


def token_path(name: str = "home") -> Path:
    return Path(os.environ["LOOPBACK_LOGIN_CONFIG_DIR"]) / "tokens" / f"{name}.json"


def read_record(name: str = "home") -> dict[str, Any]:
    record: dict[str, Any] = json.loads(token_path(name).read_text())
    return record


def expire(name: str = "home") -> dict[str, Any]:
    """Make the stored access token look expired; return the record as it was."""
    record = read_record(name)
    token_path(name).write_text(json.dumps({**record, "expires_at": time.time() - 1}))
    return record


def type_errors(tmp_path: Path, source: str) -> list[str]:
    """What mypy --strict says of ``source`` (a user's script) against the installed package."""
    import loopback_login

    script = tmp_path / "user.py"
    script.write_text(source)
    # The installed package (scripts/test installs it as users do); an editable
    # install is found through the source tree instead.
    package = Path(loopback_login.__file__).parent.parent
    env = {**os.environ, **({} if "site-packages" in package.parts else {"MYPYPATH": str(package)})}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    # Only the script's own errors: the package is checked with its own settings elsewhere.
    return [
        line
        for line in result.stdout.splitlines()
        if line.startswith("user.py:") and ": error:" in line
    ]


def write_private(path: Path, text: str) -> None:
    """Write a file as the product would: 0600 in 0700 directories."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)
    path.parent.parent.chmod(0o700)
    path.write_text(text)
    path.chmod(0o600)


class FakeTime:
    """A monotonic clock that moves only when slept on: retries that wait without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def policy(self, **limits: Any) -> RetryPolicy:
        """The production policy's limits (or ``limits``), on this clock, with the longest jitter."""
        return RetryPolicy(
            **limits, sleep=self.sleep, jitter=lambda low, high: high, clock=self.clock
        )


# A second local user (uid 65534), for the attacks of another user of the machine.
NOBODY = 65534

_PYTHON = next(
    (p for p in ("/usr/bin/python3", shutil.which("python3") or "") if p and os.access(p, os.X_OK)),
    sys.executable,
)

needs_second_user = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs Linux, root and setpriv to run a second user (CI runs as root)",
)


def as_nobody(code: str, *args: str) -> list[str]:
    """The command line that runs ``code`` as uid 65534 with the system's Python."""
    return [
        "setpriv",
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        "--clear-groups",
        _PYTHON,
        "-I",
        "-c",
        code,
        *args,
    ]


@contextlib.contextmanager
def jupyter_kernel(cwd: Path, env: dict[str, str] | None = None) -> Iterator[tuple[Any, Any]]:
    """A real IPython kernel (its manager and a client), shut down after."""
    import jupyter_client

    manager, client = jupyter_client.manager.start_new_kernel(
        kernel_name="python3", env={**os.environ, **(env or {})}, cwd=str(cwd)
    )
    try:
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
