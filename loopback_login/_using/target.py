"""Where the token may go, and what an API request carries: pure, shared by every adapter.

``loopback-login api``, :func:`session`, :func:`middleware`, :class:`HttpxAuth`
and :class:`RequestsAuth` all ask the same two questions, answered here once:

- what to add to a request: ``Authorization: Bearer ...`` (RFC 6750 §2.1) and the
  provider's extras (Honeywell's ``apikey=<client id>`` query parameter), but
  only for a request to the API base's origin (RFC 6454): the token goes nowhere else;
- what to do on a 401: refresh once and send the request once more (RFC 6750
  §3.1: ``invalid_token`` means expired or revoked), never a second time.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._errors import ConfigError
from .._profiles.providers import preset_api_key_param
from .._tokens.record import authorization

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    """An RFC 6454 origin: scheme, host (lower case) and port (the default one filled in)."""
    scheme = scheme.lower()
    return scheme, host.lower().strip("[]"), port or _DEFAULT_PORTS.get(scheme, 0)


class ApiTarget(NamedTuple):
    """A profile's API: its base URL and the extras each request to it carries."""

    base_url: str
    origin: tuple[str, str, int]
    #: Query parameters added to every request to the API (Honeywell: ``apikey``).
    query: tuple[tuple[str, str], ...] = ()

    @property
    def key_param(self) -> str | None:
        """The name of the query parameter carrying the API key, if the profile sends one."""
        return self.query[0][0] if self.query else None

    def owns(self, scheme: str, host: str, port: int | None) -> bool:
        """Is this (scheme, host, port) the API base's origin, the only one that sees the token?"""
        # The common case first: a client library's URL is already normalized.
        return (scheme, host, port) == self.origin or origin_of(scheme, host, port) == self.origin

    def owns_url(self, url: str) -> bool:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            return False
        return self.owns(parts.scheme, parts.hostname or "", port)

    def headers(self, token_type: str, access_token: str) -> dict[str, str]:
        """The headers to add to a request to the API."""
        return {"Authorization": authorization(token_type, access_token)}

    def url_for(self, path_or_url: str) -> str:
        """A path (relative to the base URL) or a full URL of the API's origin.

        A full URL of another origin is refused: the token would go there.
        """
        if "://" in path_or_url.split("?", 1)[0]:
            if not self.owns_url(path_or_url):
                raise ConfigError(
                    f"{path_or_url!r} is not on the API's origin ({self.base_url}); "
                    "the token is sent only there"
                )
            return path_or_url
        return self.base_url.rstrip("/") + "/" + path_or_url.lstrip("/")

    def with_query(self, url: str, fields: Mapping[str, str] | None = None) -> str:
        """``url`` with ``fields`` and the provider's extras in its query (they win)."""
        extra = [*(fields or {}).items(), *self.query]
        if not extra:
            return url
        parts = urlsplit(url)
        replaced = {key for key, _ in extra}
        query = [
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in replaced
        ]
        return urlunsplit(parts._replace(query=urlencode([*query, *extra])))


def should_retry(
    status: int, *, authorized: bool, retried: bool, body: bytes = b"", key_param: str | None = None
) -> bool:
    """After a response: refresh the token and send the request again?

    Only a 401 to a request that carried our token, and only once: a second
    401 means the grant itself is gone (log in again), and looping would hammer
    the token endpoint. Nor when the answer names the API key (:func:`names_api_key`):
    a new token cannot fix a wrong key, and a refresh would be spent for nothing.
    """
    return status == 401 and authorized and not retried and not names_api_key(body, key_param)


def names_api_key(body: bytes, key_param: str | None = None) -> bool:
    """Does an API's error answer say the API key is wrong or missing, rather than the token?

    Apigee (Honeywell) answers a wrong ``apikey`` with 401 and ``"Invalid ApiKey"``
    (fault ``oauth.v2.InvalidApiKey``; a missing one ``FailedToResolveAPIKey``), the
    same status as an expired token: only the text tells them apart. Letters and
    digits only are compared, so ``Invalid API key`` and ``invalid_api_key`` count too.
    """
    if not body:
        return False
    text = _letters(body[:4096].decode("utf-8", "replace"))
    keys = {"apikey", _letters(key_param or "") or "apikey"}
    return any(
        before + key in text or key + after in text
        for key in keys
        for before in _BEFORE_KEY
        for after in _AFTER_KEY
    )


_BEFORE_KEY = ("invalid", "missing", "wrong", "unknown", "bad", "failedtoresolve")
_AFTER_KEY = ("invalid", "isinvalid", "notvalid", "missing", "ismissing", "required")


def _letters(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def step_up_scope(
    status: int, challenges: list[str], granted: str | None, last_asked: str | None
) -> str | None:
    """After a response: the scope to sign in again for, or ``None`` (the answer stands).

    A 403 whose Bearer challenge says ``insufficient_scope`` and names a scope
    (RFC 6750 §3.1) asks for a new authorization with the union of the granted
    and the required scopes (MCP 2025-11-25, scope challenge handling). Bounded:
    not when the token already has every scope named (signing in again cannot
    help), nor for the scope asked for last.
    """
    if status != 403 or not challenges:
        return None
    from .._profiles.resource import insufficient_scope

    required = insufficient_scope(challenges)
    if required is None:
        return None
    have = (granted or "").split()
    missing = [scope for scope in required.split() if scope not in have]
    wanted = " ".join([*have, *dict.fromkeys(missing)])
    if not missing or wanted == last_asked:
        return None
    return wanted


def target_from_record(name: str, record: Mapping[str, Any], path: str) -> ApiTarget:
    """The API of a stored profile: its token record's ``api_base_url``, provider and client id."""
    base_url = record.get("api_base_url")
    if not isinstance(base_url, str) or not base_url:
        raise ConfigError(
            f"profile {name!r} has no API base URL ({path}); set it with "
            f"`loopback-login config {name} api_base_url URL`"
        )
    parts = urlsplit(base_url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(
            f"the API base URL {base_url!r} of profile {name!r} is not an http(s) URL"
        )
    query: tuple[tuple[str, str], ...] = ()
    param, client_id = record.get("api_key_param"), record.get("client_id")
    if param is None:  # a record from before the setting: the preset's
        param = preset_api_key_param(record.get("provider"))
    if param and isinstance(client_id, str):
        query = ((param, client_id),)
    return ApiTarget(base_url, origin_of(parts.scheme, parts.hostname, port), query)
