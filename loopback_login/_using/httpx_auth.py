"""Calling the API with httpx: :class:`HttpxAuth` (the ``[httpx]`` extra).

>>> with httpx.Client(auth=loopback_login.HttpxAuth("home")) as client:
...     client.get("https://api.honeywellhome.com/v2/locations").json()
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

try:
    import httpx
except ImportError:  # pragma: no cover -- tested in a subprocess without httpx
    raise ImportError(
        "loopback_login.HttpxAuth needs httpx: pip install 'loopback-login[httpx]'"
    ) from None

from .._tokens.token import Token
from .auth import ApiAuth


class HttpxAuth(httpx.Auth):
    """An ``httpx.Auth`` for ``httpx.Client`` and ``httpx.AsyncClient`` that authenticates
    requests to ``profile``'s API.

    Requests to the API base's origin get the stored token (refreshed when it
    expires within the skew) and the provider's extras; a 401 refreshes once
    and retries once; a 403 ``insufficient_scope`` signs in again for the
    scope it names where a person can (else :class:`LoginRequired`) and retries
    once; requests elsewhere, and redirects elsewhere (httpx drops
    the header), go without the token.
    """

    # The body is read first, so that the retry after a 401 can send it again.
    requires_request_body = True

    def __init__(
        self, profile: str, *, client_secret: str | None = None, config_dir: str | None = None
    ) -> None:
        self.auth = ApiAuth(profile, client_secret=client_secret, config_dir=config_dir)

    def __repr__(self) -> str:
        return f"HttpxAuth({self.auth.profile!r})"

    def _owns(self, request: httpx.Request) -> bool:
        url = request.url
        return self.auth.target.owns(url.scheme, url.host, url.port)

    def _authorize(self, request: httpx.Request, token: Token) -> None:
        request.headers.update(self.auth.headers(token))
        if self.auth.target.query:
            request.url = request.url.copy_merge_params(dict(self.auth.target.query))

    def _retries(self, response: httpx.Response) -> bool:
        # The response may come from a redirect elsewhere: no token went there.
        return self._owns(response.request) and self.auth.should_retry(
            response.status_code,
            authorized=True,
            retried=False,
            body=response.content if response.status_code == 401 else b"",
        )

    def _step_up(self, response: httpx.Response, sent: Token) -> str | None:
        """The scope a 403 ``insufficient_scope`` asks to sign in again for, if any."""
        if response.status_code != 403 or not self._owns(response.request):
            return None
        return self.auth.step_up_scope(403, response.headers.get_list("WWW-Authenticate"), sent)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        if not self._owns(request):
            yield request
            return
        request.read()  # as httpx.Auth does for requires_request_body
        token = self.auth.token_sync()
        self._authorize(request, token)
        response = yield request
        if response.status_code == 401:
            response.read()  # does it name the token or the API key?
        if self._retries(response):
            # httpx reads the refused response itself: it goes into the history.
            token = self.auth.after_401_sync(token)
            self._authorize(request, token)
            response = yield request
        scope = self._step_up(response, token)
        if scope is not None:
            self._authorize(request, self.auth.step_up_sync(scope))
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self._owns(request):
            yield request
            return
        await request.aread()
        token = await self.auth.token()
        self._authorize(request, token)
        response = yield request
        if response.status_code == 401:
            await response.aread()
        if self._retries(response):
            token = await self.auth.after_401(token)
            self._authorize(request, token)
            response = yield request
        scope = self._step_up(response, token)
        if scope is not None:
            self._authorize(request, await self.auth.step_up(scope))
            yield request
