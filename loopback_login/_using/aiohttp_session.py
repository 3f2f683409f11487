"""Calling the API with aiohttp: :func:`session` and :func:`middleware`.

>>> async with loopback_login.session("home") as api:
...     async with api.get("v2/locations") as response:
...         locations = await response.json()
"""

from __future__ import annotations

from typing import Any

import aiohttp
from yarl import URL

from .._tokens.token import Token
from .auth import ApiAuth


class _ApiMiddleware:
    """An aiohttp client middleware (aiohttp 3.12+) that authenticates requests to the API.

    aiohttp runs it for every request of a redirect chain, so a hop to another
    origin goes without the token (aiohttp drops our header from it, and this
    adds nothing there).
    """

    def __init__(self, auth: ApiAuth) -> None:
        self.auth = auth
        self._query = auth.target.query
        # Request URL -> the same with the provider's extras: a session calls few URLs,
        # and building a URL costs more than the rest of this middleware's work.
        self._with_query: dict[URL, URL] = {}

    def __repr__(self) -> str:
        return f"loopback_login.middleware({self.auth.profile!r})"

    async def __call__(
        self,
        request: aiohttp.ClientRequest,
        handler: aiohttp.ClientHandlerType,
    ) -> aiohttp.ClientResponse:
        url = request.url
        if not self.auth.target.owns(url.scheme, url.host or "", url.port):
            return await handler(request)
        token = await self.auth.token()
        self._authorize(request, token)
        response = await handler(request)
        body = await response.read() if response.status == 401 else b""  # token or API key?
        refresh = self.auth.should_retry(response.status, authorized=True, retried=False, body=body)
        scope = (
            None
            if refresh
            else self.auth.step_up_scope(
                response.status, response.headers.getall("WWW-Authenticate", []), token
            )
        )
        if not refresh and scope is None:
            return response
        response.release()
        token = await (self.auth.after_401(token) if scope is None else self.auth.step_up(scope))
        self._authorize(request, token)
        return await handler(request)

    def _authorize(self, request: aiohttp.ClientRequest, token: Token) -> None:
        request.headers.update(self.auth.headers(token))
        if self._query:
            url = request.url
            extended = self._with_query.get(url)
            if extended is None:
                if len(self._with_query) >= 256:
                    self._with_query.clear()
                extended = self._with_query[url] = url.update_query(self._query)
            request.url = extended


def middleware(
    profile: str, *, client_secret: str | None = None, config_dir: str | None = None
) -> aiohttp.ClientMiddlewareType:
    """An aiohttp client middleware that authenticates requests to ``profile``'s API.

    For sessions you already have: ``aiohttp.ClientSession(middlewares=[middleware("home")])``.
    Requests to the API base's origin get the stored token (refreshed when it
    expires within the skew) and the provider's extras; a 401 refreshes once and
    retries once; a 403 ``insufficient_scope`` signs in again for the scope it
    names where a person can (else :class:`LoginRequired`) and retries once;
    requests elsewhere go out untouched.
    """
    return _ApiMiddleware(ApiAuth(profile, client_secret=client_secret, config_dir=config_dir))


def session(
    profile: str,
    *,
    client_secret: str | None = None,
    config_dir: str | None = None,
    **kwargs: Any,
) -> aiohttp.ClientSession:
    """An ``aiohttp.ClientSession`` on ``profile``'s API base URL that authenticates every request.

    ``kwargs`` go to ``aiohttp.ClientSession`` (their ``middlewares`` run after ours).

        >>> async with loopback_login.session("home") as api:
        ...     async with api.get("v2/locations") as response: ...
    """
    auth = ApiAuth(profile, client_secret=client_secret, config_dir=config_dir)
    return authenticated_session(auth, **kwargs)


def authenticated_session(auth: ApiAuth, **kwargs: Any) -> aiohttp.ClientSession:
    """:func:`session` for an :class:`ApiAuth` in hand (``loopback-login api`` has one)."""
    base_url = auth.target.base_url
    # aiohttp wants a base URL that ends in "/"; relative paths are joined to it.
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    middlewares = (_ApiMiddleware(auth), *kwargs.pop("middlewares", ()))
    return aiohttp.ClientSession(base_url=base_url, middlewares=middlewares, **kwargs)
