"""The loopback receiver: serves the redirect URI until this login's answer arrives.

It serves the sockets :mod:`._bind` already bound, answers only ``GET`` on the
redirect path for the redirect's own Host, ignores anything that is not this
login's answer (wrong state, stray requests, preconnects), and holds the
browser's request open until the token exchange is over, so the page the user
sees tells the truth.

It accepts connections itself, so that it can bound what one client holds
(another local user flooding the port must not starve the browser) and, on
Linux, learn who owns each client socket: only the login's own user and root
may complete or end the login (the authorize URL, state included, is on the
browser launcher's command line, which every local user can read).
"""

from __future__ import annotations

import asyncio
import errno
import html
import logging
import os
import socket
from types import TracebackType

from aiohttp import web

from .._errors import InvalidCallback, LoopbackLoginError
from .._protocol import parse_callback
from .bind import Listener
from .browser import is_wsl
from .peer import Owners

#: Open connections another user (each uid; the unknown alike) may hold at once.
MAX_CONNECTIONS_PER_CLIENT = 64
#: Seconds a connection has to send its request head before it is closed (slowloris).
HEAD_TIMEOUT = 10.0
#: Browsers send every localhost cookie to every port: 64 KiB and more are common.
MAX_HEADER_BYTES = 128 * 1024
_ACCEPT_BATCH = 64
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

# aiohttp's server logger would print tracebacks quoting the request (cookies
# included): a logger of our own, outside the logging tree, that says nothing.
_SILENT = logging.Logger("loopback_login.receiver", logging.CRITICAL + 1)
_SILENT.addHandler(logging.NullHandler())

_SECURITY_HEADERS = {
    # Pages load nothing external and leak nothing onward (RFC 9700 §4.2.4).
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
}


#: The one stylesheet of every page the listener serves: inline, nothing loaded from outside.
_STYLE = (
    ":root{color-scheme:light dark}"
    "body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em}"
    ".card{border:1px solid #8884;border-left:6px solid var(--c);border-radius:8px;"
    "padding:.4em 1.4em 1em}"
    "h1{font-size:1.4em;color:var(--c)}p.hint{opacity:.75}footer{opacity:.6;font-size:.85em}"
    ".ok{--c:#1a7f37}.bad{--c:#b42318}.info{--c:#9a6700}"
)


def render_page(
    title: str, message: str, *, ok: bool, hint: str | None = None, kind: str | None = None
) -> str:
    """A self-contained HTML page; everything echoed is escaped."""
    css_class = kind or ("ok" if ok else "bad")
    hint_html = f"<p class=hint>{html.escape(hint)}</p>" if hint else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'>"
        f"<title>{html.escape(title)} · loopback-login</title><style>{_STYLE}</style>"
        f"</head><body><main class='card {css_class}'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{hint_html}</main>"
        "<footer>loopback-login</footer></body></html>"
    )


def sentence(text: str) -> str:
    """``text`` as a sentence: a capital first, a full stop last."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _response(
    status: int,
    title: str,
    message: str,
    *,
    ok: bool = False,
    hint: str | None = None,
    kind: str | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        text=render_page(title, message, ok=ok, hint=hint, kind=kind),
        content_type="text/html",
        headers=_SECURITY_HEADERS,
    )


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, headers=_SECURITY_HEADERS)


def _descriptors() -> int:
    """How many files this process may open (RLIMIT_NOFILE), bounded."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 512  # Windows: no such limit on sockets
    return 8192 if soft < 0 else min(soft, 8192)


class _Connection:
    """One accepted connection: whose it is, and whether it has sent a request yet."""

    __slots__ = ("allowed", "client", "started", "transport")

    def __init__(self, client: object, allowed: bool) -> None:
        self.client = client  # a uid, or None where the owner is unknown
        self.allowed = allowed
        self.started = False
        self.transport: asyncio.Transport | None = None

    @property
    def closed(self) -> bool:
        return self.transport is not None and self.transport.is_closing()


class Receiver:
    """``async with Receiver(...) as r: code = await r.wait(); ...; r.finish(...)``."""

    def __init__(
        self,
        listener: Listener,
        *,
        state: str,
        issuer: str | None = None,
        issuer_required: bool = False,
        back_to: str = "the terminal",
        retry: str = "run the login again",
    ) -> None:
        self._listener = listener
        #: Where the person follows the login (a terminal or a notebook) and how to retry there.
        self._back_to = back_to
        self._retry = retry
        self._state = state
        self._issuer = issuer
        self._issuer_required = issuer_required
        self._runner: web.AppRunner | None = None
        #: Requests that reached the listener, and why the last callback was ignored:
        #: a timeout can then say whether the browser ever came back.
        self.requests_seen = 0
        self.last_refusal: str | None = None
        loop = asyncio.get_running_loop()
        self._callback: asyncio.Future[str] = loop.create_future()
        self._outcome: asyncio.Future[web.Response] = loop.create_future()
        self._connections: dict[object, _Connection] = {}  # by aiohttp's protocol object
        self._accepting: list[asyncio.Task[None]] = []
        self._serving: set[asyncio.Task[None]] = set()
        self._uids = {0, os.geteuid()} if hasattr(os, "geteuid") else set()
        self._wsl = is_wsl()
        # The login's own user (or, where owners are unknown, everyone) may
        # use half our descriptors: a browser opens several connections and
        # the same user is trusted anyway (it could read the token files).
        self._trusted_limit = max(MAX_CONNECTIONS_PER_CLIENT, _descriptors() // 2)

    async def __aenter__(self) -> Receiver:
        # Probe the kernel's socket lookup now, while the person is on the login
        # page, not when the callback's connection arrives (it makes a connection).
        Owners.prepare()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            logger=_SILENT,
            shutdown_timeout=5.0,
            keepalive_timeout=0,  # one request per connection: nothing idles after it
            max_field_size=MAX_HEADER_BYTES,  # the request line keeps aiohttp's 8 KiB
        )
        await self._runner.setup()
        self._accepting = [
            asyncio.create_task(self._accept(sock)) for sock in self._listener.sockets
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A browser still waiting for its page learns what happened.
        if not self._outcome.done():
            reason = "The login was cancelled, timed out or ended early."
            self._outcome.set_result(
                _response(
                    200,
                    "Login did not finish",
                    reason,
                    hint=f"Return to {self._back_to} to see why, and {self._retry}.",
                )
            )
        if self._callback.done() and not self._callback.cancelled():
            self._callback.exception()  # mark as retrieved
        else:
            self._callback.cancel()
        # The listener stays open: it is :class:`.start.Started`'s to close.
        tasks = [*self._accepting, *self._serving]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert self._runner is not None
        await self._runner.cleanup()

    async def wait(self) -> str:
        """Wait for this login's callback; return the code or raise the provider's error."""
        return await asyncio.shield(self._callback)

    def finish(
        self, error: LoopbackLoginError | None, *, profile: str, scope: str | None = None
    ) -> None:
        """Tell the waiting browser how the token exchange went."""
        if self._outcome.done():
            return
        if error is None:
            granted = f" Granted: {scope}." if scope else ""
            page = _response(
                200,
                "You are logged in",
                f"loopback-login has the tokens for profile {profile}.{granted}",
                ok=True,
                hint="You can close this tab.",
            )
        else:
            page = _response(
                200,
                "Login failed",
                sentence(str(error)),
                hint=f"Return to {self._back_to} for details, and {self._retry}.",
            )
        self._outcome.set_result(page)

    # --- connections ------------------------------------------------------

    async def _accept(self, sock: socket.socket) -> None:
        """Accept connections for as long as the login runs; never log, never give up."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                # Out of descriptors: wait for some to be released, quietly
                # (asyncio's own accept loop logs a traceback each time).
                await asyncio.sleep(0.05 if exc.errno in _OUT_OF_RESOURCES else 0)
                continue
            batch = [conn]
            while len(batch) < _ACCEPT_BATCH:
                try:
                    conn, _ = sock.accept()
                except OSError:  # BlockingIOError: none waiting
                    break
                batch.append(conn)
            owners = Owners()  # per batch: the /proc fallback lists every socket at once
            for conn in batch:
                self._admit(conn, owners)

    def _admit(self, conn: socket.socket, owners: Owners) -> None:
        try:
            ours, peer = conn.getsockname(), conn.getpeername()
        except OSError:  # already gone
            conn.close()
            return
        owner = owners.of(ours, peer)
        if not owners.known:
            # No socket table (macOS, Windows, no /proc): the owner is unknown
            # and everyone is let in.
            client, allowed = None, True
        else:
            if owner is not None and owner.inode != 0:
                client, allowed = owner.uid, owner.uid in self._uids
            else:
                # Gone already (inode 0: closed, its uid no longer shown), or
                # not in this kernel's table: under WSL's mirrored networking
                # the browser's socket is Windows'; anywhere else it is refused.
                client, allowed = None, owner is None and self._wsl
        for key in [key for key, held in self._connections.items() if held.closed]:
            del self._connections[key]
        held = sum(1 for c in self._connections.values() if c.client == client)
        if held >= (self._trusted_limit if allowed else MAX_CONNECTIONS_PER_CLIENT):
            conn.close()
            return
        key = object()  # counted from now on; re-keyed by its protocol once it has one
        self._connections[key] = connection = _Connection(client, allowed)
        task = asyncio.get_running_loop().create_task(self._serve(conn, key, connection))
        self._serving.add(task)  # asyncio holds tasks weakly
        task.add_done_callback(self._serving.discard)

    async def _serve(self, conn: socket.socket, key: object, connection: _Connection) -> None:
        assert self._runner is not None and self._runner.server is not None
        server = self._runner.server

        def protocol() -> asyncio.BaseProtocol:
            handler = server()
            # Registered before any byte is read, so the handler always finds it.
            self._connections[handler] = self._connections.pop(key)
            return handler

        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.connect_accepted_socket(protocol, conn)
        except BaseException as exc:  # gone already, or the login is over (cancelled)
            conn.close()
            for handler, held in list(self._connections.items()):
                if held is connection:
                    del self._connections[handler]
            if isinstance(exc, (OSError, RuntimeError)):
                return
            raise
        connection.transport = transport
        loop.call_later(HEAD_TIMEOUT, self._expire, connection)

    @staticmethod
    def _expire(connection: _Connection) -> None:
        if not connection.started and connection.transport is not None:
            connection.transport.abort()

    # --- requests ---------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        response = await self._answer(request)
        # One request per connection: an idle keep-alive connection is one less for the flood.
        response.force_close()
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.requests_seen += 1
        connection = self._connections.get(request.protocol)
        if connection is not None:
            connection.started = True
        if connection is None or not connection.allowed:
            # Another local user, who may have read the state from the
            # browser's command line: neither completes nor ends this login.
            return _response(
                403,
                "Not your login",
                "This login belongs to another user of this computer.",
            )
        # DNS rebinding: a web page on another name that resolves here must not reach us.
        if request.headers.get("Host", "").lower() not in self._listener.allowed_hosts:
            return _plain(400, "400: wrong Host")
        if request.rel_url.raw_path != self._listener.target.path:
            return _response(
                404,
                "Not found",
                "This address is not part of the login: loopback-login answers only its "
                "redirect path here.",
                kind="info",
            )
        if request.method != "GET":  # HEAD included: a probe is never a callback
            return web.Response(status=405, headers={**_SECURITY_HEADERS, "Allow": "GET"})
        if self._callback.done():
            return _response(
                400,
                "This login is already over",
                "This sign-in link was used already.",
                hint=f"Return to {self._back_to}.",
                kind="info",
            )
        try:
            code = parse_callback(
                request.rel_url.raw_query_string,
                expected_state=self._state,
                expected_issuer=self._issuer,
                issuer_required=self._issuer_required,
            )
        except InvalidCallback as exc:
            # A stale tab or a forged request: ignore it, keep waiting.
            self.last_refusal = str(exc)
            return _response(
                400,
                "Not this login's answer",
                sentence(str(exc)),
                hint="loopback-login is still waiting for the current login: finish it in the "
                "tab it opened, or close this one.",
                kind="info",
            )
        except LoopbackLoginError as exc:
            self._callback.set_exception(exc)
            return _response(
                200,
                "Login failed",
                sentence(str(exc)),
                hint=f"Return to {self._back_to}, and {self._retry}.",
            )
        self._callback.set_result(code)
        return await asyncio.shield(self._outcome)
