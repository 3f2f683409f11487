"""Refresh a stored token (RFC 6749 §6): single flight across processes, rotation persisted.

Under the profile's file lock the record is read again, and a token another
process has just refreshed is used as it is; the rotated refresh token is on
disk before anything else can fail.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .._demo.serving import DEMO_GONE, running_demo_secret
from .._errors import ConfigError, LoginRequired, NetworkError, TokenEndpointError
from .._http.retry import DEFAULT_RETRY
from .._protocol import (
    ClientAuth,
    check_id_token,
    means_login_required,
    refresh_grant,
    token_request,
)
from .endpoint import request_token
from .record import is_fresh, made_by_demo, make_record
from .token import token_from_record

if TYPE_CHECKING:
    from .._http.retry import RetryPolicy
    from .._store import Store
    from .record import TokenRecord
    from .token import Token


def record_client(
    store: Store, name: str, record: TokenRecord, given_secret: str | None
) -> tuple[str, ClientAuth, str | None]:
    """Client id, authentication and secret for the token endpoint, from a token record."""
    client_id, auth_name = record["client_id"], record["client_auth"] or "none"
    if client_id is None or auth_name not in set(ClientAuth):
        raise LoginRequired(
            f"{store.token_path(name)} lacks the client settings; "
            f"run `loopback-login login {name}` again"
        )
    client_auth = ClientAuth(auth_name)
    secret = None
    if made_by_demo(name, record["provider"]):
        # Only the running demo's own secret: never one from a flag, the
        # environment or the config for it.
        secret = running_demo_secret(store, record["token_url"])
        if secret is None:
            raise LoginRequired(f"cannot refresh profile {name!r}: {DEMO_GONE}")
    elif client_auth is not ClientAuth.NONE:
        from .._profiles.secrets import binding, choose, missing_message

        # The kept secret only for the token endpoint and client it was given for; the
        # environment's never for an authorization server an API's metadata chose.
        bound = binding(record["token_url"] or "", client_id)
        secret = choose(store, name, given_secret, bound, env=record["resource"] is None)[0]
        if secret is None:
            raise ConfigError(missing_message(name))
    return client_id, client_auth, secret


async def refresh_stored(
    store: Store,
    name: str,
    *,
    force: bool = False,
    client_secret: str | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    rejected: str | None = None,
) -> Token:
    """The profile's access token, refreshed when it is no longer fresh (or ``force``).

    ``rejected`` is an access token an API has just refused (401): it is
    refreshed unless the stored token is already another one, so that many
    requests refused at once cause one refresh.
    """
    async with store.refresh_lock(name):
        record = store.require_record(name)
        if not force and record["access_token"] != rejected and is_fresh(record):
            # Fresh already, or another process refreshed while we waited for the lock.
            return token_from_record(record)
        refresh_token = record.get("refresh_token")
        if refresh_token is None:
            what = "was refused by the API" if rejected else "has expired"
            raise LoginRequired(
                f"the access token of profile {name!r} {what} and there is no refresh "
                f"token; run `loopback-login login {name}`"
            )
        token_url = record["token_url"]
        if token_url is None:
            raise LoginRequired(
                f"{store.token_path(name)} has no token URL; run `loopback-login login {name}`"
            )
        client_id, client_auth, secret = record_client(store, name, record, client_secret)
        request = token_request(
            token_url,
            refresh_grant(refresh_token, resource=record["resource"]),
            client_id=client_id,
            client_secret=secret,
            client_auth=client_auth,
        )
        try:
            fresh = await request_token(
                request,
                retry,
                retry_statuses=True,
                requested_scope=record["scope"],
                previous_refresh_token=refresh_token,
            )
        except NetworkError as exc:
            if record["provider"] == "demo" and not exc.sent:
                # The demo profile's provider, gone because `loopback-login demo` has ended.
                raise LoginRequired(f"cannot refresh profile {name!r}: {DEMO_GONE}") from None
            raise
        except TokenEndpointError as exc:
            if means_login_required(exc):
                raise LoginRequired(
                    f"the provider no longer accepts the refresh token of profile {name!r} "
                    f"({exc.error}); run `loopback-login login {name}` again"
                ) from None
            raise
        # Persist first, before anything can fail: a rotated refresh token that
        # is not saved strands the user at the next refresh.
        store.write_record(name, make_record(fresh, record))
        if "id_token" in fresh.raw:
            # OIDC Core §12.2: a refreshed id_token keeps its iss and aud.
            check_id_token(
                fresh.raw["id_token"],
                issuer=record["issuer"],
                client_id=client_id,
                nonce=None,
                now=time.time(),
            )
        return fresh
