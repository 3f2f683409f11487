"""Authorization server metadata: OpenID Connect Discovery 1.0 and RFC 8414.

Parsing is pure; fetching is one GET, cached per profile for a day in
``metadata/NAME.json`` so that later logins need no round trip.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit, urlunsplit

from .._errors import ProviderError
from .._text import clean as _clean

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from .._store import Store

CACHE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Metadata:
    """What a profile takes from the provider's metadata."""

    issuer: str
    authorization_endpoint: str | None
    token_endpoint: str
    revocation_endpoint: str | None = None
    #: ``None`` when the provider does not say (RFC 8414 §2).
    code_challenge_methods: tuple[str, ...] | None = None
    #: RFC 9207 §3: the provider always sends ``iss``; a callback without it is refused.
    iss_parameter_supported: bool = False
    #: RFC 8414 §2: absent means client_secret_basic only.
    token_endpoint_auth_methods: tuple[str, ...] = ("client_secret_basic",)
    #: RFC 7591 §3 (RFC 8414 §2): where a client can register itself.
    registration_endpoint: str | None = None
    #: OAuth Client ID Metadata Documents: a URL may be the client id.
    client_id_metadata_document_supported: bool = False
    #: RFC 8628 §4: where a device login starts.
    device_authorization_endpoint: str | None = None


def check_server_url(label: str, url: str, named_by: str) -> str:
    """A URL a server handed us: https, or http to this machine; no user name or password.

    Every URL that comes from a server's answer (the authorization servers of
    RFC 9728 metadata, the endpoints of RFC 8414 metadata, RFC 7591 registration
    URIs) goes through here before anything is sent to it or cached: RFC 6749
    §3.1 and §3.2 require TLS, RFC 9728 §2 and RFC 8414 §2 name https URLs, and
    a user name or password would travel in every line that names the host.
    """
    from .._login.bind import is_loopback_host

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a port that is not a number in range
    except ValueError:
        parts = None
    secure = parts is not None and (
        parts.scheme == "https"
        or (parts.scheme == "http" and is_loopback_host(parts.hostname or ""))
    )
    if parts is None or not secure or not parts.hostname:
        raise ProviderError(
            f"the {label} {_clean(url, 200)!r} named by {named_by} is not an https URL; not used"
        )
    if parts.username is not None or parts.password is not None:
        raise ProviderError(
            f"the {label} named by {named_by} carries a user name or password; not used"
        )
    return url


def same_origin(first: str, second: str) -> bool:
    """RFC 6454 §4: the same scheme, host and port (the default port spelled or not)."""
    from .._protocol import origin

    return origin(first) == origin(second)


def metadata_urls(issuer: str) -> list[str]:
    """Where the metadata may be: OIDC Discovery §4, then RFC 8414 §3.1 (path after the suffix)."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    oidc = urlunsplit(
        (parts.scheme, parts.netloc, f"{path}/.well-known/openid-configuration", "", "")
    )
    rfc8414 = urlunsplit(
        (parts.scheme, parts.netloc, f"/.well-known/oauth-authorization-server{path}", "", "")
    )
    return [oidc, rfc8414]


def read_document(issuer: str, body: bytes) -> dict[str, Any]:
    """Check one metadata document for ``issuer`` and return it as a dict.

    RFC 8414 §3.3 and OIDC Discovery §4.3: the document's ``issuer`` must be
    identical to the one asked for, or it is someone else's (a mix-up).
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise ProviderError(f"the metadata of {issuer} is not a JSON object")
    named = data.get("issuer")
    if named != issuer:
        hint = "check --issuer"
        if isinstance(named, str) and named.rstrip("/") == issuer.rstrip("/"):
            # The identifier is compared character for character: a slash counts.
            hint = f"give --issuer exactly as the provider spells it, {named!r} (mind the slash)"
        raise ProviderError(
            f"the metadata found for {issuer} names another issuer ({_clean(str(named))!r}); {hint}"
        )
    return data


def merge_documents(issuer: str, documents: Sequence[Mapping[str, Any]]) -> Metadata:
    """One :class:`Metadata` from the provider's documents, the first one's values winning.

    A provider may publish both an OpenID Connect and an RFC 8414 document and
    list an endpoint (``revocation_endpoint``, say) in only one of them.
    """
    data: dict[str, Any] = {}
    for document in reversed(documents):
        data.update({key: value for key, value in document.items() if value is not None})
    if not isinstance(data.get("token_endpoint"), str):
        raise ProviderError(f"the metadata of {issuer} has no token_endpoint")

    def strings(key: str) -> tuple[str, ...] | None:
        value = data.get(key)
        if not isinstance(value, list):
            return None
        return tuple(item for item in value if isinstance(item, str))

    def url(key: str) -> str | None:
        value = data.get(key)
        if not isinstance(value, str):
            return None
        return check_server_url(key, value, f"the metadata of {issuer}")

    return Metadata(
        issuer=issuer,
        authorization_endpoint=url("authorization_endpoint"),
        token_endpoint=check_server_url(
            "token_endpoint", data["token_endpoint"], f"the metadata of {issuer}"
        ),
        revocation_endpoint=url("revocation_endpoint"),
        code_challenge_methods=strings("code_challenge_methods_supported"),
        iss_parameter_supported=data.get("authorization_response_iss_parameter_supported") is True,
        token_endpoint_auth_methods=strings("token_endpoint_auth_methods_supported")
        or ("client_secret_basic",),
        registration_endpoint=url("registration_endpoint"),
        client_id_metadata_document_supported=data.get("client_id_metadata_document_supported")
        is True,
        device_authorization_endpoint=url("device_authorization_endpoint"),
    )


def parse_metadata(issuer: str, body: bytes) -> Metadata:
    """Check and read one metadata document for ``issuer``."""
    return merge_documents(issuer, [read_document(issuer, body)])


def metadata_to_json(metadata: Metadata) -> dict[str, Any]:
    return {
        "issuer": metadata.issuer,
        "authorization_endpoint": metadata.authorization_endpoint,
        "token_endpoint": metadata.token_endpoint,
        "revocation_endpoint": metadata.revocation_endpoint,
        "code_challenge_methods_supported": (
            list(metadata.code_challenge_methods)
            if metadata.code_challenge_methods is not None
            else None
        ),
        "authorization_response_iss_parameter_supported": metadata.iss_parameter_supported,
        "token_endpoint_auth_methods_supported": list(metadata.token_endpoint_auth_methods),
        "registration_endpoint": metadata.registration_endpoint,
        "client_id_metadata_document_supported": metadata.client_id_metadata_document_supported,
        "device_authorization_endpoint": metadata.device_authorization_endpoint,
    }


async def discover(
    issuer: str, *, store: Store | None = None, name: str | None = None, now: float | None = None
) -> Metadata:
    """The provider's metadata: from the profile's cache when fresh, else fetched and cached."""
    now = time.time() if now is None else now
    if store is not None and name is not None:
        cached = store.read_json(store.metadata_path(name))
        if (
            cached is not None
            and cached.get("issuer") == issuer
            and isinstance(cached.get("fetched_at"), (int, float))
            and 0 <= now - cached["fetched_at"] < CACHE_SECONDS
            # A cache written by an older version lacks what this one reads: fetch again.
            and isinstance(cached.get("metadata"), dict)
            and set(cached["metadata"]) >= _KEYS
        ):
            try:
                return parse_metadata(issuer, json.dumps(cached.get("metadata")).encode())
            except ProviderError:
                pass  # a damaged cache is fetched again
    metadata = await _fetch(issuer)
    if store is not None and name is not None:
        store.write_json(
            store.metadata_path(name),
            {"issuer": issuer, "fetched_at": now, "metadata": metadata_to_json(metadata)},
        )
    return metadata


#: Every key :func:`metadata_to_json` writes.
_KEYS = frozenset(
    metadata_to_json(Metadata(issuer="", authorization_endpoint=None, token_endpoint=""))
)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5


def redirect_allowed(url: str, location: str) -> bool:
    """Follow a metadata redirect only within the same origin: never elsewhere, never to http.

    The endpoints found are cached for a day; an open redirect or a hostile
    hop must not choose them (RFC 8414 §3.3 ties the document to the issuer).
    """
    here, there = urlsplit(url), urlsplit(urljoin(url, location))
    return (here.scheme, here.netloc.lower()) == (there.scheme, there.netloc.lower())


async def _fetch(issuer: str) -> Metadata:
    """Read both documents (OIDC Discovery §4, RFC 8414 §3.1) and merge what they say."""
    import socket

    import aiohttp

    from .._http.client import client_session, read_body

    host = urlsplit(issuer).hostname or ""
    documents: list[dict[str, Any]] = []
    refused: ProviderError | None = None
    last = "no answer"
    try:
        async with client_session(issuer) as session:
            for url in metadata_urls(issuer):
                for _hop in range(_MAX_REDIRECTS + 1):
                    async with session.get(
                        url, headers={"Accept": "application/json"}, allow_redirects=False
                    ) as response:
                        location = response.headers.get("Location")
                        if response.status in _REDIRECTS and location is not None:
                            if not redirect_allowed(url, location):
                                raise ProviderError(
                                    f"the metadata of {issuer} redirects to another origin "
                                    f"({_clean(location, 100)}); not followed"
                                )
                            url = urljoin(url, location)
                            continue
                        if response.status != 200:
                            last = f"{response.status} {response.reason or ''}".strip()
                        else:
                            try:
                                documents.append(read_document(issuer, await read_body(response)))
                            except ProviderError as exc:
                                # RFC 8414 §3.3: a document for another issuer is not used;
                                # the other document may still be this issuer's.
                                refused = refused or exc
                        break
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, socket.gaierror):
            raise ProviderError(
                f"could not read the metadata of {issuer}: the host {host} could not be "
                "resolved (DNS); check --issuer and your network"
            ) from None
        raise ProviderError(
            f"could not read the metadata of {issuer}: could not connect to "
            f"{urlsplit(issuer).netloc} ({exc.strerror or 'connection failed'})"
        ) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ProviderError(
            f"could not read the metadata of {issuer}: {type(exc).__name__}"
        ) from None
    if documents:
        return merge_documents(issuer, documents)
    if refused is not None:
        raise refused
    raise ProviderError(f"the issuer {issuer} publishes no metadata (last answer: {last})")


async def discover_legacy(resource: str) -> Metadata:
    """MCP 2025-03-26: a server without resource metadata is its own authorization server.

    That revision finds the metadata at ``/.well-known/oauth-authorization-server`` of
    the MCP server's origin (its "authorization base URL"), and without it (404) uses
    ``/authorize``, ``/token`` and ``/register`` there. The document is tied to the
    origin it was read from, not to an issuer asked for: its ``issuer`` (which may
    have a path) must be on that origin, so that it cannot send us elsewhere.
    """
    import aiohttp

    from .._http.client import client_session, read_body

    parts = urlsplit(resource)
    origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    url = f"{origin}/.well-known/oauth-authorization-server"
    try:
        async with (
            client_session(origin) as session,
            session.get(
                url,
                headers={"Accept": "application/json", "MCP-Protocol-Version": "2025-03-26"},
                allow_redirects=False,
            ) as response,
        ):
            status, body = response.status, await read_body(response)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ProviderError(
            f"could not read the authorization server metadata at {url}: {type(exc).__name__}"
        ) from None
    if status == 404:
        return Metadata(
            issuer=origin,
            authorization_endpoint=f"{origin}/authorize",
            token_endpoint=f"{origin}/token",
            registration_endpoint=f"{origin}/register",
        )
    if status != 200:
        raise ProviderError(
            f"{resource} publishes no resource metadata (RFC 9728), and its authorization "
            f"server metadata at {url} answered {status}"
        )
    try:
        named = json.loads(body).get("issuer")
    except (ValueError, UnicodeDecodeError, RecursionError, AttributeError):
        named = None
    there = urlsplit(named) if isinstance(named, str) else None
    if there is None or (there.scheme, there.netloc.lower()) != (
        parts.scheme,
        parts.netloc.lower(),
    ):
        raise ProviderError(
            f"the authorization server metadata at {url} names an issuer on another origin "
            f"({_clean(str(named), 100)!r}); not used"
        )
    return parse_metadata(str(named), body)
