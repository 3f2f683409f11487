"""The token record on disk: its one shape, its one reader, and the one freshness rule.

A record is what ``tokens/NAME.json`` holds: the tokens, their expiry, and the
profile's non-secret settings, so that ``token``, ``refresh``, ``status`` and
``logout`` work from the file alone. :class:`TokenRecord` is its type (a type
checker catches a misspelled key); :func:`parse_record` is the only way in from
JSON, :func:`make_record` the only way out, and :func:`is_fresh` the only answer
to "can this access token still be used?".

``loopback-login token NAME`` with a valid token goes through this module
alone: stdlib only, no dataclasses, no typing at run time.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # `token` reads through here: typing only for the type checker
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, NotRequired, TypedDict, TypeGuard

    from .token import Token

    class TokenRecord(TypedDict):
        """``tokens/NAME.json`` (and ``tokens/client-credentials/NAME.json``)."""

        access_token: str
        #: Normalized: ``Bearer`` whatever the provider wrote (RFC 6750, Apigee's ``BearerToken``).
        token_type: str
        #: Unix seconds by the local clock at request time plus ``expires_in``; ``None``: unknown.
        expires_at: float | None
        scope: str | None
        obtained_at: float
        refresh_token: NotRequired[str]
        # The profile's non-secret settings (RECORD_SETTINGS).
        profile: str | None
        provider: str | None
        token_url: str | None
        client_credentials_url: str | None
        revocation_url: str | None
        issuer: str | None
        client_id: str | None
        client_auth: str | None
        skew: float | None
        resource: str | None
        api_base_url: str | None
        #: The query parameter carrying the client id on API calls; ``""``: none.
        api_key_param: str | None
        #: How the login got the tokens: ``loopback``, ``paste`` or ``device`` (RFC 8628);
        #: ``None`` for client credentials and records from before it was kept.
        flow: str | None
        #: Client credentials only: the scope asked for, what the cached token is keyed by.
        requested_scope: NotRequired[str | None]
        #: The provider's response as received (it holds the tokens too).
        raw: dict[str, Any]


DEFAULT_SKEW = 60
#: A lifetime longer than this (ten years) is nonsense, and is taken as unknown.
MAX_LIFETIME = 10 * 365 * 86400
#: Expiry times beyond the year 9999 do not fit a calendar (nor C's time_t everywhere).
_LAST_TIME = 253_402_300_799

#: The non-secret profile settings a token record carries, so that ``token``,
#: ``refresh``, ``status`` and ``logout`` work from the token file alone (and the
#: flow the login used, for ``status``).
RECORD_SETTINGS = (
    "profile",
    "provider",
    "token_url",
    "client_credentials_url",
    "revocation_url",
    "issuer",
    "client_id",
    "client_auth",
    "skew",
    "resource",
    "api_base_url",
    "api_key_param",
    # Not a profile setting but the login's: kept across refreshes like them.
    "flow",
)
_OPTIONAL_TEXT = (*(key for key in RECORD_SETTINGS if key != "skew"), "requested_scope", "scope")


def is_token_value(value: object) -> TypeGuard[str]:
    """Can ``value`` go into an ``Authorization`` header as it is?

    RFC 6750 §2.1: a Bearer token is a b64token, visible ASCII without
    spaces. Stricter than that is left to the provider; what is refused here
    is what would split a header (CR, LF) or a shell word (spaces, controls).
    """
    return (
        isinstance(value, str)
        and value.isascii()
        and value.isprintable()
        and " " not in value
        and value != ""
    )


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def usable_expiry(value: object) -> float | None:
    """A stored ``expires_at`` as a time, or ``None`` (unknown) when it is none, or nonsense."""
    if not _is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if 0 <= number <= _LAST_TIME else None  # NaN fails both


def expires_within(expires_at: float | None, skew: float, now: float) -> bool:
    """Does a token that expires at ``expires_at`` expire within ``skew`` seconds of ``now``?

    A token without a known lifetime is taken as valid (RFC 6749 §5.1 makes
    ``expires_in`` optional): the API's 401 says when it is not.
    """
    return expires_at is not None and now + skew >= expires_at


def is_fresh(record: TokenRecord, now: float | None = None) -> bool:
    """The one freshness rule: is the record's access token good for longer than its skew?

    ``token``, :func:`get_token`, the API sessions and the refresh under the
    lock all ask this, and only this.
    """
    return not expires_within(
        record["expires_at"], record_skew(record), time.time() if now is None else now
    )


def record_skew(record: TokenRecord) -> float:
    """The refresh skew a record was saved with."""
    skew = record["skew"]
    return DEFAULT_SKEW if skew is None else skew


def parse_record(data: object) -> TokenRecord:
    """A stored record, checked and normalized; ``ValueError`` says what is wrong with it.

    The only way a record comes in from JSON: every reader gets the same
    checked shape, and nothing downstream tests types again.
    """
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise ValueError("it has no access_token")
    if not is_token_value(access_token):
        raise ValueError("its access_token has spaces or control characters")
    expires_at = data.get("expires_at")
    if expires_at is not None and not _is_number(expires_at):
        raise ValueError("its expires_at is not a number")
    refresh_token = data.get("refresh_token")
    if refresh_token is not None and not isinstance(refresh_token, str):
        raise ValueError("its refresh_token is not a string")
    obtained_at = data.get("obtained_at") or 0.0
    raw = data.get("raw") or {}
    if not _is_number(obtained_at) or not isinstance(raw, dict):
        raise ValueError("its obtained_at or raw field is malformed")
    skew = data.get("skew")
    token_type = data.get("token_type")
    record: dict[str, Any] = {
        "access_token": access_token,
        "token_type": token_type if isinstance(token_type, str) and token_type else "Bearer",
        "expires_at": usable_expiry(expires_at),
        "obtained_at": float(obtained_at),
        "skew": float(skew) if _is_number(skew) else None,
        "raw": raw,
    }
    for key in _OPTIONAL_TEXT:
        value = data.get(key)
        # A setting of the wrong type is no setting: it is filled in again at the next login.
        record[key] = value if isinstance(value, str) else None
    if refresh_token:
        record["refresh_token"] = refresh_token
    if "requested_scope" not in data:
        del record["requested_scope"]
    return record  # type: ignore[return-value]


def make_record(
    token: Token, settings: Mapping[str, Any], *, requested_scope: str | None = None
) -> TokenRecord:
    """The record to store for ``token`` and the profile's non-secret ``settings``.

    ``requested_scope`` marks a client-credentials record (what its cache is keyed by).
    """
    record: dict[str, Any] = {
        "access_token": token.access_token,
        "token_type": token.token_type,
        "expires_at": token.expires_at,
        "scope": token.scope,
        "obtained_at": token.obtained_at,
    }
    if token.refresh_token:
        record["refresh_token"] = token.refresh_token
    record.update((key, settings.get(key)) for key in RECORD_SETTINGS)
    if requested_scope is not None or "requested_scope" in settings:
        record["requested_scope"] = requested_scope
    record["raw"] = dict(token.raw)
    return record  # type: ignore[return-value]


def authorization(token_type: str, access_token: str) -> str:
    """The ``Authorization`` header value (RFC 6750 §2.1)."""
    return f"{token_type} {access_token}"


def jwt_claims(jwt: object) -> dict[str, Any] | None:
    """The claims of a JWT (an ``id_token``), decoded without checking its signature."""
    if not isinstance(jwt, str) or jwt.count(".") != 2:
        return None
    import base64
    import json

    payload = jwt.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return claims if isinstance(claims, dict) else None


#: The profile `loopback-login demo` logs in as.
DEMO_PROFILE = "demo"


def made_by_demo(name: str, provider: str | None) -> bool:
    """Is this the profile `loopback-login demo` made (profile ``demo``, demo provider)?

    Its provider and app lived only while the demo ran: its port may now be
    anyone's, so nothing (no secret, no token) is ever sent there again.
    """
    return name == DEMO_PROFILE and provider == "demo"


def public_record(record: TokenRecord) -> dict[str, Any]:
    """The record as ``token --json`` shows it: without the refresh token, here or in ``raw``."""
    shown = {key: value for key, value in record.items() if key != "refresh_token"}
    shown["raw"] = {key: value for key, value in record["raw"].items() if key != "refresh_token"}
    return shown


def still_valid(record: TokenRecord, now: float | None = None) -> str:
    """How long a provider keeps honouring a record's tokens that were not revoked."""
    now = time.time() if now is None else now
    expires_at = record["expires_at"]
    if expires_at is not None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(expires_at))
        access = (
            f"the access token until {when}"
            if expires_at > now
            else f"the access token expired at {when}"
        )
    else:
        access = "the access token until the provider lets it expire (no lifetime was given)"
    if "refresh_token" in record:
        # RFC 6749 gives refresh tokens no lifetime the client can see.
        return f"{access}, the refresh token until the provider ends the grant"
    return access
