"""`login --resource URL`: RFC 9728 discovery, RFC 7591 registration, RFC 8707 resource.

The pure parts without an event loop; the whole login through the real CLI against a
small protected API with its own toy authorization server (tests/resource_apps.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from resource_apps import FOLLOWING_BROWSER, ProtectedApi, Served
from support import expire, read_record, run_cli, token_path

from loopback_login._errors import ConfigError, ProviderError
from loopback_login._profiles.resource import (
    ResourceMetadata,
    challenge_scope,
    choose_authorization_server,
    client_name,
    default_scope,
    parse_registration_response,
    parse_resource_metadata,
    parse_www_authenticate,
    registration_request,
    resource_metadata_url,
    well_known_urls,
)
from loopback_login._protocol import authorization_code_grant, authorize_request, refresh_grant

# --- pure -------------------------------------------------------------------------


def test_www_authenticate_challenges_and_their_parameters() -> None:
    value = (
        'Basic realm="a, b", DPoP algs="ES256", '
        'Bearer error="invalid_token", resource_metadata="https://api.example/.well-known/x\\"y"'
    )
    assert parse_www_authenticate(value) == [
        ("basic", {"realm": "a, b"}),
        ("dpop", {"algs": "ES256"}),
        (
            "bearer",
            {"error": "invalid_token", "resource_metadata": 'https://api.example/.well-known/x"y'},
        ),
    ]
    # A token68 is not a parameter nor a new scheme; names are case-insensitive.
    assert parse_www_authenticate("Negotiate abc==, BEARER Resource_Metadata=https://m") == [
        ("negotiate", {}),
        ("bearer", {"resource_metadata": "https://m"}),
    ]
    assert parse_www_authenticate('Bearer realm="never closed') == [("bearer", {})]


def test_resource_metadata_url_and_scope_prefer_bearer() -> None:
    headers = ['DPoP resource_metadata="https://d"', 'Bearer resource_metadata="https://b"']
    assert resource_metadata_url(headers) == "https://b"
    assert resource_metadata_url(['Bearer realm="x"']) is None
    assert resource_metadata_url([]) is None
    assert challenge_scope(['Bearer error="insufficient_scope", scope="read write"']) == (
        "read write"
    )
    assert challenge_scope(headers) is None
    # The 401's scope wins over everything the resource supports (as MCP clients do).
    metadata = ResourceMetadata("https://r", ("https://a",), ("read", "write", "admin"))
    assert default_scope(metadata) == "read write admin"
    assert default_scope(dataclasses.replace(metadata, challenge_scope="read")) == "read"


@pytest.mark.parametrize(
    ("resource", "urls"),
    [
        (
            "https://api.example.com/mcp",
            [
                "https://api.example.com/.well-known/oauth-protected-resource/mcp",
                "https://api.example.com/.well-known/oauth-protected-resource",
            ],
        ),
        # RFC 9728 §3.1: a terminating slash is removed; the query is kept.
        (
            "https://api.example.com/v1/?tenant=a",
            [
                "https://api.example.com/.well-known/oauth-protected-resource/v1?tenant=a",
                "https://api.example.com/.well-known/oauth-protected-resource",
            ],
        ),
        (
            "https://api.example.com",
            ["https://api.example.com/.well-known/oauth-protected-resource"],
        ),
    ],
)
def test_well_known_urls_insert_the_path_then_try_the_root(resource: str, urls: list[str]) -> None:
    assert well_known_urls(resource) == urls


def test_resource_metadata_must_name_the_resource_exactly() -> None:
    url = "https://api.example.com/.well-known/oauth-protected-resource/mcp"
    body = json.dumps(
        {
            "resource": "https://api.example.com/mcp",
            "authorization_servers": ["https://as.example", 7, "https://as2.example"],
            "scopes_supported": ["read", "write"],
        }
    ).encode()
    metadata = parse_resource_metadata("https://api.example.com/mcp", url, body)
    assert metadata.authorization_servers == ("https://as.example", "https://as2.example")
    assert default_scope(metadata) == "read write"
    # RFC 9728 §3.3: not even a trailing slash apart.
    with pytest.raises(ProviderError, match=r"RFC 9728 §3\.3") as caught:
        parse_resource_metadata("https://api.example.com/mcp/", url, body)
    assert url in str(caught.value)
    for bad in (
        b"[]",
        b"not json",
        json.dumps({"resource": "https://api.example.com/mcp"}).encode(),
    ):
        with pytest.raises(ProviderError, match=r"api\.example\.com"):
            parse_resource_metadata("https://api.example.com/mcp", url, bad)


def test_choosing_the_authorization_server() -> None:
    metadata = ResourceMetadata("https://r", ("https://a", "https://b"))
    assert choose_authorization_server(metadata, None) == "https://a"
    assert choose_authorization_server(metadata, "https://b") == "https://b"
    with pytest.raises(ProviderError, match="not protected by the issuer https://c"):
        choose_authorization_server(metadata, "https://c")
    assert default_scope(metadata) is None


def test_registration_request_is_a_native_public_client() -> None:
    body = registration_request(
        "http://127.0.0.1:5000/callback", name=client_name("laptop"), scope="api offline"
    )
    assert body == {
        "client_name": "loopback-login on laptop",
        "redirect_uris": ["http://127.0.0.1:5000/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
        "software_id": "loopback-login",
        "scope": "api offline",
    }
    assert "scope" not in registration_request("http://127.0.0.1:1/callback", name="x")


def test_registration_responses() -> None:
    endpoint, redirect = "https://as.example/register", "http://127.0.0.1:1/callback"
    answer = {
        "client_id": "abc",
        "redirect_uris": [redirect],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": "s3cret",
        "registration_access_token": "rat",
    }
    registration = parse_registration_response(endpoint, 201, json.dumps(answer).encode(), redirect)
    assert (registration.client_id, registration.client_auth) == ("abc", "basic")
    assert (
        registration.client_secret == "s3cret" and registration.registration_access_token == "rat"
    )
    assert "s3cret" not in repr(registration) and "rat'" not in repr(registration)
    with pytest.raises(ProviderError, match="did not keep the redirect URI"):
        parse_registration_response(
            endpoint, 201, json.dumps({**answer, "redirect_uris": ["http://x"]}).encode(), redirect
        )
    with pytest.raises(ProviderError, match="cannot use"):
        parse_registration_response(
            endpoint,
            201,
            json.dumps(
                {"client_id": "a", "token_endpoint_auth_method": "private_key_jwt"}
            ).encode(),
            redirect,
        )
    with pytest.raises(
        ProviderError,
        # The ESC from the server is shown escaped (as all provider text is), never raw.
        match=r"as\.example/register was refused \(HTTP 400, 'invalid_redirect_uri': 'no\\x1b'\)",
    ) as caught:
        parse_registration_response(
            endpoint,
            400,
            json.dumps({"error": "invalid_redirect_uri", "error_description": "no\x1b"}).encode(),
            redirect,
        )
    assert "\x1b" not in str(caught.value)
    with pytest.raises(ProviderError, match="without a client_id"):
        parse_registration_response(endpoint, 201, b"{}", redirect)


def test_resource_goes_in_the_authorize_token_and_refresh_requests() -> None:
    resource = "https://api.example.com/mcp"
    request = authorize_request(
        "https://as.example/authorize",
        client_id="c",
        redirect_uri="http://127.0.0.1:1/callback",
        resource=resource,
    )
    assert parse_qs(urlsplit(request.url).query)["resource"] == [resource]
    code = dict(authorization_code_grant("code", "http://127.0.0.1:1/callback", "v", resource))
    assert code["resource"] == resource
    assert dict(refresh_grant("rt", resource=resource))["resource"] == resource
    assert "resource" not in dict(refresh_grant("rt"))
    # The flow owns it: an extra authorize parameter may not replace it.
    with pytest.raises(ConfigError, match="'resource' is set by loopback-login"):
        authorize_request(
            "https://as.example/authorize",
            client_id="c",
            redirect_uri="http://127.0.0.1:1/callback",
            extra_params={"resource": "https://elsewhere"},
        )


# --- the CLI against a protected API ------------------------------------------------


@pytest.fixture
def api() -> Iterator[ProtectedApi]:
    protected = ProtectedApi()
    served = Served(protected)
    try:
        yield protected
    finally:
        served.close()


def _config(isolated_env: Path) -> dict[str, object]:
    return tomllib.loads((isolated_env / "config.toml").read_text())


def _login(api: ProtectedApi, *extra: str, profile: str = "work") -> tuple[int, str, str]:
    result = run_cli("login", profile, "--resource", api.resource, *extra, env=FOLLOWING_BROWSER)
    return result.returncode, result.stdout, result.stderr


def test_login_with_only_the_resource_registers_and_binds_tokens(
    api: ProtectedApi, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    returncode, stdout, stderr = _login(api)
    assert returncode == 0, stderr
    assert stdout.startswith("Logged in: profile 'work'")

    # RFC 7591: one registration, as a native public client on a loopback redirect.
    [registered] = api.registered
    assert registered["token_endpoint_auth_method"] == "none"
    assert registered["application_type"] == "native"
    assert registered["grant_types"] == ["authorization_code", "refresh_token"]
    assert registered["client_name"] == f"loopback-login on {socket.gethostname()}"
    assert registered["scope"] == "api offline"  # the resource's scopes_supported
    [redirect] = registered["redirect_uris"]
    parts = urlsplit(redirect)
    assert (parts.scheme, parts.hostname, parts.path) == ("http", "127.0.0.1", "/callback")
    assert parts.port and parts.port > 0

    # RFC 8707: resource in the authorize and the token request.
    [query] = api.authorize_queries
    assert query["resource"] == api.resource and query["client_id"] == "client-1"
    assert query["redirect_uri"] == redirect and query["scope"] == "api offline"
    # No client check (issue 13's made-up code): a public client registered a moment ago.
    [form] = api.token_forms
    assert form["resource"] == api.resource and form["grant_type"] == "authorization_code"
    assert form["client_id"] == "client-1" and form["redirect_uri"] == redirect

    # Kept in the profile's table without --save; the secret there, never in the token file.
    table = _config(isolated_env)["profiles"]["work"]  # type: ignore[index]
    assert table["resource"] == api.resource and table["client_id"] == "client-1"
    assert table["redirect_uri"] == redirect
    assert table["dynamic_registration"]["issuer"] == api.base_url
    assert table["registration_access_token"] == "rat-secret-1"
    assert "client_secret" not in table  # a public client: none was given
    assert os.stat(isolated_env / "config.toml").st_mode & 0o777 == 0o600
    assert "rat-secret" not in token_path("work").read_text()
    assert "rat-secret" not in stdout + stderr
    record = read_record("work")
    assert record["resource"] == api.resource and record["api_base_url"] == api.resource
    assert record["client_id"] == "client-1" and record["client_auth"] == "none"

    status = run_cli("status", "work")
    assert f"{api.resource} (registered client)" in status.stdout

    # The token is the API's: it answers with it.
    token = run_cli("token", "work", "--header").stdout.strip()
    assert token == f"Authorization: Bearer {record['access_token']}"

    # A refresh keeps the resource (RFC 8707 §2.2).
    expire("work")
    refreshed = run_cli("token", "work")
    assert refreshed.returncode == 0, refreshed.stderr
    assert api.token_forms[-1]["grant_type"] == "refresh_token"
    assert api.token_forms[-1]["resource"] == api.resource

    # A second login reuses the registration and its redirect URI.
    returncode, _, stderr = _login(api)
    assert returncode == 0, stderr
    assert len(api.registered) == 1
    assert api.authorize_queries[-1]["client_id"] == "client-1"
    assert api.authorize_queries[-1]["redirect_uri"] == redirect

    # A server that forgot the client (RFC 7592 read: 404) gets a new registration.
    api.forget_clients = True
    returncode, _, stderr = _login(api)
    assert returncode == 0, stderr
    assert "no longer known" in stderr and len(api.registered) == 2
    table = _config(isolated_env)["profiles"]["work"]  # type: ignore[index]
    assert api.authorize_queries[-1]["client_id"] == table["client_id"] != "client-1"
    assert table["registration_access_token"] != "rat-secret-1"


def test_login_with_a_client_id_and_no_www_authenticate(api: ProtectedApi) -> None:
    """--client-id skips registration; without a 401 challenge the well-known URL is found."""
    api.www_authenticate = False
    api.scopes = ["api"]
    redirect = "http://127.0.0.1:0/callback"
    returncode, _, stderr = _login(
        api, "--client-id", "mine", "--redirect-uri", redirect, "--scope", "custom"
    )
    assert returncode == 0, stderr
    assert api.registered == []
    [query] = api.authorize_queries
    assert query["client_id"] == "mine" and query["scope"] == "custom"
    assert query["resource"] == api.resource


@pytest.mark.parametrize(
    ("setup", "exit_code", "expected"),
    [
        ("missing", 4, "protected resource discovery: {resource} publishes no metadata"),
        ("mismatch", 4, "is for '{base}/other', not {resource} (RFC 9728 §3.3)"),
        ("refused", 4, "client registration at {base}/register was refused (HTTP 400"),
        ("absent", 2, "the authorization server {base} offers no client registration"),
    ],
)
def test_each_step_fails_in_one_line_naming_it(
    api: ProtectedApi, isolated_env: Path, setup: str, exit_code: int, expected: str
) -> None:
    if setup in ("missing", "mismatch"):
        api.metadata = setup
    else:
        api.registration = setup
    returncode, stdout, stderr = _login(api)
    assert returncode == exit_code, stderr
    assert stdout == ""
    last = stderr.splitlines()[-1]
    assert last.startswith("loopback-login: ")
    assert expected.format(resource=api.resource, base=api.base_url) in last
    assert "Traceback" not in stderr
    assert api.authorize_queries == []  # no browser was sent anywhere
    assert not token_path("work").exists()
    assert not (isolated_env / "config.toml").exists()  # nothing half-registered


def test_unreachable_resource_and_bad_flags(isolated_env: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    resource = f"http://127.0.0.1:{port}/api"
    result = run_cli("login", "work", "--resource", resource, env=FOLLOWING_BROWSER)
    assert result.returncode == 4
    assert result.stderr.splitlines()[-1] == (
        f"loopback-login: protected resource discovery: could not reach {resource} "
        "(ClientConnectorError)"
    )
    plain = run_cli("login", "work", "--resource", "http://api.example.com/mcp")
    assert plain.returncode == 2 and "must use https" in plain.stderr
    both = run_cli("login", "work", "--resource", "https://a.example", "--provider", "demo")
    assert both.returncode == 2 and "--provider or --resource" in both.stderr


def test_python_login_takes_the_resource(api: ProtectedApi, isolated_env: Path) -> None:
    import loopback_login

    api.challenge_scope = "api"  # the 401 asks for less than the resource supports

    os.environ.update(FOLLOWING_BROWSER)
    try:
        token = loopback_login.login_sync("py", resource=api.resource)
    finally:
        del os.environ["BROWSER"]
    assert token.access_token.startswith("at-")
    assert len(api.registered) == 1 and api.registered[0]["scope"] == "api"
    assert api.authorize_queries[0]["scope"] == "api"
    assert api.token_forms[-1]["resource"] == api.resource
    assert read_record("py")["resource"] == api.resource
