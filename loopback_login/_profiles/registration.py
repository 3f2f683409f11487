"""Logging in with nothing but the API's URL: the requests.

RFC 9728 discovery of the authorization server, RFC 8414 / OIDC metadata
(:mod:`._discovery`), RFC 7591 registration when the profile has no client id.
What the registration returns is kept in the profile's table of
``config.toml``, so later logins reuse it. The pure parts are in
:mod:`._resource`.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import aiohttp

from .._errors import ConfigError, ProviderError
from .._http.client import client_session, read_body
from .._store import Store
from .discovery import Metadata, check_server_url, discover, discover_legacy, same_origin
from .resource import (
    Registration,
    ResourceMetadata,
    challenge_scope,
    choose_authorization_server,
    client_name,
    default_scope,
    parse_registration_response,
    parse_resource_metadata,
    refused_for_metadata,
    registration_request,
    resource_metadata_url,
    well_known_urls,
)

#: RFC 8252 §7.3: a loopback redirect URI on whatever port is free when the login binds.
ANY_PORT_REDIRECT = "http://127.0.0.1:0/callback"

#: The table (in ``[profiles.NAME]``) that says the client was registered by us, and where.
REGISTRATION_TABLE = "dynamic_registration"


class Prepared(NamedTuple):
    """A profile's table and flags once its resource is discovered (and its client registered)."""

    table: dict[str, Any]
    flags: dict[str, Any]
    metadata: Metadata


async def prepare(
    store: Store,
    name: str,
    resource: str,
    table: Mapping[str, Any] | None,
    flags: Mapping[str, Any],
    *,
    register: bool,
    say: Callable[[str], None] = lambda line: None,
) -> Prepared:
    """Find the resource's authorization server, read its metadata, register if needed.

    ``register`` is for a login: a profile with no client id gets one from the
    authorization server (RFC 7591), kept in ``config.toml``; otherwise a
    missing client id is left for the profile's resolution to report.
    """
    table = dict(table or {})
    flags = dict(flags)
    wanted = flags.get("issuer") or table.get("issuer")
    resource_metadata = await find_resource_metadata(resource)
    if resource_metadata is None:
        # MCP 2025-03-26: no resource metadata; the server's origin is its authorization server.
        metadata = await discover_legacy(resource)
        issuer = metadata.issuer
        scope = flags.get("scope") or table.get("scope")
    else:
        issuer = choose_authorization_server(resource_metadata, wanted)
        metadata = await discover(issuer, store=store, name=name)
        # RFC 8707 + RFC 9728 §2: ask for what the resource says it supports.
        scope = flags.get("scope") or table.get("scope") or default_scope(resource_metadata)
        if scope and not (flags.get("scope") or table.get("scope")):
            flags["scope"] = scope
    # A client id the person gave (flag or table) is used as it is; one we
    # registered is used again while it fits, else replaced.
    given_client = flags.get("client_id") or (
        table.get("client_id") and not isinstance(table.get(REGISTRATION_TABLE), dict)
    )
    document = flags.get("client_metadata_url") or table.get("client_metadata_url")
    if given_client or (document and metadata.client_id_metadata_document_supported):
        if not given_client:
            # OAuth Client ID Metadata Documents: the document's URL is the client id
            # (after a client id given, before registration, as MCP 2025-11-25 orders them).
            _check_url("client metadata document URL", str(document))
            flags["client_id"] = document
        if not (flags.get("redirect_uri") or table.get("redirect_uri")):
            # Registered by hand (or in the document) without the person knowing a port:
            # a loopback redirect on any port (RFC 8252 §7.3: servers allow any port).
            flags["redirect_uri"] = ANY_PORT_REDIRECT
    elif register:
        if not await _reusable(table, flags, resource, issuer, say):
            await _register(store, name, resource, issuer, metadata, flags, scope, say)
            table = store.profile_table(name) or {}
        # Registered by us, now or by an earlier login: nobody typed its id or secret, so
        # there is nothing for the client check to catch (see _login.client_check).
        flags["client_check"] = False
    return Prepared(table, flags, metadata)


async def _reusable(
    table: Mapping[str, Any],
    flags: Mapping[str, Any],
    resource: str,
    issuer: str,
    say: Callable[[str], None],
) -> bool:
    """Is the client registered by an earlier login good for this one?"""
    registration = table.get(REGISTRATION_TABLE)
    if not (
        isinstance(registration, dict)
        and registration.get("issuer") == issuer
        and table.get("resource") == resource
        and bool(table.get("client_id"))
        and flags.get("redirect_uri") in (None, table.get("redirect_uri"))
    ):
        return False
    uri, token = registration.get("registration_client_uri"), registration_access_token(table)
    endpoint = registration.get("registration_endpoint")
    if not (isinstance(uri, str) and isinstance(endpoint, str)) or token is None:
        return True
    if not same_origin(uri, endpoint):
        # The registration access token is a credential for the registration
        # endpoint (RFC 7592 §1): never sent to another origin, whatever the
        # server named as the client's URI (another host, another loopback port).
        return True
    # RFC 7592 §2.1: ask whether the server still knows the client (servers that keep
    # clients in memory forget them on restart); only a clear "no" registers again.
    try:
        _check_url("registration client URI", uri)
        async with (
            client_session(uri) as session,
            session.get(
                uri,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                allow_redirects=False,
            ) as response,
        ):
            gone = response.status in (401, 403, 404)
    except (aiohttp.ClientError, TimeoutError, ProviderError):
        gone = False  # the login itself will tell
    if gone:
        say(f"The client registered earlier is no longer known at {uri}: registering again")
    return not gone


async def _register(
    store: Store,
    name: str,
    resource: str,
    issuer: str,
    metadata: Metadata,
    flags: Mapping[str, Any],
    scope: str | None,
    say: Callable[[str], None],
) -> Registration:
    endpoint = metadata.registration_endpoint
    if endpoint is None:
        raise ConfigError(
            f"the authorization server {issuer} offers no client registration (RFC 7591): "
            "register a client there by hand and pass --client-id and --redirect-uri"
        )
    _check_url("registration endpoint", endpoint)
    redirect_uri = flags.get("redirect_uri") or _loopback_redirect_uri()
    body = registration_request(redirect_uri, name=client_name(socket.gethostname()), scope=scope)
    status, answer = await _post_registration(endpoint, body)
    if scope and refused_for_metadata(status, answer):
        # Some servers register only server-wide scopes and refuse a resource's
        # (invalid_client_metadata); scope is optional (RFC 7591 §2): register
        # without it, and ask for it in the authorize request. Others (the MCP
        # SDK's) grant only the scopes registered: so it is sent first.
        body.pop("scope")
        status, answer = await _post_registration(endpoint, body)
    registration = parse_registration_response(endpoint, status, answer, redirect_uri)
    settings: dict[str, Any] = {
        "resource": resource,
        "client_id": registration.client_id,
        "redirect_uri": redirect_uri,
        "client_auth": registration.client_auth,
        # Replaced whole: nothing of an earlier registration outlives it.
        REGISTRATION_TABLE: {
            "issuer": issuer,
            "registration_endpoint": endpoint,
            "client_name": body["client_name"],
            **(
                {"registration_client_uri": registration.registration_client_uri}
                if registration.registration_client_uri
                else {}
            ),
        },
    }
    store.save_profile(name, settings)
    keep_registration_secrets(
        store,
        name,
        client_secret=registration.client_secret,
        registration_access_token=registration.registration_access_token,
        token_url=metadata.token_endpoint,
        client_id=registration.client_id,
    )
    say(
        f"Registered loopback-login at {endpoint} as client {registration.client_id} "
        f"(redirect URI {redirect_uri}); saved in {store.config_path}"
    )
    return registration


async def _post_registration(endpoint: str, body: Mapping[str, Any]) -> tuple[int, bytes]:
    try:
        async with (
            client_session(endpoint) as session,
            session.post(
                endpoint,
                json=body,
                headers={"Accept": "application/json"},
                allow_redirects=False,
            ) as response,
        ):
            return response.status, await read_body(response)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ProviderError(
            f"client registration: could not reach {endpoint} ({type(exc).__name__})"
        ) from None


def keep_registration_secrets(
    store: Store,
    name: str,
    *,
    client_secret: str | None,
    registration_access_token: str | None,
    token_url: str,
    client_id: str,
) -> None:
    """Keep the secrets a registration returned: the one place they are written.

    Never in the token file.

    A client secret is kept as any client secret is (:mod:`._secrets`: the OS
    keyring where there is one, else ``config.toml``); the registration access
    token (RFC 7592) in the profile's table of the 0600 ``config.toml``. ``None``
    removes what an earlier registration left.
    """
    from . import secrets as _secrets

    if client_secret is not None:
        _secrets.keep(store, name, client_secret, _secrets.binding(token_url, client_id))
    else:
        _secrets.delete(store, name)
    store.save_profile(name, {"registration_access_token": registration_access_token})


def registration_access_token(table: Mapping[str, Any]) -> str | None:
    """The registration access token :func:`keep_registration_secrets` kept, if any."""
    token = table.get("registration_access_token")
    return token if isinstance(token, str) and token else None


def _loopback_redirect_uri() -> str:
    """``http://127.0.0.1:PORT/callback`` with a port free now.

    The exception to binding once and reading the port back: the port must be
    registered before the first login binds it, and every later login binds
    the same one (servers compare redirect URIs exactly, RFC 7591 §2).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/callback"


#: MCP (streamable HTTP): the request a client opens with, sent to see the 401's challenge.
_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "loopback-login", "version": "1"},
    },
}


async def find_resource_metadata(resource: str) -> ResourceMetadata | None:
    """RFC 9728: the resource's metadata, named by its 401 or at its well-known URLs.

    ``None`` when it asks for a login (401) and publishes no metadata (404
    everywhere): an MCP server of the 2025-03-26 revision. Streamable-HTTP MCP
    endpoints often protect only POST (a GET answers 404 or 405): without a
    challenge to the GET, an MCP ``initialize`` is POSTed to see the 401 and its
    ``resource_metadata`` and ``scope``.
    """
    try:
        async with client_session(resource) as session:
            answered = await _challenges(session, resource)
            challenges = answered or []
            named = resource_metadata_url(challenges)
            if named is not None:
                _check_url("resource metadata URL", named, resource)
                candidates = [named]  # RFC 9728 §5.1: the server says where
            else:
                candidates = well_known_urls(resource)
            answers = []
            for url in candidates:
                async with session.get(
                    url, headers={"Accept": "application/json"}, allow_redirects=False
                ) as response:
                    if response.status == 200:
                        found = parse_resource_metadata(resource, url, await read_body(response))
                        return dataclasses.replace(
                            found, challenge_scope=challenge_scope(challenges)
                        )
                    answers.append((url, response.status))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ProviderError(
            f"protected resource discovery: could not reach {resource} ({type(exc).__name__})"
        ) from None
    if answered is not None and named is None and all(status == 404 for _, status in answers):
        return None  # a 401, and no metadata anywhere: a 2025-03-26 server
    raise ProviderError(
        f"protected resource discovery: {resource} publishes no metadata (RFC 9728; "
        f"{'; '.join(f'{url}: {status}' for url, status in answers)}); "
        "pass --issuer and --client-id instead"
    )


async def _challenges(session: aiohttp.ClientSession, resource: str) -> list[str] | None:
    """The ``WWW-Authenticate`` values of the resource's 401 to a GET, else to an MCP
    POST; ``None`` when neither was answered 401 (nothing asks for a login)."""
    async with session.get(
        resource, headers={"Accept": "application/json"}, allow_redirects=False
    ) as response:
        if response.status == 401:
            return response.headers.getall("WWW-Authenticate", [])
    async with session.post(
        resource,
        json=_INITIALIZE,
        headers={"Accept": "application/json, text/event-stream"},
        allow_redirects=False,
    ) as response:
        if response.status == 401:
            return response.headers.getall("WWW-Authenticate", [])
    return None


def _check_url(label: str, url: str, named_by: str | None = None) -> None:
    """A URL from a server's answer: https, or http to this machine (RFC 9728 §3, RFC 7591 §3)."""
    check_server_url(label, url, named_by or "the server")
