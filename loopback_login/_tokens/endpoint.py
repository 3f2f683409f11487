"""The token endpoint and the revocation endpoint: one request each, sent and read.

Every grant (the code exchange, a refresh, client credentials) goes through
:func:`request_token`; the retry policy says what may be sent again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .._protocol import parse_error_response, parse_token_response

if TYPE_CHECKING:
    from .._http.retry import RetryPolicy
    from .._protocol import TokenRequest
    from .token import Token


async def request_token(
    request: TokenRequest,
    policy: RetryPolicy,
    *,
    retry_statuses: bool = False,
    resend_after_sent: bool = False,
    requested_scope: str | None = None,
    previous_refresh_token: str | None = None,
) -> Token:
    """Send a token request and normalize the answer (RFC 6749 §5.1, Apigee's quirks)."""
    from .._http.client import send

    now = time.time()  # before sending: expires_at errs early, never late
    response = await send(
        request, policy=policy, retry_statuses=retry_statuses, resend_after_sent=resend_after_sent
    )
    return parse_token_response(
        response.status,
        response.reason,
        response.content_type,
        response.body,
        now=now,
        requested_scope=requested_scope,
        previous_refresh_token=previous_refresh_token,
    )


async def revoke(request: TokenRequest) -> None:
    """Send an RFC 7009 revocation request; the provider's error when it refuses."""
    from .._http.client import send
    from .._http.retry import RetryPolicy

    response = await send(
        request, policy=RetryPolicy(), retry_statuses=True, resend_after_sent=True
    )
    # RFC 7009 §2.2: 200 whether or not the token was still valid.
    if response.status != 200:
        raise parse_error_response(
            response.status,
            response.reason,
            response.content_type,
            response.body,
            endpoint="revocation endpoint",
        )
