"""Is the client id and secret right? Asked of the token endpoint while the browser opens.

A wrong client id or secret would otherwise show only after the person has
signed in and consented, when the code is exchanged. So while they look at the
login page, the token endpoint gets an authorization-code request with a code
that cannot exist: RFC 6749 §5.2 has it answer ``invalid_client`` (401) when
the client's credentials are wrong, and ``invalid_grant`` when they are right
(the code is unknown). Only an answer naming ``invalid_client`` ends the login:
some servers answer an unknown code with 401 and ``invalid_grant``. Any other
answer, or none, lets it go on, and the real exchange tells the rest.

There is nothing to check for a public client (no secret; a wrong id shows on
the login page) nor for a client this tool registered (RFC 7591: nobody typed
its id or secret; :mod:`.._profiles.registration` turns the check off for it).
The check's verifier is its own random one, never the login's.
"""

from __future__ import annotations

import secrets

from .._errors import ProviderError, TokenEndpointError
from .._protocol import (
    authorization_code_grant,
    other_basic,
    parse_error_response,
    token_request,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .._profiles.profile import Profile


class ClientRefused(ProviderError):
    """The token endpoint refused the client id or secret (``invalid_client``)."""


def refused(error: TokenEndpointError | None) -> bool:
    """Does this answer to an impossible code say the client's credentials are wrong?"""
    # Not the status alone: some servers answer an unknown code with 401 and invalid_grant.
    return error is not None and (error.error or "").lower() == "invalid_client"


def wanted(profile: Profile) -> bool:
    """Is there a client check to make? Not when turned off, nor for a public client
    (``none``: no secret to be wrong)."""
    from .._protocol import ClientAuth

    return profile.client_check and profile.client_auth is not ClientAuth.NONE


def refusal_message(profile: Profile, *, when: str = "before any sign-in") -> str:
    # Our own words only: the provider's text is not needed to say this.
    fix = (
        "check --client-id, and give the right secret with --client-secret or "
        "$LOOPBACK_LOGIN_CLIENT_SECRET (it replaces the kept one)"
        if profile.client_secret
        else "check --client-id"
    )
    other = other_basic(profile.client_auth, profile.client_id, profile.client_secret)
    if other is not None:
        fix += (
            f"; or, if they are right, the provider may read Basic credentials the other way: "
            f"try --client-auth {other}"
        )
    return (
        f"the provider refused the client id or secret of profile {profile.name!r} "
        "(invalid_client), "
        f"{when}; {fix}"
    )


async def check_client(profile: Profile, redirect_uri: str, code_verifier: str | None) -> None:
    """Raise :class:`ClientRefused` when the token endpoint refuses the client; else return."""
    from .._errors import LoopbackLoginError
    from .._http.client import send

    probe = token_request(
        profile.token_url,
        authorization_code_grant(
            # Made up here and never issued by anyone: it cannot exist.
            f"loopback-login-client-check-{secrets.token_urlsafe(24)}",
            redirect_uri,
            secrets.token_urlsafe(48) if code_verifier is not None else None,
            profile.resource,  # as the real exchange will (RFC 8707 §2.2)
        ),
        client_id=profile.client_id,
        client_secret=profile.client_secret,
        client_auth=profile.client_auth,
    )
    try:
        response = await send(probe, timeout=15.0)
    except LoopbackLoginError:
        return  # unreachable now: the exchange will say so if it still is
    if response.status < 400:
        return  # a provider that takes any code is not ours to judge
    error = parse_error_response(
        response.status, response.reason, response.content_type, response.body
    )
    if refused(error):
        raise ClientRefused(refusal_message(profile))
