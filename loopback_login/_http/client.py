"""Sending token endpoint requests: the one place aiohttp's client is used."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from .._errors import NetworkError
from .._login.bind import is_loopback_host
from .._protocol import TokenRequest
from .retry import NO_RETRY, RETRY_STATUSES, RetryPolicy, backoff, retry_after_seconds

DEFAULT_TIMEOUT = 30.0
_CONNECT_TIMEOUT = 10.0
_MAX_BODY = 1 << 20


@dataclass(frozen=True)
class HttpResponse:
    status: int
    reason: str
    content_type: str
    body: bytes = field(repr=False)  # it holds the tokens
    retry_after: str | None = None


async def read_body(response: aiohttp.ClientResponse, limit: int = _MAX_BODY) -> bytes:
    """The whole body, up to ``limit`` bytes (``content.read(n)`` stops at what has arrived)."""
    body = bytearray()
    while len(body) <= limit:
        chunk = await response.content.read(65536)
        if not chunk:
            break
        body += chunk
    return bytes(body[:limit])


def client_session(url: str, timeout: float = DEFAULT_TIMEOUT) -> aiohttp.ClientSession:
    """The client session for one exchange with a provider or a resource at ``url``.

    The one place these settings live: the system's proxies (``trust_env``)
    except for a server on this machine, which no proxy should see, and a
    bounded wait.
    """
    host = urlsplit(url).hostname or ""
    return aiohttp.ClientSession(
        trust_env=not is_loopback_host(host),
        timeout=aiohttp.ClientTimeout(total=timeout, connect=_CONNECT_TIMEOUT),
    )


async def send(
    request: TokenRequest,
    *,
    policy: RetryPolicy = NO_RETRY,
    retry_statuses: bool = False,
    resend_after_sent: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> HttpResponse:
    """POST ``request``, trying again as ``policy`` allows (and waiting with its ``sleep``).

    A failure to connect is always safe to retry. With ``retry_statuses``, so
    are 429 (after its ``Retry-After``), 502, 503 and 504. A request that may
    have reached the provider is sent again only with ``resend_after_sent``:
    never for a code (single use, RFC 6749 §4.1.2) nor a refresh token (the
    provider may have rotated it; reusing the old one can revoke the grant,
    RFC 9700 §4.14.2).

    Proxies come from the environment (``HTTPS_PROXY``, ``NO_PROXY``), except
    for a provider on this machine.
    """
    started = policy.clock()
    async with client_session(request.url, timeout) as session:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await _post_once(session, request, timeout)
            except NetworkError as exc:
                if not exc.transient or (exc.sent and not resend_after_sent):
                    raise
                delay = backoff(policy, attempt, elapsed=policy.clock() - started)
                if delay is None:
                    raise
            else:
                if not (retry_statuses and response.status in RETRY_STATUSES):
                    return response
                wait = retry_after_seconds(response.retry_after, now=time.time())
                elapsed = policy.clock() - started
                delay = backoff(policy, attempt, elapsed=elapsed, retry_after=wait)
                if delay is None:
                    return response
            await policy.sleep(delay)


async def _post_once(
    session: aiohttp.ClientSession, request: TokenRequest, timeout: float
) -> HttpResponse:
    netloc = urlsplit(request.url).netloc
    try:
        async with session.post(
            request.url,
            data=request.body,
            headers=dict(request.headers),
            allow_redirects=False,
        ) as response:
            body = await read_body(response)
            return HttpResponse(
                status=response.status,
                reason=response.reason or "",
                content_type=response.content_type,
                body=body,
                retry_after=response.headers.get("Retry-After"),
            )
    except aiohttp.ConnectionTimeoutError:
        raise NetworkError(
            f"could not connect to the token endpoint at {netloc} within {_CONNECT_TIMEOUT:g} s",
            sent=False,
        ) from None
    except aiohttp.ClientSSLError as exc:
        raise NetworkError(
            f"TLS with the token endpoint at {netloc} failed: {_reason(exc)}",
            sent=False,
            transient=False,
        ) from None
    except aiohttp.ClientConnectorError as exc:
        raise NetworkError(
            f"could not connect to the token endpoint at {netloc}: {_reason(exc)}", sent=False
        ) from None
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise NetworkError(
            f"the token endpoint at {netloc} did not answer within {timeout:g} s"
        ) from None
    except aiohttp.ClientError as exc:
        raise NetworkError(
            f"the connection to the token endpoint at {netloc} broke: {_reason(exc)}"
        ) from None


def _reason(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, socket.gaierror):
            return "the host could not be resolved (DNS)"
        return exc.strerror or "connection failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return type(exc).__name__
