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
import os
import re
import sys
from urllib.parse import SplitResult, urlsplit

from .._errors import ConfigError, LoginRequired, NetworkError, ProviderError
from .._login.bind import is_loopback_host
from .._text import clean
from .auth import ApiAuth

TYPE_CHECKING = False  # a one-shot command: typing is for the type checker only
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO

_JSON = "application/json"
# RFC 8259 §6: what -F reads as a number (not Python's "1_000", " 1 " or "nan").
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
#: Seconds to connect, and then between bytes of the answer.
_TIMEOUT = 30.0


class ApiRequest:
    """What the command line asked for, checked."""

    def __init__(
        self,
        method: str,
        path_or_url: str,
        fields: list[tuple[str, Any]] | None = None,
        body: bytes | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.method = method
        self.path_or_url = path_or_url
        #: Fields (``-f``, ``-F``): in the query for GET, else a JSON body.
        self.fields = fields or []
        #: ``--input``: the raw body.
        self.body = body
        self.headers = headers or []


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
    refresh, or asks for a scope (403 ``insufficient_scope``) where no one can
    sign in, :class:`ProviderError` for any other status of 400 and above (the
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
    token = auth.token_sync()
    retried = stepped_up = False
    while True:
        try:
            response = _send(request.method, url, data, {**headers, **auth.headers(token)})
        except NetworkError as exc:
            if auth.made_by_demo and not exc.sent:
                from .._demo.serving import DEMO_GONE

                raise NetworkError(f"{exc}; {DEMO_GONE}", sent=False) from None
            raise
        # A 401's body says whether the token or the API key was refused.
        read = _read_body(response, urlsplit(url).netloc) if response.status == 401 else None
        if auth.should_retry(response.status, authorized=True, retried=retried, body=read or b""):
            response.close()
            token, retried = auth.after_401_sync(token), True
            continue
        scope = (
            None
            if stepped_up
            else auth.step_up_scope(
                response.status, response.headers.get_all("WWW-Authenticate") or [], token
            )
        )
        if scope is None:
            break
        # 403 insufficient_scope: sign in again for the union of the scopes, retry once.
        response.close()
        token, stepped_up = auth.step_up_sync(scope), True
    with response:
        if include:
            out.write(_head(response))
        _write_body(response, out, pretty=pretty, netloc=urlsplit(url).netloc, body=read)
    out.flush()
    status, reason = response.status, clean(response.reason or "")
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


def _send(
    method: str, url: str, data: bytes | None, headers: dict[str, str]
) -> http.client.HTTPResponse:
    """One request with http.client; every answer comes back as it is (redirects too).

    The standard library, not aiohttp: one request needs no event loop, and
    importing aiohttp (or urllib.request) costs more than the request. Proxies
    come from the environment, as for the token endpoint, except for this machine.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    proxy = None if is_loopback_host(parts.hostname or "") else _proxy(parts)
    connection = _connection(parts, proxy)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if proxy is not None and parts.scheme == "http":
        target = url  # RFC 9112 §3.2.2: absolute-form, to a proxy
        headers = {**headers, **_proxy_authorization(proxy)}
    # The connection ends with the answer: the response owns the socket, closed with it.
    headers = {**headers, "Connection": "close"}
    with _network_errors(netloc, sent=False):
        connection.connect()
    with _network_errors(netloc, sent=True):
        connection.request(method, target, body=data, headers=headers)
        return connection.getresponse()


def _connection(parts: SplitResult, proxy: SplitResult | None) -> http.client.HTTPConnection:
    host, port = parts.hostname or "", parts.port
    if parts.scheme != "https":
        if proxy is not None:
            return http.client.HTTPConnection(proxy.hostname or "", proxy.port, timeout=_TIMEOUT)
        return http.client.HTTPConnection(host, port, timeout=_TIMEOUT)
    import ssl

    context = ssl.create_default_context()
    if proxy is None:
        return http.client.HTTPSConnection(host, port, timeout=_TIMEOUT, context=context)
    # RFC 9110 §9.3.6: a CONNECT tunnel through the proxy; TLS with the API inside it.
    connection = http.client.HTTPSConnection(
        proxy.hostname or "", proxy.port, timeout=_TIMEOUT, context=context
    )
    connection.set_tunnel(host, port, headers=_proxy_authorization(proxy))
    return connection


def _proxy(parts: SplitResult) -> SplitResult | None:
    """The environment's proxy for this URL (``https_proxy``, ``no_proxy``...), or ``None``.

    Read as urllib reads it; urllib.request is imported only when a proxy
    variable is set at all.
    """
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return None
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    if not proxies.get(parts.scheme) or urllib.request.proxy_bypass(parts.netloc):
        return None
    proxy = proxies[parts.scheme]
    return urlsplit(proxy if "://" in proxy else "http://" + proxy)


def _proxy_authorization(proxy: SplitResult) -> dict[str, str]:
    """RFC 9110 §11.7.2: the proxy's credentials, when its URL carries them."""
    if proxy.username is None:
        return {}
    import base64
    from urllib.parse import unquote

    pair = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}"
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


@contextlib.contextmanager
def _network_errors(netloc: str, *, sent: bool = True) -> Iterator[None]:
    """The API's network failures, told as the token endpoint's are (:mod:`.._http`)."""
    what = "the API"
    try:
        yield
    except TimeoutError:
        raise NetworkError(f"{what} at {netloc} did not answer within {_TIMEOUT:g} s") from None
    except OSError as exc:
        if type(exc).__module__ == "ssl":  # SSLError, SSLCertVerificationError
            detail = getattr(exc, "verify_message", None) or getattr(exc, "reason", None)
            raise NetworkError(
                f"TLS with {what} at {netloc} failed: {detail or 'failed'}",
                sent=False,
                transient=False,
            ) from None
        if not sent:
            raise NetworkError(
                f"could not connect to {what} at {netloc}: {exc.strerror or 'connection failed'}",
                sent=False,
            ) from None
        raise NetworkError(
            f"the connection to {what} at {netloc} broke: {type(exc).__name__}"
        ) from None
    except http.client.HTTPException as exc:
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
