"""The MCP Python SDK's client, authenticated: :class:`McpAuth` (the ``[mcp]`` extra).

>>> async with (
...     httpx2.AsyncClient(auth=loopback_login.McpAuth("weather", url)) as http,
...     mcp.Client(streamable_http_client(url, http_client=http)) as client,
... ):
...     tools = await client.list_tools()

The SDK's transport sends its requests through an ``httpx2`` client; this is
that client's auth. The first 401 starts a login to the server's URL
(``login(profile, resource=url)``: RFC 9728 discovery, a registered or given
client, this project's loopback listener and browser), kept in this project's
store; later requests carry the stored token, refreshed as every adapter
refreshes it, and a 403 ``insufficient_scope`` signs in again for the scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from urllib.parse import urlsplit

try:
    import httpx2
except ImportError:  # pragma: no cover -- tested in a subprocess without the SDK
    raise ImportError(
        "loopback_login.McpAuth needs the MCP SDK: pip install 'loopback-login[mcp]'"
    ) from None

from .._errors import LoginRequired
from .._login.start import LOGIN_TIMEOUT
from .._store import Store, check_profile_name
from .._tokens.token import Token
from .auth import ApiAuth


class McpAuth(httpx2.Auth):
    """An ``httpx2.Auth`` for the MCP SDK's streamable-HTTP client: logs in to ``url`` as
    ``profile`` on the first 401, then authenticates every request to its origin.

    ``client_id`` (and ``client_secret``) name a client registered by hand;
    ``client_metadata_url`` a client metadata document, used where the server
    takes one; without either, a client is registered (RFC 7591). ``timeout`` is
    the login's wait for the browser. Where no one can sign in (no browser can be
    opened and ``$BROWSER`` is unset), a needed login is :class:`LoginRequired`.
    """

    requires_request_body = True

    def __init__(
        self,
        profile: str,
        url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        client_metadata_url: str | None = None,
        scope: str | None = None,
        timeout: float = LOGIN_TIMEOUT,
        config_dir: str | None = None,
    ) -> None:
        self.profile = check_profile_name(profile)
        self.url = url
        parts = urlsplit(url)
        self._origin = (parts.scheme, parts.hostname, parts.port)
        self._settings = {
            key: value
            for key, value in (
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("client_metadata_url", client_metadata_url),
                ("scope", scope),
            )
            if value is not None
        }
        self._timeout = timeout
        self._config_dir = config_dir
        self._client_secret = client_secret
        self._auth: ApiAuth | None = None
        self._logging_in: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"McpAuth({self.profile!r}, {self.url!r})"

    def _owns(self, request: httpx2.Request) -> bool:
        url = request.url
        return (url.scheme, url.host, url.port) == self._origin

    def _core(self) -> ApiAuth | None:
        """The shared core once there is a stored token for the profile."""
        if self._auth is None and Store(self._config_dir).read_record(self.profile) is not None:
            self._auth = ApiAuth(
                self.profile, client_secret=self._client_secret, config_dir=self._config_dir
            )
        return self._auth

    async def _login(self) -> Token:
        """One login at a time: requests refused together wait for the same one."""
        from .._api import login
        from .._login.browser import no_browser_reason

        why = no_browser_reason()
        if why is not None:
            # As for a step-up: only where someone can sign in (a login would wait in vain).
            raise LoginRequired(
                f"the MCP server {self.url} needs a login, and no one can sign in here ({why}); "
                f"run `loopback-login login {self.profile} --resource {self.url}`"
            )
        self._logging_in = self._logging_in or asyncio.Lock()
        async with self._logging_in:
            token = await login(
                self.profile,
                resource=self.url,
                timeout=self._timeout,
                config_dir=self._config_dir,
                **self._settings,  # type: ignore[arg-type]
            )
        self._auth = None
        return token

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response]:
        raise RuntimeError("McpAuth is for httpx2.AsyncClient (the MCP SDK's client is async)")
        yield request  # pragma: no cover -- a generator, as httpx2 wants

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if not self._owns(request):
            yield request
            return
        await request.aread()
        core = self._core()
        token: Token | None = None
        if core is not None:
            try:
                token = await core.token()
            except LoginRequired:
                token = None  # the grant is gone: the 401 below logs in again
        if token is not None:
            request.headers.update(self._headers(token))
        response = yield request
        if response.status_code == 401:
            token = await self._after_401(token)
            request.headers.update(self._headers(token))
            response = yield request
        core = self._core()
        if token is not None and core is not None and response.status_code == 403:
            scope = core.step_up_scope(403, response.headers.get_list("WWW-Authenticate"), token)
            if scope is not None:
                request.headers.update(self._headers(await core.step_up(scope)))
                yield request

    async def _after_401(self, sent: Token | None) -> Token:
        """Refresh the refused token; log in when there is none, or its grant is gone."""
        core = self._core()
        if sent is not None and core is not None:
            try:
                return await core.after_401(sent)
            except LoginRequired:
                pass
        return await self._login()

    def _headers(self, token: Token) -> dict[str, str]:
        core = self._core()
        if core is not None:
            return core.headers(token)
        return {"Authorization": f"{token.token_type} {token.access_token}"}
