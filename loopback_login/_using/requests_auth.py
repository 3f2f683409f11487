"""Calling the API with requests: :class:`RequestsAuth` (the ``[requests]`` extra).

>>> requests.get("https://api.honeywellhome.com/v2/locations",
...              auth=loopback_login.RequestsAuth("home")).json()
"""

from __future__ import annotations

from typing import Any

try:
    import requests
    from requests.auth import AuthBase
except ImportError:  # pragma: no cover -- tested in a subprocess without requests
    raise ImportError(
        "loopback_login.RequestsAuth needs requests: pip install 'loopback-login[requests]'"
    ) from None

from .._tokens.token import Token
from .auth import ApiAuth


class RequestsAuth(AuthBase):
    """A ``requests`` auth that authenticates requests to ``profile``'s API.

    Requests to the API base's origin get the stored token (refreshed when it
    expires within the skew) and the provider's extras; a 401 refreshes once
    and retries once; requests elsewhere, and redirects elsewhere (requests
    drops the header), go without the token.
    """

    def __init__(
        self, profile: str, *, client_secret: str | None = None, config_dir: str | None = None
    ) -> None:
        self.auth = ApiAuth(profile, client_secret=client_secret, config_dir=config_dir)

    def __repr__(self) -> str:
        return f"RequestsAuth({self.auth.profile!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if request.url is None or not self.auth.target.owns_url(request.url):
            return request
        token = self.auth.token_sync()
        self._authorize(request, token)
        request.register_hook("response", self._on_response)  # type: ignore[no-untyped-call, unused-ignore]
        return request

    def _authorize(self, request: requests.PreparedRequest, token: Token) -> None:
        request.headers.update(self.auth.headers(token))
        assert request.url is not None
        request.url = self.auth.target.with_query(request.url)
        # The token this request carries, for the 401 handler.
        request._loopback_login_token = token  # type: ignore[attr-defined]

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        request = response.request
        sent: Token | None = getattr(request, "_loopback_login_token", None)
        # A redirect elsewhere does not carry our token: its 401 is not ours to answer.
        authorized = (
            sent is not None
            and request.url is not None
            and self.auth.target.owns_url(request.url)
            and request.headers.get("Authorization") == self.auth.headers(sent)["Authorization"]
        )
        if sent is None or not authorized:
            return response
        refresh = self.auth.should_retry(
            response.status_code,
            authorized=True,
            retried=False,
            body=response.content if response.status_code == 401 else b"",  # token or API key?
        )
        scope = (
            None
            if refresh
            else self.auth.step_up_scope(response.status_code, _challenges(response), sent)
        )
        if not refresh and scope is None:
            return response
        response.content  # noqa: B018 -- read it, so the connection can be reused
        response.close()
        token = self.auth.after_401_sync(sent) if scope is None else self.auth.step_up_sync(scope)
        retry = request.copy()
        self._authorize(retry, token)
        # The retry's own 401 or 403 is final: this hook is not among its hooks (the caller's stay).
        retry.hooks = {
            "response": [hook for hook in request.hooks["response"] if hook != self._on_response]
        }
        assert response.connection is not None
        answer: requests.Response = response.connection.send(retry, **kwargs)
        answer.history.append(response)
        answer.request = retry
        return answer


def _challenges(response: requests.Response) -> list[str]:
    """The ``WWW-Authenticate`` values (requests joins repeated headers with ", ")."""
    value = response.headers.get("WWW-Authenticate")
    return [value] if value else []
