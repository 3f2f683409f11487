"""Property-based tests of the pure core: any input, only our own errors; round trips hold."""

from __future__ import annotations

import base64
import json
import string
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopback_login._errors import LoopbackLoginError, TokenEndpointError
from loopback_login._protocol import (
    RESERVED_AUTHORIZE_PARAMS,
    authorize_request,
    basic_credentials,
    means_login_required,
    parse_callback,
    parse_error_response,
    parse_pasted,
    parse_token_response,
)
from loopback_login._tokens.record import make_record, parse_record
from loopback_login._tokens.token import Token, token_from_record

STATE = "s" * 43
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
token_fields = st.fixed_dictionaries(
    {},
    optional={
        "access_token": st.text() | st.integers() | st.none(),
        "token_type": st.sampled_from(["Bearer", "bearer", "BearerToken", "DPoP", ""])
        | st.text()
        | st.integers(),
        "expires_in": st.integers() | st.text() | st.floats() | st.none() | st.booleans(),
        "refresh_token": st.text() | st.integers() | st.none(),
        "scope": st.text() | st.lists(st.text()) | st.none(),
        "error": st.text() | st.integers(),
        "ErrorCode": st.text(),
        "Error": st.text() | st.none(),
        "fault": json_values,
    },
)
bodies = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | token_fields.map(lambda v: json.dumps(v).encode())
    | st.integers(min_value=10**300, max_value=10**400).map(
        lambda n: json.dumps({"access_token": "a", "expires_in": n}).encode()
    )
)


@SETTINGS
@given(st.text(max_size=400))
def test_callback_parsing_raises_only_our_errors(query: str) -> None:
    try:
        code = parse_callback(query, expected_state=STATE, expected_issuer="https://idp.example")
    except LoopbackLoginError:
        return
    assert isinstance(code, str) and code


@SETTINGS
@given(st.text(max_size=400), st.booleans())
def test_pasted_text_raises_only_our_errors(text: str, pkce: bool) -> None:
    try:
        code = parse_pasted(text, expected_state=STATE, pkce=pkce)
    except LoopbackLoginError:
        return
    assert isinstance(code, str) and code.strip() == code and code


@SETTINGS
@given(st.integers(min_value=100, max_value=599), st.text(max_size=40), bodies)
def test_token_responses_normalize_or_raise_our_error(
    status: int, reason: str, body: bytes
) -> None:
    try:
        token = parse_token_response(status, reason, "application/json", body, now=1000.0)
    except TokenEndpointError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message
        assert len(message) < 600
        means_login_required(exc)
        return
    assert 200 <= status < 300
    assert token.token_type == "Bearer" and token.access_token
    assert token.expires_at is None or token.expires_at >= 1000.0


@SETTINGS
@given(st.integers(min_value=100, max_value=599), st.text(max_size=40), bodies)
def test_error_parsing_is_one_clean_line(status: int, reason: str, body: bytes) -> None:
    error = parse_error_response(status, reason, "text/html", body)
    assert isinstance(error, TokenEndpointError) and error.status == status
    text = str(error)
    assert text.isprintable() and len(text) < 600


printable = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=60)


@SETTINGS
@given(printable, printable)
def test_basic_credentials_round_trip(client_id: str, secret: str) -> None:
    header = basic_credentials(client_id, secret)
    raw_id, raw_secret = base64.b64decode(header.removeprefix("Basic ")).decode().split(":", 1)
    assert (unquote_plus(raw_id), unquote_plus(raw_secret)) == (client_id, secret)


@SETTINGS
@given(printable, printable, st.text(max_size=40))
def test_callback_round_trip(code: str, state: str, description: str) -> None:
    query = urlencode({"code": code, "state": state, "other": description})
    assert parse_callback(query, expected_state=state) == code
    assert (
        parse_pasted(f"http://127.0.0.1:8080/callback?{query}", expected_state=state, pkce=False)
        == code
    )


@SETTINGS
@given(
    printable,
    st.text(max_size=60),
    st.dictionaries(
        st.text(string.ascii_lowercase, min_size=1, max_size=8).filter(
            lambda k: k not in RESERVED_AUTHORIZE_PARAMS
        ),
        printable,
        max_size=3,
    ),
)
def test_authorize_url_round_trip(client_id: str, scope: str, extra: dict[str, str]) -> None:
    redirect = "http://localhost:8080/callback"
    request = authorize_request(
        "https://idp.example/authorize",
        client_id=client_id,
        redirect_uri=redirect,
        scope=scope,
        extra_params=extra,
    )
    params = dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))
    assert params["client_id"] == client_id and params["redirect_uri"] == redirect
    assert params["state"] == request.state
    assert params.get("scope") == (scope or None)
    for key, value in extra.items():
        assert params[key] == value


@SETTINGS
@given(
    st.builds(
        Token,
        # RFC 6750 §2.1: visible ASCII, no spaces (anything else is refused).
        access_token=st.text(
            alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60
        ),
        expires_at=st.none() | st.floats(min_value=0, max_value=4e9),
        refresh_token=st.none() | printable,
        scope=st.none() | st.text(max_size=30),
        obtained_at=st.floats(min_value=0, max_value=4e9),
        raw=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
    )
)
def test_token_record_round_trip(token: Token) -> None:
    record = parse_record(json.loads(json.dumps(make_record(token, {"profile": "p", "skew": 60}))))
    again = token_from_record(record)
    assert again == token
