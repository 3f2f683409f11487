"""``loopback-login api PROFILE PATH_OR_URL``: one authenticated request, like ``gh api``.

The request goes through :func:`._aiohttp_api.session`, so the command and the
Python sessions share one answer to "what goes with a request" and "what to
do on a 401" (:mod:`._target`).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from ._aiohttp_api import authenticated_session
from ._auth import ApiAuth
from ._bind import is_loopback_host
from ._errors import ConfigError, LoginRequired, ProviderError
from ._http import _CONNECT_TIMEOUT, DEFAULT_TIMEOUT, network_errors
from ._protocol import _clean

_JSON = "application/json"


@dataclass
class ApiRequest:
    """What the command line asked for, checked."""

    method: str
    path_or_url: str
    #: Fields (``-f``, ``-F``): in the query for GET, else a JSON body.
    fields: list[tuple[str, Any]] = field(default_factory=list)
    #: ``--input``: the raw body.
    body: bytes | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def parse_field(text: str, *, typed: bool, stdin: BinaryIO | None = None) -> tuple[str, Any]:
    """``key=value`` of ``-f`` (a string) or ``-F`` (typed, as ``gh api`` reads it).

    ``-F``: ``true``, ``false`` and ``null`` become JSON literals, integers and
    decimal numbers become numbers, and ``@FILE`` is the file's text (``@-``: stdin).
    """
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"expected KEY=VALUE, got {text!r}")
    if not typed:
        return key, value
    if value in ("true", "false", "null"):
        return key, json.loads(value)
    if value.startswith("@"):
        return key, _read_input(value[1:], stdin).decode("utf-8", "replace")
    for number in (int, float):
        try:
            parsed = number(value)
        except ValueError:
            continue
        if isinstance(parsed, float) and not math.isfinite(parsed):
            break  # "nan", "inf" stay strings: JSON has no such numbers
        return key, parsed
    return key, value


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or any(ch in name for ch in " \t\r\n") or "\n" in value:
        raise ConfigError(f"expected -H 'Name: value', got {text!r}")
    if name.lower() == "authorization":
        raise ConfigError("the Authorization header comes from the profile's token; drop -H")
    return name, value


def read_input(path: str, stdin: BinaryIO | None = None) -> bytes:
    """``--input FILE`` (``-``: standard input), read whole."""
    return _read_input(path, stdin)


def _read_input(path: str, stdin: BinaryIO | None) -> bytes:
    if path == "-":
        return (stdin or sys.stdin.buffer).read()
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def _query_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def call_api(
    profile: str,
    request: ApiRequest,
    *,
    out: BinaryIO,
    include: bool = False,
    pretty: bool = False,
    client_secret: str | None = None,
) -> None:
    """Send ``request`` to ``profile``'s API and write the answer to ``out``.

    Raises :class:`LoginRequired` when the API refuses the token even after a
    refresh, :class:`ProviderError` for any other status of 400 and above (the
    body has been written by then), :class:`NetworkError` when the API cannot
    be reached.
    """
    auth = ApiAuth(profile, client_secret=client_secret)
    target = auth.target
    url = target.url_for(request.path_or_url)
    headers = dict(request.headers)
    data = request.body
    if request.fields:
        if request.method in ("GET", "HEAD") or data is not None:
            fields = {key: _query_value(value) for key, value in request.fields}
            url = target.with_query(url, fields)
        else:
            data = json.dumps(dict(request.fields)).encode()
    if data is not None and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = _JSON
    host = urlsplit(url).hostname or ""
    async with authenticated_session(
        auth,
        timeout=aiohttp.ClientTimeout(connect=_CONNECT_TIMEOUT, sock_read=DEFAULT_TIMEOUT),
        # Proxies from the environment, as for the token endpoint; never for this machine.
        trust_env=not is_loopback_host(host),
    ) as api:
        with network_errors("the API", urlsplit(url).netloc, DEFAULT_TIMEOUT):
            async with api.request(
                request.method, URL(url, encoded=True), data=data, headers=headers
            ) as response:
                if include:
                    out.write(_head(response))
                await _write_body(response, out, pretty=pretty)
                status, reason = response.status, _clean(response.reason or "")
                final = response.url
                ours = target.owns(final.scheme, final.host or "", final.port)
    out.flush()
    if status == 401 and ours:
        raise LoginRequired(
            f"the API refused the token of profile {profile!r} (401) even after a refresh; "
            f"run `loopback-login login {profile}`"
        )
    if status >= 400:
        raise ProviderError(f"the API answered {status} {reason}".rstrip())


def _head(response: aiohttp.ClientResponse) -> bytes:
    """``-i``: the status line and the headers, as they came."""
    major, minor = response.version or (1, 1)
    version = f"HTTP/{major}.{minor}"
    lines = [f"{version} {response.status} {response.reason or ''}".rstrip()]
    lines += [
        f"{name.decode('latin-1')}: {value.decode('latin-1')}"
        for name, value in response.raw_headers
    ]
    # Lines end in "\n", as gh api -i prints them: for reading and grep, not for replay.
    return ("\n".join(lines) + "\n\n").encode("latin-1", "replace")


async def _write_body(response: aiohttp.ClientResponse, out: BinaryIO, *, pretty: bool) -> None:
    """The body to ``out``: unchanged, or pretty JSON for a terminal."""
    if pretty and _is_json(response.content_type):
        body = await response.read()
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            out.write(body)
        else:
            out.write(json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n")
        return
    async for chunk in response.content.iter_chunked(65536):
        out.write(chunk)


def _is_json(content_type: str) -> bool:
    return content_type == _JSON or content_type.endswith("+json")
