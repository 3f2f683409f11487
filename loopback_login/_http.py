"""Sending token endpoint requests: the one place aiohttp's client is used."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from ._errors import NetworkError
from ._protocol import TokenRequest

DEFAULT_TIMEOUT = 30.0
_MAX_BODY = 1 << 20


@dataclass(frozen=True)
class HttpResponse:
    status: int
    reason: str
    content_type: str
    body: bytes


async def post(request: TokenRequest, *, timeout: float = DEFAULT_TIMEOUT) -> HttpResponse:
    """POST ``request`` once. Never retried here: a code is single use (RFC 6749 §4.1.2).

    Proxies come from the environment (``HTTPS_PROXY``, ``NO_PROXY``), as
    users of corporate networks expect.
    """
    host = urlsplit(request.url).netloc
    try:
        async with (
            aiohttp.ClientSession(
                trust_env=True, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as session,
            session.post(
                request.url,
                data=request.body,
                headers=dict(request.headers),
                allow_redirects=False,
            ) as response,
        ):
            body = await response.content.read(_MAX_BODY)
            return HttpResponse(
                status=response.status,
                reason=response.reason or "",
                content_type=response.content_type,
                body=body,
            )
    except TimeoutError:
        raise NetworkError(
            f"the token endpoint at {host} did not answer within {timeout:g} s"
        ) from None
    except aiohttp.ClientError as exc:
        raise NetworkError(
            f"could not talk to the token endpoint at {host}: {_reason(exc)}"
        ) from None


def _reason(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.strerror or "connection failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return type(exc).__name__
