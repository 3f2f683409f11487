"""OpenID Connect: discovery (RFC 8414 / OIDC Discovery), nonce and id_token checks."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from loopback_login._errors import ConfigError, InvalidIdToken, ProviderError
from loopback_login._profiles.discovery import discover, metadata_urls, parse_metadata
from loopback_login._profiles.profile import resolve_profile
from loopback_login._protocol import ClientAuth, authorize_request, check_id_token
from loopback_login._store import Store
from loopback_login._tokens.record import jwt_claims

ISSUER = "https://idp.example"


def _metadata(**extra: object) -> bytes:
    return json.dumps(
        {
            "issuer": ISSUER,
            "authorization_endpoint": f"{ISSUER}/auth",
            "token_endpoint": f"{ISSUER}/token",
            **extra,
        }
    ).encode()


def test_metadata_urls() -> None:
    assert metadata_urls("https://idp.example") == [
        "https://idp.example/.well-known/openid-configuration",
        "https://idp.example/.well-known/oauth-authorization-server",
    ]
    assert metadata_urls("https://idp.example/tenant/") == [
        "https://idp.example/tenant/.well-known/openid-configuration",
        "https://idp.example/.well-known/oauth-authorization-server/tenant",
    ]


def test_metadata_parsing_and_defaults() -> None:
    plain = parse_metadata(ISSUER, _metadata())
    assert plain.token_endpoint == f"{ISSUER}/token"
    assert plain.code_challenge_methods is None and not plain.iss_parameter_supported
    assert plain.token_endpoint_auth_methods == ("client_secret_basic",)
    full = parse_metadata(
        ISSUER,
        _metadata(
            revocation_endpoint=f"{ISSUER}/revoke",
            code_challenge_methods_supported=["S256"],
            authorization_response_iss_parameter_supported=True,
            token_endpoint_auth_methods_supported=["client_secret_post"],
        ),
    )
    assert full.revocation_endpoint == f"{ISSUER}/revoke" and full.iss_parameter_supported


@pytest.mark.parametrize(
    "body",
    [
        b"nope",
        b"[]",
        json.dumps({"issuer": "https://evil.example", "token_endpoint": "x"}).encode(),
        json.dumps({"issuer": ISSUER}).encode(),
    ],
)
def test_bad_metadata_is_refused(body: bytes) -> None:
    with pytest.raises(ProviderError):
        parse_metadata(ISSUER, body)


def test_profile_from_metadata() -> None:
    metadata = parse_metadata(
        ISSUER,
        _metadata(
            revocation_endpoint=f"{ISSUER}/revoke",
            code_challenge_methods_supported=["plain"],
            authorization_response_iss_parameter_supported=True,
            token_endpoint_auth_methods_supported=["client_secret_post"],
        ),
    )
    profile = resolve_profile(
        "work", None, {"issuer": ISSUER, "client_id": "c", "client_secret": "s"}, metadata=metadata
    )
    assert (profile.authorize_url, profile.token_url) == (f"{ISSUER}/auth", f"{ISSUER}/token")
    assert profile.revocation_url == f"{ISSUER}/revoke"
    assert profile.issuer == ISSUER and profile.issuer_required
    assert profile.pkce is True  # S256 even where the metadata lists only plain
    assert profile.client_auth is ClientAuth.POST
    explicit = resolve_profile(
        "work",
        {"token_url": "https://other.example/t"},
        {"issuer": ISSUER, "client_id": "c", "client_secret": "s"},
        metadata=metadata,
    )
    assert explicit.token_url == "https://other.example/t"
    with pytest.raises(ConfigError, match="not both"):
        resolve_profile(
            "w",
            None,
            {"issuer": ISSUER, "provider": "honeywell", "client_id": "c"},
            metadata=metadata,
        )


def test_nonce_is_sent_with_openid_only() -> None:
    openid = authorize_request(
        f"{ISSUER}/auth",
        client_id="c",
        redirect_uri="http://127.0.0.1:1/",
        scope="openid offline_access",
    )
    params = parse_qs(urlsplit(openid.url).query)
    assert openid.nonce and params["nonce"] == [openid.nonce] and openid.nonce != openid.state
    plain = authorize_request(
        f"{ISSUER}/auth", client_id="c", redirect_uri="http://127.0.0.1:1/", scope="read"
    )
    assert plain.nonce is None and "nonce" not in parse_qs(urlsplit(plain.url).query)


def _jwt(**claims: object) -> str:
    def part(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


def test_id_token_checks() -> None:
    now = time.time()
    good = dict(iss=ISSUER, aud="c", exp=now + 300, nonce="n", sub="alice")
    assert (
        check_id_token(_jwt(**good), issuer=ISSUER, client_id="c", nonce="n", now=now)["sub"]
        == "alice"
    )
    claims = jwt_claims(_jwt(**good))
    assert claims is not None and claims["sub"] == "alice"
    bad = [
        ({**good, "iss": "https://evil.example"}, "issued by"),
        ({**good, "aud": "other"}, "aud"),
        ({**good, "aud": ["c", "other"]}, "azp"),
        ({**good, "exp": now - 3600}, "expired"),
        ({**good, "nonce": "replayed"}, "nonce"),
        ({k: v for k, v in good.items() if k != "nonce"}, "nonce"),
    ]
    for claims, message in bad:
        with pytest.raises(InvalidIdToken, match=message):
            check_id_token(_jwt(**claims), issuer=ISSUER, client_id="c", nonce="n", now=now)
    with pytest.raises(InvalidIdToken, match="readable"):
        check_id_token("not-a-jwt", issuer=ISSUER, client_id="c", nonce=None, now=now)
    # Several audiences are fine with the right azp.
    check_id_token(
        _jwt(**{**good, "aud": ["c", "x"], "azp": "c"}),
        issuer=ISSUER,
        client_id="c",
        nonce="n",
        now=now,
    )


@pytest.fixture
async def metadata_server(aiohttp_server: AiohttpServer) -> tuple[str, list[str]]:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        issuer = f"http://127.0.0.1:{request.url.port}"
        if request.path == "/.well-known/openid-configuration":
            return web.json_response(
                {
                    "issuer": issuer,
                    "authorization_endpoint": f"{issuer}/a",
                    "token_endpoint": f"{issuer}/t",
                }
            )
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/"), seen


async def test_discovery_is_cached_per_profile(metadata_server: tuple[str, list[str]]) -> None:
    issuer, seen = metadata_server
    store = Store()
    first = await discover(issuer, store=store, name="work")
    assert first.token_endpoint == f"{issuer}/t"
    again = await discover(issuer, store=store, name="work")
    # Both documents are read (they may differ), once.
    assert again == first
    assert seen == ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
    # A day later they are read again.
    await discover(issuer, store=store, name="work", now=time.time() + 2 * 86400)
    assert len(seen) == 4
    with pytest.raises(ProviderError, match="publishes no metadata"):
        await discover(f"{issuer}/nothing-here")
