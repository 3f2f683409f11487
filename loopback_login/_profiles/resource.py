"""Logging in with nothing but the API's URL: the pure half.

RFC 9728 (protected resource metadata) finds the authorization server that
protects an API, RFC 7591 (dynamic client registration) registers this tool
there as a native public client, and RFC 8707 (resource indicators) binds the
tokens to the API. Everything here is values in, values out; the requests are
sent by :mod:`._dynamic`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from .._errors import ProviderError
from .._protocol import _json_object
from .._text import clean as _clean
from .discovery import check_server_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: RFC 9728 §3: the well-known URI suffix of protected resource metadata.
WELL_KNOWN = "/.well-known/oauth-protected-resource"

#: RFC 7591 §2: what a native app on a loopback redirect asks to be.
GRANT_TYPES = ("authorization_code", "refresh_token")

# RFC 7591 §2 token_endpoint_auth_method -> our client_auth names.
_AUTH_METHODS = {"none": "none", "client_secret_basic": "basic", "client_secret_post": "post"}


# --- WWW-Authenticate (RFC 9110 §11.6.1) ------------------------------------------

# A token, a quoted string (with \-escapes), "=" or ",", each after optional spaces.
# Tokens are read loosely (anything up to a separator), so that a server that
# forgets to quote a URL (RFC 9110 wants it quoted) is still understood.
_PIECE = re.compile(r'\s*(?:([^\s,="]+)|"((?:[^"\\]|\\.)*)"|(=+)|(,))', re.S)


def parse_www_authenticate(value: str) -> list[tuple[str, dict[str, str]]]:
    """The challenges of a ``WWW-Authenticate`` value: ``[(scheme, {param: value})]``.

    Schemes are lower-cased, as are parameter names (both are case-insensitive,
    RFC 9110 §11.1 and §11.2); a token68 is skipped. Unparseable text ends the
    parse with what was read so far: a challenge we cannot read is one we do
    not follow.
    """
    pieces: list[tuple[str, str]] = []  # (kind, text): kind is t(oken), q(uoted), =, ","
    position = 0
    while position < len(value):
        match = _PIECE.match(value, position)
        if match is None:
            break
        position = match.end()
        token, quoted, equals, comma = match.groups()
        if token is not None:
            pieces.append(("t", token))
        elif quoted is not None:
            pieces.append(("q", re.sub(r"\\(.)", r"\1", quoted)))
        elif equals is not None:
            pieces.append(("=", equals))
        elif comma is not None:
            pieces.append((",", ","))
        if value[position:].strip() == "":
            break
    challenges: list[tuple[str, dict[str, str]]] = []
    index, after_comma = 0, True
    while index < len(pieces):
        kind, text = pieces[index]
        following = pieces[index + 1 : index + 3]
        if kind == ",":
            after_comma = True
        elif (
            kind == "t"
            and following[:1] == [("=", "=")]
            and len(following) == 2
            and following[1][0] in ("t", "q")
        ):
            if challenges:
                challenges[-1][1].setdefault(text.lower(), following[1][1])
            index += 2
            after_comma = False
        elif kind == "t" and (after_comma or not challenges):
            challenges.append((text.lower(), {}))  # a new scheme
            after_comma = False
        # else: a token68 or its "=" padding, which we have no use for
        index += 1
    return challenges


def resource_metadata_url(challenges: list[str]) -> str | None:
    """RFC 9728 §5.1: the ``resource_metadata`` URL of a 401's challenges, Bearer's first."""
    return _challenge_param(challenges, "resource_metadata")


def challenge_scope(challenges: list[str]) -> str | None:
    """RFC 6750 §3: the ``scope`` a 401 says the request needs, Bearer's first."""
    return _challenge_param(challenges, "scope")


def insufficient_scope(challenges: list[str]) -> str | None:
    """RFC 6750 §3.1: the ``scope`` of a Bearer ``error="insufficient_scope"`` challenge."""
    for value in challenges:
        for scheme, params in parse_www_authenticate(value):
            if scheme == "bearer" and params.get("error") == "insufficient_scope":
                return params.get("scope") or None
    return None


def _challenge_param(challenges: list[str], name: str) -> str | None:
    parsed = [challenge for value in challenges for challenge in parse_www_authenticate(value)]
    parsed.sort(key=lambda challenge: challenge[0] != "bearer")
    for _scheme, params in parsed:
        value = params.get(name)
        if value:
            return value
    return None


# --- where the metadata is (RFC 9728 §3.1) -----------------------------------------


def well_known_urls(resource: str) -> list[str]:
    """Where the resource's metadata may be: the suffix inserted before its path, then at the root.

    RFC 9728 §3.1 inserts the well-known suffix between the host and the path
    (and query); servers that publish one document per host put it at the root,
    so that is tried next (as MCP clients do).
    """
    parts = urlsplit(resource)
    path = parts.path.rstrip("/")  # §3.1: a terminating slash is removed
    urls = [urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + path, parts.query, ""))]
    root = urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN, "", ""))
    if root not in urls:
        urls.append(root)
    return urls


# --- the metadata (RFC 9728 §2, §3.2, §3.3) ----------------------------------------


@dataclass(frozen=True)
class ResourceMetadata:
    """What a login takes from a protected resource's metadata."""

    resource: str
    authorization_servers: tuple[str, ...]
    #: ``None`` when the resource does not say.
    scopes_supported: tuple[str, ...] | None = None
    #: The scope the resource's 401 asked for (RFC 6750 §3), if it did.
    challenge_scope: str | None = None


def parse_resource_metadata(resource: str, url: str, body: bytes) -> ResourceMetadata:
    """Check and read the metadata document fetched from ``url`` for ``resource``.

    RFC 9728 §3.3: its ``resource`` must be identical to the identifier that
    formed the URL it came from; otherwise an attacker's resource could send us
    (and our token) to an authorization server of its choosing. That is the
    resource itself for its own location (path inserted, or named by its 401),
    and the origin for the root location, which a server publishes once for all
    its paths.
    """
    data = _json_object(body)
    if data is None:
        raise ProviderError(f"protected resource metadata at {url} is not a JSON object")
    named = data.get("resource")
    if named not in accepted_identifiers(resource, url):
        raise ProviderError(
            f"protected resource metadata at {url} is for {_show(named)}, not {resource} "
            "(RFC 9728 §3.3); give --resource exactly as the server names itself"
        )
    servers = data.get("authorization_servers")
    if not isinstance(servers, list) or not any(isinstance(s, str) and s for s in servers):
        raise ProviderError(f"protected resource metadata at {url} names no authorization server")
    for server in servers:
        if isinstance(server, str) and server:
            # Metadata, registration and the login itself would go there: https only.
            check_server_url("authorization server", server, f"the metadata at {url}")
    scopes = data.get("scopes_supported")
    return ResourceMetadata(
        resource=resource,
        authorization_servers=tuple(s for s in servers if isinstance(s, str) and s),
        scopes_supported=(
            tuple(s for s in scopes if isinstance(s, str) and s)
            if isinstance(scopes, list)
            else None
        ),
    )


def accepted_identifiers(resource: str, url: str) -> tuple[str, ...]:
    """The ``resource`` values a document at ``url`` may name for ``resource`` (RFC 9728 §3.3)."""
    parts = urlsplit(resource)
    root = urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN, "", ""))
    if url == root and parts.path.rstrip("/"):
        # The root document answers for the origin; the resource given is under it.
        origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        return (resource, origin, origin + "/")
    return (resource,)


def choose_authorization_server(metadata: ResourceMetadata, wanted: str | None) -> str:
    """The first authorization server the resource names, or ``wanted`` if it is one of them."""
    if wanted is None:
        return metadata.authorization_servers[0]
    if wanted not in metadata.authorization_servers:
        raise ProviderError(
            f"the resource {metadata.resource} is not protected by the issuer {wanted} "
            f"(it names {', '.join(metadata.authorization_servers)}); check --issuer"
        )
    return wanted


def default_scope(metadata: ResourceMetadata) -> str | None:
    """The scope to ask for when none is given: what the resource's 401 asked for, else all
    it says it supports (the order MCP clients follow)."""
    if metadata.challenge_scope:
        return metadata.challenge_scope
    return " ".join(metadata.scopes_supported) if metadata.scopes_supported else None


# --- registration (RFC 7591) -------------------------------------------------------


def client_name(hostname: str) -> str:
    """RFC 7591 §2 ``client_name``: which tool, on which machine (shown on consent pages)."""
    return f"loopback-login on {hostname}" if hostname else "loopback-login"


def registration_request(
    redirect_uri: str, *, name: str, scope: str | None = None
) -> dict[str, Any]:
    """RFC 7591 §2 client metadata of a native public client with a loopback redirect.

    No secret (``none``): an app on a person's machine cannot keep one (RFC 8252
    §8.4); PKCE protects the code instead.
    """
    body: dict[str, Any] = {
        "client_name": name,
        "redirect_uris": [redirect_uri],
        "grant_types": list(GRANT_TYPES),
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
        "software_id": "loopback-login",
    }
    if scope:
        body["scope"] = scope
    return body


@dataclass(frozen=True, repr=False)
class Registration:
    """The client an authorization server registered for us (RFC 7591 §3.2.1)."""

    client_id: str
    client_auth: str = "none"
    client_secret: str | None = None
    #: RFC 7592: what manages the registration later; a secret too.
    registration_access_token: str | None = None
    registration_client_uri: str | None = None

    def __repr__(self) -> str:
        return f"Registration(client_id={self.client_id!r}, client_auth={self.client_auth!r})"


def refused_for_metadata(status: int, body: bytes) -> bool:
    """RFC 7591 §3.2.2: did the server refuse the client metadata we sent?"""
    data = _json_object(body)
    return status == 400 and data is not None and data.get("error") == "invalid_client_metadata"


def parse_registration_response(
    endpoint: str, status: int, body: bytes, redirect_uri: str
) -> Registration:
    """Read the answer of the registration endpoint; refused or unusable is a ProviderError."""
    data = _json_object(body)
    if status not in (200, 201):
        # RFC 7591 §3.2.2: {"error": ..., "error_description": ...}
        error = data.get("error") if data else None
        description = data.get("error_description") if data else None
        detail = ": ".join(_show(part) for part in (error, description) if isinstance(part, str))
        raise ProviderError(
            f"client registration at {endpoint} was refused (HTTP {status}"
            + (f", {detail}" if detail else "")
            + "); register a client by hand and pass --client-id"
        )
    if data is None or not isinstance(data.get("client_id"), str) or not data["client_id"]:
        raise ProviderError(f"client registration at {endpoint} answered without a client_id")
    for key in ("client_id", "client_secret", "registration_access_token"):
        _check_credential(endpoint, key, data.get(key))
    redirects = data.get("redirect_uris")
    if isinstance(redirects, list) and redirect_uri not in redirects:
        # RFC 7591 §3.2.1: the server may change metadata; ours must survive.
        raise ProviderError(
            f"client registration at {endpoint} did not keep the redirect URI {redirect_uri}"
        )
    secret = data.get("client_secret")
    secret = secret if isinstance(secret, str) and secret else None
    # RFC 7591 §2: an omitted token_endpoint_auth_method means client_secret_basic
    # (meaningful only with a secret: a server that returns none registered a public client).
    method = data.get("token_endpoint_auth_method", "client_secret_basic" if secret else "none")
    if method not in _AUTH_METHODS or (method != "none" and secret is None):
        raise ProviderError(
            f"client registration at {endpoint} gave a client we cannot use "
            f"(token_endpoint_auth_method {_show(method)})"
        )

    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) and value else None

    return Registration(
        client_id=data["client_id"],
        client_auth=_AUTH_METHODS[method],
        client_secret=secret,
        registration_access_token=text("registration_access_token"),
        registration_client_uri=text("registration_client_uri"),
    )


#: The longest client id or registration credential kept: they go into config.toml and
#: into every request's headers; an answer larger than this is not a client we can use.
MAX_CREDENTIAL = 4096

# RFC 6749 Appendix A: a client id and secret are VSCHARs (%x20-7E); a Bearer token
# (RFC 6750 §2.1) has no space either. Either way no CR, LF or other control character
# that would split a header or a line of config.toml, and nothing outside ASCII.
_CREDENTIAL = {
    "client_id": re.compile(r"[\x20-\x7e]+"),
    "client_secret": re.compile(r"[\x20-\x7e]+"),
    "registration_access_token": re.compile(r"[\x21-\x7e]+"),
}


def _check_credential(endpoint: str, key: str, value: object) -> None:
    """Refuse a registration answer whose credential would break later logins (nothing kept)."""
    if value is None or value == "":  # absent (a missing client_id is refused before)
        return
    if not isinstance(value, str) or len(value) > MAX_CREDENTIAL:
        size = f"{len(value)} characters" if isinstance(value, str) else "not a string"
        raise ProviderError(
            f"client registration at {endpoint} gave an unusable {key} ({size}; at most "
            f"{MAX_CREDENTIAL}); nothing was kept"
        )
    if not _CREDENTIAL[key].fullmatch(value):
        raise ProviderError(
            f"client registration at {endpoint} gave a {key} with characters a {key} cannot "
            "have (control characters, line breaks or non-ASCII); nothing was kept"
        )


def _show(value: object, limit: int = 100) -> str:
    """A value from the network, fit for one terminal line."""
    return f"'{_clean(value if isinstance(value, str) else json.dumps(value), limit)}'"
