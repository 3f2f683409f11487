"""Client credentials (RFC 6749 §4.4): a token for the app itself, cached while it is fresh."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import ConfigError, LoginRequired
from .._http.retry import DEFAULT_RETRY
from .._protocol import client_credentials_grant, token_request
from .endpoint import request_token
from .record import is_fresh, make_record
from .token import token_from_record

if TYPE_CHECKING:
    from .._http.retry import RetryPolicy
    from .._profiles.profile import Profile
    from .._store import Store
    from .token import Token


async def fetch_client_credentials(
    profile: Profile, store: Store, *, retry: RetryPolicy = DEFAULT_RETRY
) -> Token:
    """A client-credentials token, reused from the store while it is fresh."""
    path = store.client_credentials_path(profile.name)
    try:
        cached = store.read_record(profile.name, path)
    except LoginRequired:
        cached = None  # unreadable: fetched again
    # The cached token serves the same client, endpoint and requested scope only.
    if (
        cached is not None
        and (cached["client_id"], cached["client_credentials_url"], cached.get("requested_scope"))
        == (profile.client_id, profile.client_credentials_url, profile.scope)
        and is_fresh({**cached, "skew": profile.skew})
    ):
        return token_from_record(cached)
    if profile.client_credentials_url is None:
        raise ConfigError(f"profile {profile.name!r} has no client credentials URL")
    request = token_request(
        profile.client_credentials_url,
        client_credentials_grant(profile.scope),
        client_id=profile.client_id,
        client_secret=profile.client_secret,
        client_auth=profile.client_auth,
    )
    # No refresh token is at stake: any transient failure may be retried.
    token = await request_token(
        request,
        retry,
        retry_statuses=True,
        resend_after_sent=True,
        requested_scope=profile.scope,
    )
    record = make_record(token, profile.record_settings(), requested_scope=profile.scope)
    store.write_record(profile.name, record, path)
    return token
