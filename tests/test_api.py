"""The public surface: one __all__, lazily imported."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import NEUTRAL_CWD

import loopback_login

PUBLIC = [
    "AuthorizationDenied",
    "AuthorizationError",
    "ConfigError",
    "HttpxAuth",
    "InvalidCallback",
    "InvalidIdToken",
    "IssuerMismatch",
    "LoginRequired",
    "LoginTimeout",
    "LoopbackLoginError",
    "NetworkError",
    "PortInUse",
    "ProviderError",
    "RequestsAuth",
    "StateMismatch",
    "Token",
    "TokenEndpointError",
    "client_credentials",
    "client_credentials_sync",
    "get_token",
    "get_token_sync",
    "login",
    "login_sync",
    "middleware",
    "refresh",
    "refresh_sync",
    "session",
]


def test_public_names_are_pinned_and_all_resolve() -> None:
    assert sorted(loopback_login.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(loopback_login, name).__name__ == name
    assert sorted(loopback_login.__all__, key=str.lower) == sorted(PUBLIC, key=str.lower)
    with pytest.raises(AttributeError):
        loopback_login.NotAThing  # noqa: B018


def test_exception_tree() -> None:
    errors = [
        getattr(loopback_login, name)
        for name in PUBLIC
        if name.endswith(
            ("Error", "Required", "Denied", "Mismatch", "Timeout", "InUse", "Callback")
        )
    ]
    assert all(issubclass(error, loopback_login.LoopbackLoginError) for error in errors)
    assert issubclass(loopback_login.LoginTimeout, TimeoutError)
    assert issubclass(loopback_login.AuthorizationDenied, loopback_login.AuthorizationError)
    assert loopback_login.LoginRequired.exit_code == 3
    assert loopback_login.TokenEndpointError("x", status=502).status == 502


def test_importing_the_package_imports_nothing_heavy() -> None:
    code = "import sys, loopback_login; print(sorted(m for m in sys.modules if m.startswith(('aiohttp', 'loopback_login.'))))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=NEUTRAL_CWD, check=True
    )
    assert result.stdout.strip() == "[]"


def test_token_repr_hides_the_tokens() -> None:
    token = loopback_login.Token(
        access_token="AT-secret", refresh_token="RT-secret", expires_at=5.0
    )
    assert "AT-secret" not in repr(token) and "RT-secret" not in repr(token)
    assert "refresh_token='present'" in repr(token)
    assert token.header == {"Authorization": "Bearer AT-secret"}


def test_unknown_settings_in_python_are_refused() -> None:
    with pytest.raises(loopback_login.ConfigError, match="unknown profile setting 'scopes'"):
        loopback_login.login_sync("home", provider="honeywell", client_id="x", scopes="read")
