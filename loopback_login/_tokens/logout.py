"""Log out: revoke the tokens where the provider can (RFC 7009), then delete them here."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, NamedTuple

from .._demo.serving import running_demo_secret
from .._errors import ConfigError, LoginRequired, ProviderError
from .._protocol import revocation_request
from .endpoint import revoke
from .record import made_by_demo, still_valid
from .refresh import record_client

if TYPE_CHECKING:
    from .._protocol import TokenRequest
    from .._store import Store
    from .record import TokenRecord


class LoggedOut(NamedTuple):
    """What ``logout`` did with one token file."""

    path: str
    #: "login" (``tokens/NAME.json``) or "client-credentials".
    kind: str
    revoked: bool
    #: Why the tokens were not revoked, when they were not.
    not_revoked: str | None
    #: Until when the provider still honours them, when they were not revoked.
    still_valid: str | None


class _Plan(NamedTuple):
    kind: str
    path: str
    record: TokenRecord | None
    request: TokenRequest | None
    why_not: str | None


async def logout(
    store: Store, name: str, *, client_secret: str | None = None, revoke_tokens: bool = True
) -> list[LoggedOut]:
    """Revoke the profile's tokens where the provider can, then delete them here.

    Both kinds: the login's tokens and the client-credentials token. Returns
    one :class:`LoggedOut` per file deleted (empty when nothing was stored).
    When the provider refuses to revoke, the tokens are deleted all the same
    and the error says they stay valid there; when revoking cannot even be
    tried (no client secret), nothing is deleted and the error says how to proceed.
    """
    # Every request is built before anything is sent or deleted: a missing
    # secret stops the logout with all the tokens still in place.
    plans: list[_Plan] = []
    for kind, path in (
        ("login", store.token_path(name)),
        ("client-credentials", store.client_credentials_path(name)),
    ):
        try:
            record = store.read_record(name, path)
        except LoginRequired:
            plans.append(_Plan(kind, path, None, None, "the file was unreadable"))  # still deleted
            continue
        if record is not None:
            request, why_not = await _plan(store, name, record, client_secret, revoke_tokens)
            plans.append(_Plan(kind, path, record, request, why_not))
    done: list[LoggedOut] = []
    failures: list[str] = []
    for kind, path, record, request, why_not in plans:
        if request is not None:
            try:
                await revoke(request)
            except ProviderError as exc:
                request, why_not = None, f"the provider refused: {exc}"
                failures.append(f"{exc}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        valid = (
            None
            if request is not None or record is None or made_by_demo(name, record["provider"])
            else still_valid(record)
        )
        done.append(LoggedOut(path, kind, request is not None, why_not, valid))
    if failures:
        unrevoked = "; ".join(
            f"{entry.path} stays valid at the provider: {entry.still_valid}"
            for entry in done
            if not entry.revoked and entry.still_valid
        )
        raise ProviderError(
            f"deleted the tokens of profile {name!r} here, but revoking them at the provider "
            f"failed: {failures[0]}; {unrevoked}"
        )
    return done


async def _plan(
    store: Store,
    name: str,
    record: TokenRecord,
    client_secret: str | None,
    revoke_tokens: bool,
) -> tuple[TokenRequest | None, str | None]:
    """The revocation request for one record, or why there is none."""
    if not revoke_tokens:
        return None, "--local-only"
    if made_by_demo(name, record["provider"]) and (
        running_demo_secret(store, record["token_url"]) is None
    ):
        # Its tokens lived in the demo provider's memory and died with it;
        # its port may be anyone's now.
        return None, "the demo provider that issued them has stopped, and they with it"
    url = await _revocation_url(record)
    if url is None:
        return None, "no revocation endpoint is known for this provider"
    # RFC 7009 §2.1: revoke the refresh token (which ends the grant), else the access token.
    token, hint = (
        (record["refresh_token"], "refresh_token")
        if "refresh_token" in record
        else (record["access_token"], "access_token")
    )
    try:
        client_id, client_auth, secret = record_client(store, name, record, client_secret)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc}; or log out with --local-only to delete the tokens without revoking"
        ) from None
    request = revocation_request(
        url, token, hint, client_id=client_id, client_secret=secret, client_auth=client_auth
    )
    return request, None


async def _revocation_url(record: TokenRecord) -> str | None:
    """The record's revocation endpoint; for a discovered provider, read again if it had none.

    A token saved before the provider's metadata listed the endpoint (or by a
    version that read only one of its two documents) can still be revoked.
    """
    if record["revocation_url"] is not None or record["issuer"] is None:
        return record["revocation_url"]
    from .._profiles.discovery import discover

    try:
        return (await discover(record["issuer"])).revocation_endpoint
    except ProviderError:
        return None
