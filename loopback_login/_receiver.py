"""The loopback receiver: serves the redirect URI until this login's answer arrives.

It serves the sockets :mod:`._bind` already bound, answers only ``GET`` on the
redirect path for the redirect's own Host, ignores anything that is not this
login's answer (wrong state, stray requests, preconnects), and holds the
browser's request open until the token exchange is over, so the page the user
sees tells the truth.
"""

from __future__ import annotations

import asyncio
import html
from types import TracebackType

from aiohttp import web

from ._bind import Listener
from ._errors import InvalidCallback, LoopbackLoginError
from ._protocol import parse_callback

_SECURITY_HEADERS = {
    # Pages load nothing external and leak nothing onward (RFC 9700 §4.2.4).
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
}


def render_page(title: str, message: str, *, ok: bool) -> str:
    """A self-contained HTML page; everything echoed is escaped."""
    colour = "#1a7f37" if ok else "#b42318"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em}"
        f"h1{{font-size:1.4em;color:{colour}}}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
        "<p>loopback-login</p></body></html>"
    )


def _response(status: int, title: str, message: str, *, ok: bool = False) -> web.Response:
    return web.Response(
        status=status,
        text=render_page(title, message, ok=ok),
        content_type="text/html",
        headers=_SECURITY_HEADERS,
    )


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, headers=_SECURITY_HEADERS)


class Receiver:
    """``async with Receiver(...) as r: code = await r.wait(); ...; r.finish(...)``."""

    def __init__(
        self,
        listener: Listener,
        *,
        state: str,
        issuer: str | None = None,
        issuer_required: bool = False,
    ) -> None:
        self._listener = listener
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

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=5.0
        )
        await self._runner.setup()
        try:
            for sock in self._listener.sockets:
                await web.SockSite(self._runner, sock).start()
        except BaseException:
            await self._runner.cleanup()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A browser still waiting for its page learns what happened.
        if not self._outcome.done():
            reason = "The login was cancelled or timed out. Return to the terminal."
            self._outcome.set_result(_response(200, "Login did not finish", reason))
        if self._callback.done() and not self._callback.cancelled():
            self._callback.exception()  # mark as retrieved
        else:
            self._callback.cancel()
        try:
            assert self._runner is not None
            await self._runner.cleanup()
        finally:
            self._listener.close()

    async def wait(self) -> str:
        """Wait for this login's callback; return the code or raise the provider's error."""
        return await asyncio.shield(self._callback)

    def finish(self, error: LoopbackLoginError | None, *, profile: str) -> None:
        """Tell the waiting browser how the token exchange went."""
        if self._outcome.done():
            return
        if error is None:
            page = _response(
                200,
                "You are logged in",
                f"loopback-login saved the tokens for profile {profile}. You can close this tab.",
                ok=True,
            )
        else:
            page = _response(200, "Login failed", f"{error}. Return to the terminal for details.")
        self._outcome.set_result(page)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests_seen += 1
        # DNS rebinding: a web page on another name that resolves here must not reach us.
        if request.headers.get("Host", "").lower() not in self._listener.allowed_hosts:
            return _plain(400, "400: wrong Host")
        if request.rel_url.raw_path != self._listener.target.path:
            return _plain(404, "404: Not Found")
        if request.method != "GET":  # HEAD included: a probe is never a callback
            return web.Response(status=405, headers={**_SECURITY_HEADERS, "Allow": "GET"})
        if self._callback.done():
            return _response(
                400,
                "This login is already over",
                "This sign-in link was used already. Return to the terminal.",
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
                f"{exc}. loopback-login is still waiting for the current login.",
            )
        except LoopbackLoginError as exc:
            self._callback.set_exception(exc)
            return _response(200, "Login failed", f"{exc}. Return to the terminal.")
        self._callback.set_result(code)
        return await asyncio.shield(self._outcome)
