"""The public surface: one __all__, lazily imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import NEUTRAL_CWD, type_errors

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
    "McpAuth",
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
        # Refused at run time too, for callers without a type checker.
        loopback_login.login_sync("home", provider="honeywell", client_id="x", scopes="read")  # type: ignore[call-arg]


def test_the_settings_are_the_profile_keys() -> None:
    from loopback_login._api import ProfileSettings
    from loopback_login._profiles.profile import PROFILE_KEYS

    assert set(ProfileSettings.__annotations__) == PROFILE_KEYS


def test_sync_twins_keep_their_coroutines_signatures() -> None:
    import inspect

    for name in ("login", "refresh", "client_credentials", "get_token"):
        coroutine, twin = getattr(loopback_login, name), getattr(loopback_login, f"{name}_sync")
        assert inspect.signature(twin) == inspect.signature(coroutine), name
        assert twin.__name__ == f"{name}_sync" and not inspect.iscoroutinefunction(twin)


def test_a_type_checker_rejects_wrong_settings(tmp_path: Path) -> None:
    """The public functions take typed keywords: a misspelled or mistyped one is a type error."""
    errors = type_errors(
        tmp_path,
        "import loopback_login\n"
        'loopback_login.login_sync("home", timeout="five minutes", scopes="read")\n'
        'loopback_login.client_credentials_sync("home", pkce="yes")\n'
        'loopback_login.login_sync("home", provider="honeywell", client_id="x", timeout=5.0)\n',
    )
    assert any(":2:" in line and '"timeout"' in line for line in errors), errors
    assert any(":2:" in line and '"scopes"' in line for line in errors), errors
    assert any(
        (":3:" in line and '"pkce"' in line) or (":3:" in line and "bool" in line)
        for line in errors
    ), errors
    assert not any(":4:" in line for line in errors), errors
