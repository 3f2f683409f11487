"""loopback-login: get OAuth2 tokens through your browser on your own machine, and keep them.

Public names are imported on first use (PEP 562), so that importing the
package costs nothing until a name is needed.
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False  # importing the package stays cheap: no typing at run time

# The one place the version is written: pyproject.toml reads it from here.
__version__ = "0.1.0"

__all__ = [
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

_API = [name for name in __all__ if name[0].islower()]
_ELSEWHERE = {
    "Token": "._tokens.token",
    **dict.fromkeys(_API, "._api"),
    # Using the tokens: aiohttp, httpx, requests or the MCP SDK, each loaded only when asked for.
    "session": "._using.aiohttp_session",
    "middleware": "._using.aiohttp_session",
    "HttpxAuth": "._using.httpx_auth",
    "RequestsAuth": "._using.requests_auth",
    "McpAuth": "._using.mcp_auth",
}
# Every other public name is an exception.
_WHERE = {name: _ELSEWHERE.get(name, "._errors") for name in __all__}

if TYPE_CHECKING:
    from typing import Any

    from ._api import (
        client_credentials,
        client_credentials_sync,
        get_token,
        get_token_sync,
        login,
        login_sync,
        refresh,
        refresh_sync,
    )
    from ._errors import (
        AuthorizationDenied,
        AuthorizationError,
        ConfigError,
        InvalidCallback,
        InvalidIdToken,
        IssuerMismatch,
        LoginRequired,
        LoginTimeout,
        LoopbackLoginError,
        NetworkError,
        PortInUse,
        ProviderError,
        StateMismatch,
        TokenEndpointError,
    )
    from ._tokens.token import Token
    from ._using.aiohttp_session import middleware, session
    from ._using.httpx_auth import HttpxAuth
    from ._using.mcp_auth import McpAuth
    from ._using.requests_auth import RequestsAuth


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'loopback_login' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    # What users import from, as httpx names its public objects (the exceptions
    # set this themselves, in _errors).
    value.__module__ = __name__
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, each once, loaded or not (no helpers of this module)."""
    return sorted([*__all__, "__version__"])
