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
        try:
            assert self._runner is not None
            await self._runner.cleanup()
        finally:
            self._listener.close()

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
                f"loopback-login saved the tokens for profile {profile}.{granted}",
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

    async def _handle(self, request: web.Request) -> web.StreamResponse:
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
