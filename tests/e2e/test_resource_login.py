"""`login --resource URL` in headless Chromium against the certified OpenID provider with
dynamic registration (RFC 7591) and resource indicators (RFC 8707) turned on, behind a
small API that publishes RFC 9728 metadata: no client id, no endpoint given."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from resource_apps import ProtectedApi, Served
from support import expire, read_record, run_cli, start_cli, token_path

from loopback_login._tokens.record import jwt_claims

Catcher = tuple[dict[str, str], Callable[[], str]]
Camera = Any  # conftest's: screenshots in tests/e2e/artifacts
E2E = Path(__file__).parent


@pytest.fixture
def protected_api() -> Iterator[ProtectedApi]:
    """The API, its metadata naming the provider started by `resource_provider`."""
    api = ProtectedApi(authorization_servers=[], scopes=["openid", "offline_access", "api"])
    served = Served(api)
    try:
        yield api
    finally:
        served.close()


@pytest.fixture
def resource_provider(protected_api: ProtectedApi) -> Iterator[str]:
    """tests/e2e/resource_provider.mjs for the API; its issuer, also named by the API."""
    node = shutil.which("node")
    assert node is not None, "Node.js 20 or newer (scripts/test checks it)"
    assert (E2E / "node_modules" / "oidc-provider").exists(), "`npm ci` in tests/e2e"
    process = subprocess.Popen(
        [node, str(E2E / "resource_provider.mjs")],
        env={**os.environ, "RESOURCE": protected_api.resource},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("READY "), f"the provider did not start: {line!r}"
        issuer = line.split()[1]
        assert protected_api.authorization_servers is not None
        protected_api.authorization_servers.append(issuer)
        yield issuer
    finally:
        process.terminate()
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()


def _sign_in_and_consent(page: Any, camera: Camera, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("input[name=login]")
    camera.shot("login")
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Continue")
    camera.shot("consent")
    page.click("button[type=submit]")
    page.wait_for_selector("text=You are logged in")
    camera.shot("final")


def _audience(access_token: str) -> list[str]:
    claims = jwt_claims(access_token)
    assert claims is not None, "the access token for the resource is a JWT"
    aud = claims["aud"]
    return aud if isinstance(aud, list) else [aud]


def _call_api(url: str, access_token: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {access_token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _login(
    api: ProtectedApi, page: Any, camera: Camera, url_catcher: Catcher
) -> tuple[int, str, str]:
    env, next_url = url_catcher
    # Nothing but the API's URL (and prompt=consent, which this provider wants for offline_access).
    process = start_cli("login", "work", "--resource", api.resource, "--prompt", "consent", env=env)
    try:
        _sign_in_and_consent(page, camera, next_url())
    finally:
        stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr


def test_login_with_only_the_resource_at_a_certified_provider(
    protected_api: ProtectedApi,
    resource_provider: str,
    chromium: Any,
    page: tuple[Any, Camera],
    url_catcher: Catcher,
    isolated_env: Path,
) -> None:
    browser_page, camera = page
    returncode, stdout, stderr = _login(protected_api, browser_page, camera, url_catcher)
    assert returncode == 0, stderr
    # The provider's id_token says who (issue 13's summary).
    assert stdout.startswith("Logged in as alice: profile 'work' (oidc)"), stdout
    assert f"Registered loopback-login at {resource_provider}/reg" in stderr

    config = tomllib.loads((isolated_env / "config.toml").read_text())
    table = config["profiles"]["work"]
    client_id, redirect = table["client_id"], table["redirect_uri"]
    assert table["resource"] == protected_api.resource
    assert table["dynamic_registration"]["issuer"] == resource_provider
    assert redirect.startswith("http://127.0.0.1:") and redirect.endswith("/callback")
    # oidc-provider hands out a registration access token: a secret, kept out of the token file.
    assert table["registration_access_token"]
    assert table["registration_access_token"] not in token_path("work").read_text()

    # RFC 8707: the access token is a JWT for the API, which accepts it.
    record = read_record("work")
    assert record["client_id"] == client_id and record["issuer"] == resource_provider
    assert _audience(record["access_token"]) == [protected_api.resource]
    assert _call_api(protected_api.resource, record["access_token"]) == {"hello": "alice"}
    assert record["refresh_token"]

    # The refresh asks for the same resource: the new token is for the API too.
    expire("work")
    refreshed = run_cli("token", "work")
    assert refreshed.returncode == 0, refreshed.stderr
    fresh = refreshed.stdout.strip()
    assert fresh != record["access_token"]
    assert _audience(fresh) == [protected_api.resource]
    assert _call_api(protected_api.resource, fresh) == {"hello": "alice"}

    status = run_cli("status", "work")
    assert f"{protected_api.resource} (registered client)" in status.stdout

    # A second login (a new browser, signed out) reuses the registered client.
    context = chromium.new_context()
    try:
        second = context.new_page()
        second.set_default_timeout(20_000)
        camera.page = second
        returncode, _, stderr = _login(protected_api, second, camera, url_catcher)
    finally:
        context.close()
    assert returncode == 0, stderr
    assert "Registered" not in stderr
    again = tomllib.loads((isolated_env / "config.toml").read_text())["profiles"]["work"]
    assert (again["client_id"], again["redirect_uri"]) == (client_id, redirect)
    assert read_record("work")["client_id"] == client_id
