"""The pure core, without sockets or an event loop."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from itertools import count
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote_plus, urlsplit

import pytest
from support import HONEYWELL_BASIC_VECTORS

from loopback_login._errors import (
    AuthorizationDenied,
    AuthorizationError,
    ConfigError,
    InvalidCallback,
    IssuerMismatch,
    StateMismatch,
    TokenEndpointError,
)
from loopback_login._protocol import (
    ClientAuth,
    authorization_code_grant,
    authorize_request,
    basic_credentials,
    means_login_required,
    new_code_verifier,
    new_state,
    parse_callback,
    parse_error_response,
    parse_token_response,
    s256_challenge,
    token_request,
)
from loopback_login._tokens.token import Token

# --- test vectors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_id", "secret", "header"),
    HONEYWELL_BASIC_VECTORS,
)
def test_basic_credentials_match_the_seed_vectors(client_id: str, secret: str, header: str) -> None:
    assert basic_credentials(client_id, secret) == header


def test_basic_credentials_form_encode_before_base64() -> None:
    # RFC 6749 §2.3.1: a ':' in the id must not split it; '+', '%', '/' survive.
    header = basic_credentials("my:app", "a+b%c/d e")
    decoded = base64.b64decode(header.removeprefix("Basic ")).decode()
    raw_id, raw_secret = decoded.split(":", 1)
    assert raw_id == "my%3Aapp"
    assert unquote_plus(raw_id) == "my:app"
    assert unquote_plus(raw_secret) == "a+b%c/d e"


def test_pkce_s256_matches_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_rfc7636_appendix_b_verifier_from_its_octets() -> None:
    # The 32 octets as RFC 7636 Appendix B prints them.
    octets = bytes(
        json.loads("""
        [116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173,
        187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83,
        132, 141, 121]
        """)
    )
    assert new_code_verifier(lambda n: octets[:n]) == "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"


# --- state and the authorize URL ---------------------------------------------


def test_state_is_fresh_and_long() -> None:
    states = {new_state() for _ in range(100)}
    assert len(states) == 100
    assert all(len(base64.urlsafe_b64decode(s + "=")) * 8 >= 128 for s in states)


def _counting_bytes() -> Callable[[int], bytes]:
    counter = count(1)
    return lambda n: bytes([next(counter)]) * n


def test_authorize_url_carries_the_request() -> None:
    request = authorize_request(
        "https://api.honeywellhome.com/oauth2/authorize?tenant=x",
        client_id="123abc",
        redirect_uri="http://localhost:8080/callback",
        scope="read write",
        extra_params={"prompt": "consent"},
        token_bytes=_counting_bytes(),
    )
    parts = urlsplit(request.url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "api.honeywellhome.com",
        "/oauth2/authorize",
    )
    params = dict(parse_qsl(parts.query))
    assert params == {
        "tenant": "x",
        "response_type": "code",
        "client_id": "123abc",
        "redirect_uri": "http://localhost:8080/callback",
        "scope": "read write",
        "state": request.state,
        "code_challenge": s256_challenge(request.code_verifier or ""),
        "code_challenge_method": "S256",
        "prompt": "consent",
    }
    assert request.state != request.code_verifier
    assert "%20" in parts.query  # spaces as %20, not '+'
    # The verifier is the one secret here (the state travels in the URL anyway).
    assert str(request.code_verifier) not in repr(request)


def test_each_authorize_request_is_fresh() -> None:
    one = authorize_request("https://p/a", client_id="c", redirect_uri="http://127.0.0.1:1/")
    two = authorize_request("https://p/a", client_id="c", redirect_uri="http://127.0.0.1:1/")
    assert one.state != two.state and one.code_verifier != two.code_verifier


def test_authorize_without_pkce() -> None:
    request = authorize_request(
        "https://p/a", client_id="c", redirect_uri="http://127.0.0.1:1/", pkce=False
    )
    assert request.code_verifier is None
    assert "code_challenge" not in parse_qs(urlsplit(request.url).query)


def test_extra_params_cannot_replace_the_flows_own() -> None:
    with pytest.raises(ConfigError, match="state"):
        authorize_request(
            "https://p/a",
            client_id="c",
            redirect_uri="http://127.0.0.1:1/",
            extra_params={"state": "fixed"},
        )


# --- the callback -------------------------------------------------------------

STATE = "s" * 43


def test_callback_returns_the_code() -> None:
    assert parse_callback(f"code=abc%2Fdef&state={STATE}", expected_state=STATE) == "abc/def"


@pytest.mark.parametrize(
    "query",
    ["code=abc", "code=abc&state=", f"code=abc&state={STATE}x", "code=abc&state=other"],
)
def test_wrong_or_missing_state_is_a_state_mismatch(query: str) -> None:
    with pytest.raises(StateMismatch):
        parse_callback(query, expected_state=STATE)


def test_error_with_the_wrong_state_is_ignored_not_reported() -> None:
    with pytest.raises(StateMismatch):
        parse_callback("error=access_denied&state=forged", expected_state=STATE)


@pytest.mark.parametrize(
    "query",
    [
        f"code=a&code=b&state={STATE}",
        f"code=a&state={STATE}&state={STATE}",
        f"state={STATE}",
        f"code=&state={STATE}",
        f"code=%ff%fe&state={STATE}",
    ],
)
def test_malformed_callbacks_are_invalid(query: str) -> None:
    with pytest.raises(InvalidCallback):
        parse_callback(query, expected_state=STATE)


def test_error_callback_ends_with_the_providers_message() -> None:
    with pytest.raises(AuthorizationDenied) as caught:
        parse_callback(
            f"error=access_denied&error_description=User+said+no&state={STATE}",
            expected_state=STATE,
        )
    assert caught.value.error == "access_denied"
    assert "User said no" in str(caught.value)
    with pytest.raises(AuthorizationError) as other:
        parse_callback(f"error=server_error&state={STATE}", expected_state=STATE)
    assert not isinstance(other.value, AuthorizationDenied)


def test_error_description_is_cleaned_of_control_characters() -> None:
    with pytest.raises(AuthorizationError) as caught:
        parse_callback(
            f"error=x&error_description=a%0d%0a%1b[31mb&state={STATE}", expected_state=STATE
        )
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)


def test_issuer_rfc9207() -> None:
    issuer = "https://idp.example"
    ok = f"code=c&state={STATE}&iss=https%3A%2F%2Fidp.example"
    assert parse_callback(ok, expected_state=STATE, expected_issuer=issuer) == "c"
    with pytest.raises(IssuerMismatch):
        parse_callback(
            f"code=c&state={STATE}&iss=https%3A%2F%2Fevil.example",
            expected_state=STATE,
            expected_issuer=issuer,
        )
    # Missing iss: allowed unless the provider says it always sends one.
    assert (
        parse_callback(f"code=c&state={STATE}", expected_state=STATE, expected_issuer=issuer) == "c"
    )
    with pytest.raises(IssuerMismatch):
        parse_callback(
            f"code=c&state={STATE}",
            expected_state=STATE,
            expected_issuer=issuer,
            issuer_required=True,
        )
    # Without a known issuer, iss is ignored.
    assert parse_callback(f"code=c&state={STATE}&iss=whatever", expected_state=STATE) == "c"


# --- token requests -----------------------------------------------------------


def test_code_exchange_with_basic_auth() -> None:
    request = token_request(
        "https://p/oauth2/token",
        authorization_code_grant("the-code", "http://localhost:8080/callback", "verifier"),
        client_id="123abc",
        client_secret="456def",
        client_auth=ClientAuth.BASIC,
    )
    assert request.headers["Authorization"] == "Basic MTIzYWJjOjQ1NmRlZg=="
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(request.body.decode())) == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "http://localhost:8080/callback",
        "code_verifier": "verifier",
        "client_id": "123abc",  # RFC 6749 §3.2.1: MAY; the MCP SDK's server needs it
    }
    assert "456def" not in repr(request) and "the-code" not in repr(request)


def test_client_secret_post_and_public_client() -> None:
    post = token_request(
        "https://p/t",
        [("grant_type", "refresh_token")],
        client_id="id",
        client_secret="s+/",
        client_auth=ClientAuth.POST,
    )
    assert "Authorization" not in post.headers
    assert dict(parse_qsl(post.body.decode()))["client_secret"] == "s+/"
    public = token_request(
        "https://p/t",
        [("grant_type", "refresh_token")],
        client_id="id",
        client_secret=None,
        client_auth=ClientAuth.NONE,
    )
    assert dict(parse_qsl(public.body.decode())) == {
        "grant_type": "refresh_token",
        "client_id": "id",
    }
    with pytest.raises(ConfigError):
        token_request(
            "https://p/t",
            [("grant_type", "x")],
            client_id="id",
            client_secret=None,
            client_auth=ClientAuth.BASIC,
        )


# --- token responses ------------------------------------------------------------

HONEYWELL_RESPONSE = {
    "refresh_token_expires_in": "0",
    "api_product_list": "[Basic Plan]",
    "organization_name": "connectedhome",
    "": "",
    "token_type": "BearerToken",
    "issued_at": "1487281223451",
    "client_id": "123abc",
    "access_token": "456def",
    "application_name": "b1bd4907-924a-4470-a641-0effeb279834",
    "scope": "user",
    "expires_in": "3599",
    "refresh_count": "0",
    "status": "approved",
}


def _ok(body: object, **kwargs: Any) -> Token:
    return parse_token_response(
        200, "OK", "application/json", json.dumps(body).encode(), now=1000.0, **kwargs
    )


def test_honeywell_response_is_normalized() -> None:
    token = _ok(HONEYWELL_RESPONSE)
    assert token.access_token == "456def"
    assert token.token_type == "Bearer"
    assert token.expires_at == 1000.0 + 3599  # local clock, not issued_at
    assert token.scope == "user"
    assert token.refresh_token is None
    assert token.raw["issued_at"] == "1487281223451"
    assert token.raw["organization_name"] == "connectedhome"
    assert token.header == {"Authorization": "Bearer 456def"}
    assert "456def" not in repr(token)


@pytest.mark.parametrize("token_type", ["bearer", "Bearer", "BEARER", "BearerToken"])
def test_bearer_variants(token_type: str) -> None:
    assert _ok({"access_token": "a", "token_type": token_type}).token_type == "Bearer"


@pytest.mark.parametrize("token_type", ["DPoP", "mac", 5])
def test_other_token_types_are_refused(token_type: object) -> None:
    with pytest.raises(TokenEndpointError, match="not supported"):
        _ok({"access_token": "a", "token_type": token_type})


def test_refresh_token_kept_when_none_returned_and_scope_defaults() -> None:
    token = _ok(
        {"access_token": "a", "token_type": "bearer", "expires_in": 60},
        previous_refresh_token="old",
        requested_scope="read",
    )
    assert token.refresh_token == "old"
    assert token.scope == "read"
    assert token.expires_at == 1060.0
    rotated = _ok(
        {"access_token": "a", "token_type": "bearer", "refresh_token": "new"},
        previous_refresh_token="old",
    )
    assert rotated.refresh_token == "new"
    assert rotated.expires_at is None  # no lifetime given
    assert not rotated.is_expired(now=10**12)


@pytest.mark.parametrize(
    "body", [b"", b"[]", b"not json", b'{"token_type": "bearer"}', b'{"access_token": ""}']
)
def test_unusable_success_bodies(body: bytes) -> None:
    with pytest.raises(TokenEndpointError):
        parse_token_response(200, "OK", "application/json", body, now=0)


def test_expiry_with_skew() -> None:
    token = _ok({"access_token": "a", "expires_in": "100"})
    assert not token.is_expired(60, now=1000.0)
    assert token.is_expired(60, now=1041.0)
    assert token.is_expired(0, now=1100.0)


# --- errors ---------------------------------------------------------------------


def test_rfc6749_error() -> None:
    error = parse_error_response(
        400,
        "Bad Request",
        "application/json",
        b'{"error": "invalid_grant", "error_description": "expired"}',
    )
    assert (error.status, error.error, error.description) == (400, "invalid_grant", "expired")
    assert str(error) == "the token endpoint answered 400 Bad Request (invalid_grant: expired)"
    assert means_login_required(error)


def test_apigee_errors() -> None:
    error = parse_error_response(
        400,
        "Bad Request",
        "application/json",
        b'{"ErrorCode": "invalid_request", "Error": "Invalid Refresh Token"}',
    )
    assert (error.error, error.description) == ("invalid_request", "Invalid Refresh Token")
    assert means_login_required(error)
    fault = parse_error_response(
        401,
        "Unauthorized",
        "application/json",
        b'{"fault": {"faultstring": "Invalid ApiKey", "detail": {"errorcode": "oauth.v2.InvalidApiKey"}}}',
    )
    assert (fault.error, fault.description) == ("oauth.v2.InvalidApiKey", "Invalid ApiKey")
    assert not means_login_required(fault)
    code = parse_error_response(
        400,
        "Bad Request",
        "application/json",
        b'{"ErrorCode": "invalid_request", "Error": "Invalid Authorization Code"}',
    )
    assert not means_login_required(code)


def test_html_gateway_page_becomes_its_status_line() -> None:
    page = b"<html><body><h1>502 Bad Gateway</h1>" + b"x" * 5000 + b"</body></html>"
    error = parse_error_response(502, "Bad Gateway", "text/html", page)
    assert str(error) == "the token endpoint answered 502 Bad Gateway"
    assert error.status == 502 and error.error is None
    with pytest.raises(TokenEndpointError, match="502 Bad Gateway"):
        parse_token_response(502, "Bad Gateway", "text/html", page, now=0)
