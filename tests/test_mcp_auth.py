"""MCP authorization corners (issue 19): step-up after a 403 ``insufficient_scope`` in
``api`` and every session, where a person can sign in and where no one can; the resource
identifier a root metadata document may name; the parts of the scope challenge.

The official conformance suite (tests/conformance, run by scripts/test) covers the
same points against its own servers; these run against the toy API of resource_apps.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator

import pytest
from resource_apps import FOLLOWING_BROWSER, ProtectedApi, Served
from support import read_record, run_cli

from loopback_login._profiles.resource import (
    accepted_identifiers,
    insufficient_scope,
    parse_registration_response,
)
from loopback_login._using.target import step_up_scope

CHALLENGE = 'Bearer error="insufficient_scope", scope="api write", resource_metadata="x"'


def test_the_scope_a_403_asks_for() -> None:
    assert insufficient_scope([CHALLENGE]) == "api write"
    assert insufficient_scope(['Bearer error="invalid_token", scope="api"']) is None
    assert insufficient_scope(['Basic realm="x"', 'Bearer error="insufficient_scope"']) is None
    # The union of the granted and the required scopes, in that order.
    assert step_up_scope(403, [CHALLENGE], "api offline", None) == "api offline write"
    assert step_up_scope(403, [CHALLENGE], None, None) == "api write"
    # Bounded: not on a 401 or a 403 without the challenge, not when every scope named is
    # granted already (signing in again cannot help), not for the scope asked for last.
    assert step_up_scope(401, [CHALLENGE], "api", None) is None
    assert step_up_scope(403, [], "api", None) is None
    assert step_up_scope(403, [CHALLENGE], "write api", None) is None
    assert step_up_scope(403, [CHALLENGE], "api", "api write") is None


def test_root_metadata_may_name_the_origin() -> None:
    # RFC 9728 §3.3: the identifier that formed the URL the document came from.
    root = "https://h.example/.well-known/oauth-protected-resource"
    inserted = "https://h.example/.well-known/oauth-protected-resource/mcp"
    assert accepted_identifiers("https://h.example/mcp", root) == (
        "https://h.example/mcp",
        "https://h.example",
        "https://h.example/",
    )
    assert accepted_identifiers("https://h.example/mcp", inserted) == ("https://h.example/mcp",)
    assert accepted_identifiers("https://h.example/mcp", "https://h.example/custom.json") == (
        "https://h.example/mcp",
    )


def test_a_registration_with_a_secret_and_no_method_is_client_secret_basic() -> None:
    # RFC 7591 §2: an omitted token_endpoint_auth_method means client_secret_basic.
    redirect = "http://127.0.0.1:1/callback"
    answer = {"client_id": "c", "client_secret": "s", "redirect_uris": [redirect]}
    registration = parse_registration_response(
        "https://as/r", 201, json.dumps(answer).encode(), redirect
    )
    assert registration.client_auth == "basic"
    public = parse_registration_response(
        "https://as/r", 201, json.dumps({"client_id": "c"}).encode(), redirect
    )
    assert public.client_auth == "none"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProtectedApi]:
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    protected = ProtectedApi(write_scope="write")
    served = Served(protected)
    try:
        done = run_cli("login", "work", "--resource", protected.resource, env=FOLLOWING_BROWSER)
        assert done.returncode == 0, done.stderr
        assert protected.authorize_queries[0]["scope"] == "api offline"
        yield protected
    finally:
        served.close()


def _stepped_up(api: ProtectedApi) -> None:
    assert len(api.authorize_queries) == 2
    assert api.authorize_queries[1]["scope"] == "api offline write"  # the union
    assert read_record("work")["scope"] == "api offline write"


def test_api_signs_in_again_for_the_scope_then_retries(api: ProtectedApi) -> None:
    done = run_cli("api", "work", "-X", "POST", api.resource, env=FOLLOWING_BROWSER)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"hello": "you"}
    assert "The API needs the scope 'api offline write'" in done.stderr
    _stepped_up(api)


def test_where_no_one_can_sign_in_exit_3_names_the_scope(api: ProtectedApi) -> None:
    done = run_cli("api", "work", "-X", "POST", api.resource)  # no $BROWSER, no display
    assert done.returncode == 3
    assert done.stderr.strip().splitlines()[-1] == (
        "loopback-login: the API needs the scope 'api offline write', which the token of "
        "profile 'work' was not granted, and no one can sign in here (no graphical display: "
        "DISPLAY and WAYLAND_DISPLAY are unset); run `loopback-login login work --scope "
        "'api offline write'`"
    )
    assert len(api.authorize_queries) == 1


@pytest.fixture
def person(monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone who can sign in: a browser (consent is automatic)."""
    monkeypatch.setenv("BROWSER", FOLLOWING_BROWSER["BROWSER"])


def test_requests_auth_steps_up(api: ProtectedApi, person: None) -> None:
    import requests

    import loopback_login

    with requests.Session() as http:
        http.auth = loopback_login.RequestsAuth("work")
        response = http.post(api.resource, json={"a": 1})
    assert response.status_code == 200 and [r.status_code for r in response.history] == [403]
    _stepped_up(api)


def test_httpx_auth_steps_up(api: ProtectedApi, person: None) -> None:
    import httpx

    import loopback_login

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(auth=loopback_login.HttpxAuth("work")) as http:
            return await http.post(api.resource, json={"a": 1})

    response = asyncio.run(post())
    assert response.status_code == 200
    _stepped_up(api)


def test_aiohttp_session_steps_up(api: ProtectedApi, person: None) -> None:
    import loopback_login

    async def post() -> int:
        async with (
            loopback_login.session("work") as http,
            http.post(api.resource, json={"a": 1}) as response,
        ):
            return response.status

    assert asyncio.run(post()) == 200
    _stepped_up(api)
    # The same request again: the stored token has the scope now, no third sign-in.
    assert asyncio.run(post()) == 200
    assert len(api.authorize_queries) == 2


def test_sessions_without_a_person_raise_login_required(api: ProtectedApi) -> None:
    import requests

    import loopback_login

    assert "BROWSER" not in os.environ
    with requests.Session() as http:
        http.auth = loopback_login.RequestsAuth("work")
        with pytest.raises(
            loopback_login.LoginRequired, match="needs the scope 'api offline write'"
        ):
            http.post(api.resource, json={"a": 1})
    assert len(api.authorize_queries) == 1


def test_a_2025_03_26_server_is_its_own_authorization_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    # No resource metadata anywhere, no resource_metadata in the 401.
    old = ProtectedApi(metadata="missing", www_authenticate=False)
    served = Served(old)
    try:
        done = run_cli("login", "old", "--resource", old.resource, env=FOLLOWING_BROWSER)
        assert done.returncode == 0, done.stderr
        assert len(old.registered) == 1 and read_record("old")["issuer"] == old.base_url
        # Metadata at the origin naming an issuer elsewhere is not followed.
        old.issuer = "https://elsewhere.example"
        refused = run_cli("login", "other", "--resource", old.resource, env=FOLLOWING_BROWSER)
        assert refused.returncode == 4
        assert "names an issuer on another origin ('https://elsewhere.example')" in refused.stderr
        assert len(old.authorize_queries) == 1
    finally:
        served.close()


def test_a_client_registered_by_hand_needs_no_redirect_uri(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # RFC 8252 §7.3: a loopback redirect on any free port; no --redirect-uri to know.
    monkeypatch.setenv("LOOPBACK_LOGIN_CLIENT_SECRET", "by-hand-secret")
    protected = ProtectedApi()
    served = Served(protected)
    try:
        args = ["login", "hand", "--resource", protected.resource, "--client-id", "by-hand"]
        done = run_cli(*args, env=FOLLOWING_BROWSER)
    finally:
        served.close()
    assert done.returncode == 0, done.stderr
    assert protected.registered == []
    [query] = protected.authorize_queries
    redirect = query["redirect_uri"]
    assert redirect.startswith("http://127.0.0.1:") and redirect.endswith("/callback")
    assert not redirect.startswith("http://127.0.0.1:0/")
    # The toy server's metadata offers only "none": the secret is not sent.
    assert protected.token_forms[-1]["redirect_uri"] == redirect
    assert "client_secret" not in protected.token_forms[-1]
    assert protected.token_auth == [None]
