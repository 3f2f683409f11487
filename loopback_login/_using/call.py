"""``loopback-login api PROFILE PATH_OR_URL``: one authenticated request, like ``gh api``.

The command and the Python sessions share one answer to "what goes with a
request" and "what to do on a 401" (:mod:`._target`, through :class:`._auth.ApiAuth`);
only the transport differs: the standard library here, for a fast one-shot.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import re
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from .._errors import ConfigError, LoginRequired, NetworkError, ProviderError
from .._login.bind import is_loopback_host
from .._protocol import _clean
from .auth import ApiAuth

_JSON = "application/json"
# RFC 8259 §6: what -F reads as a number (not Python's "1_000", " 1 " or "nan").
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
#: Seconds to connect, and then between bytes of the answer.
_TIMEOUT = 30.0


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
    if _JSON_NUMBER.fullmatch(value):
        number = json.loads(value)
        if math.isfinite(number):  # 1e999 stays a string: JSON has no infinity
            return key, number
    return key, value


def parse_method(text: str | None, *, has_body: bool) -> str:
    """``-X``: default GET, POST when there are fields or an input."""
    method = (text or ("POST" if has_body else "GET")).upper()
    # RFC 9110 §9.1: a method is a token; these letters are all the ones in use.
    if not method.isascii() or not method.isalpha():
        raise ConfigError(f"-X {text!r} is not an HTTP method")
    return method


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if (
        not sep
        or not name
        or any(ch in name for ch in " \t\r\n")
        or any(ch in value for ch in "\r\n\0")
    ):
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


def call_api(
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
    be reached. Redirects are not followed (as curl without ``-L``): the token
    must not travel on, and ``-i`` shows where they point.
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
    url = target.with_query(url)  # the provider's extras (Honeywell: apikey)
    opener = _opener(urlsplit(url).hostname or "")
    token = auth.token_sync()
    retried = False
    while True:
        try:
            response = _send(opener, request.method, url, data, {**headers, **auth.headers(token)})
        except NetworkError as exc:
            if auth.made_by_demo and not exc.sent:
                from .._demo.serving import DEMO_GONE

                raise NetworkError(f"{exc}; {DEMO_GONE}", sent=False) from None
            raise
        # A 401's body says whether the token or the API key was refused.
        read = _read_body(response, urlsplit(url).netloc) if response.status == 401 else None
        if not auth.should_retry(
            response.status, authorized=True, retried=retried, body=read or b""
        ):
            break
        response.close()
        token, retried = auth.after_401_sync(token), True
    with response:
        if include:
            out.write(_head(response))
        _write_body(response, out, pretty=pretty, netloc=urlsplit(url).netloc, body=read)
    out.flush()
    status, reason = response.status, _clean(response.reason or "")
    wrong_key = auth.wrong_api_key(status, read or b"") if read is not None else None
    if wrong_key is not None:
        raise ProviderError(wrong_key)
    if status == 401:
        raise LoginRequired(
            f"the API refused the token of profile {profile!r} (401) even after a refresh; "
            f"run `loopback-login login {profile}`"
        )
    if status >= 400:
        raise ProviderError(f"the API answered {status} {reason}".rstrip())


def _opener(host: str) -> urllib.request.OpenerDirector:
    """urllib without its redirect and error handlers: every answer comes back as it is.

    The standard library, not aiohttp: one request needs no event loop, and
    importing aiohttp costs more than the request. Proxies come from the
    environment, as for the token endpoint, except for this machine.
    """
    opener = urllib.request.OpenerDirector()
    proxies: dict[str, str] | None = {} if is_loopback_host(host) else None
    for handler in (
        urllib.request.ProxyHandler(proxies),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
    ):
        opener.add_handler(handler)
    return opener


def _send(
    opener: urllib.request.OpenerDirector,
    method: str,
    url: str,
    data: bytes | None,
    headers: dict[str, str],
) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 -- http(s) only: ApiTarget
    with _network_errors(urlsplit(url).netloc):
        response: http.client.HTTPResponse = opener.open(request, timeout=_TIMEOUT)
        return response


@contextlib.contextmanager
def _network_errors(netloc: str) -> Iterator[None]:
    """The API's network failures, told as the token endpoint's are (:mod:`._http`)."""
    what = "the API"
    try:
        yield
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLError):
            detail = getattr(reason, "verify_message", None) or reason.reason or "failed"
            raise NetworkError(
                f"TLS with {what} at {netloc} failed: {detail}", sent=False, transient=False
            ) from None
        if isinstance(reason, TimeoutError):
            raise NetworkError(f"{what} at {netloc} did not answer within {_TIMEOUT:g} s") from None
        detail = reason.strerror if isinstance(reason, OSError) else None
        raise NetworkError(
            f"could not connect to {what} at {netloc}: {detail or 'connection failed'}", sent=False
        ) from None
    except TimeoutError:
        raise NetworkError(f"{what} at {netloc} did not answer within {_TIMEOUT:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise NetworkError(
            f"the connection to {what} at {netloc} broke: {type(exc).__name__}"
        ) from None


def _head(response: http.client.HTTPResponse) -> bytes:
    """``-i``: the status line and the headers, as they came."""
    version = "HTTP/1.0" if response.version == 10 else "HTTP/1.1"
    lines = [f"{version} {response.status} {response.reason or ''}".rstrip()]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    # Lines end in "\n", as gh api -i prints them: for reading and grep, not for replay.
    return ("\n".join(lines) + "\n\n").encode("latin-1", "replace")


def _read_body(response: http.client.HTTPResponse, netloc: str) -> bytes:
    with _network_errors(netloc):
        return response.read()


def _write_body(
    response: http.client.HTTPResponse,
    out: BinaryIO,
    *,
    pretty: bool,
    netloc: str,
    body: bytes | None = None,
) -> None:
    """The body (``body`` when already read) to ``out``: as it came, or for a terminal
    (``pretty``) JSON indented and a final newline, so that the prompt or an error line
    starts on a line of its own."""
    indent = pretty and _is_json(response.headers.get_content_type())
    last = b"\n"
    with _network_errors(netloc):
        if body is None and not indent:
            while chunk := response.read(65536):
                out.write(chunk)
                last = chunk[-1:]
        else:
            body = response.read() if body is None else body
            if indent:
                body = _indented(body)
            out.write(body)
            last = body[-1:] or last
    if pretty and last != b"\n":
        out.write(b"\n")


def _indented(body: bytes) -> bytes:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return body
    return json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n"


def _is_json(content_type: str) -> bool:
    return content_type == _JSON or content_type.endswith("+json")
