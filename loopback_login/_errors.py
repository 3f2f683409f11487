"""The one exception tree of loopback-login.

Every error a caller can act on derives from :class:`LoopbackLoginError`; its
``exit_code`` is what the command line exits with::

    LoopbackLoginError
    ├── ConfigError                  2  bad flags, config file or profile
    ├── LoginRequired                3  no usable tokens: log in again
    ├── ProviderError                4  the provider or the network failed us
    │   ├── AuthorizationError          the provider answered the callback with error=
    │   │   └── AuthorizationDenied     ... with error=access_denied
    │   ├── IssuerMismatch              RFC 9207 iss check failed (mix-up attack?)
    │   ├── InvalidIdToken              an OIDC id_token failed its checks
    │   ├── TokenEndpointError          the token endpoint answered an error
    │   └── NetworkError                could not reach the provider
    ├── PortInUse                    4  the redirect URI's port is held by another program
    ├── InvalidCallback              4  a callback we must ignore (forged, stale, malformed)
    │   └── StateMismatch
    └── LoginTimeout (TimeoutError)  5  nobody came back in time, or the user cancelled

Messages are one line, say what to do, and never carry a token, code or secret.
"""

from __future__ import annotations

import contextlib
import re  # already imported on every path (profile names are checked with it)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


class LoopbackLoginError(Exception):
    """Root of every error raised by loopback-login."""

    exit_code = 1


class ConfigError(LoopbackLoginError):
    """The command line, the config file or the profile is unusable."""

    exit_code = 2


class LoginRequired(LoopbackLoginError):
    """There is no usable token (none stored, unreadable, or the refresh token was rejected)."""

    exit_code = 3


class ProviderError(LoopbackLoginError):
    """The authorization server or the network between us failed."""

    exit_code = 4


class AuthorizationError(ProviderError):
    """The provider redirected back with ``error=`` (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str | None = None) -> None:
        self.error = error
        self.description = description
        detail = f": {description}" if description else ""
        super().__init__(f"the provider refused the authorization ({error}{detail})")


class AuthorizationDenied(AuthorizationError):
    """The user (or the provider's policy) denied consent: ``error=access_denied``."""


class IssuerMismatch(ProviderError):
    """The callback's ``iss`` is not the expected issuer (RFC 9207 §2.4)."""


class InvalidIdToken(ProviderError):
    """The ``id_token`` is not for us, or not for this login (OIDC Core §3.1.3.7)."""


class TokenEndpointError(ProviderError):
    """The token endpoint answered with an error.

    ``status`` is the HTTP status, ``error`` the OAuth error code (RFC 6749 §5.2,
    or Apigee's ``ErrorCode``) when the body had one, ``description`` its text.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        description: str | None = None,
    ) -> None:
        self.status = status
        self.error = error
        self.description = description
        super().__init__(message)


class NetworkError(ProviderError):
    """The provider could not be reached, or the connection broke.

    ``sent`` is false when the request surely never reached the provider
    (the connection failed); ``transient`` is false when trying again cannot help.
    """

    def __init__(self, message: str, *, sent: bool = True, transient: bool = True) -> None:
        self.sent = sent
        self.transient = transient
        super().__init__(message)


class PortInUse(LoopbackLoginError):
    """The redirect URI's port is already held by another program.

    Not a :class:`ProviderError`: the provider is not at fault. The exit code
    stays 4, the code for a login that could not reach the other side.
    """

    exit_code = 4


class InvalidCallback(LoopbackLoginError):
    """A request to the redirect URI that is not this login's answer.

    The receiver ignores it (the browser gets an error page and the wait goes
    on); only in paste mode does it reach the caller.
    """

    exit_code = 4


class StateMismatch(InvalidCallback):
    """The callback's ``state`` is missing or is not this login's (RFC 6749 §10.12)."""


class LoginTimeout(LoopbackLoginError, TimeoutError):
    """The wait for the browser ended: timed out or cancelled."""

    exit_code = 5


#: Flags whose keyword argument is not simply the flag's name in snake case.
_KEYWORDS = {
    "no-pkce": "pkce=False",
    "no-client-check": "client_check=False",
    "no-browser": "open_browser=False",
    "paste": "paste=True",
    "fallback": "fallback_paste=True",
    "authorize-param": "authorize_params",
    "config-dir": "config_dir",
}
#: A flag and its value, if any (compiled on first use, by re's cache: not on `token`'s path).
_FLAG = (
    r"`?--([a-z][a-z0-9-]*)`?"
    r"(?: (?!or\b|and\b)([A-Z][A-Z_]*|basic-raw|basic|post|none|paste)(?![\w-]))?"
)


def in_python_terms(message: str) -> str:
    """``message`` with each command-line flag named as the keyword argument Python takes.

    Errors are written once, for the command line; a Python caller reads
    ``provider=NAME`` where the command line reads ``--provider NAME``.
    """

    def keyword(match: re.Match[str]) -> str:
        flag, value = match.group(1), match.group(2)
        if flag in _KEYWORDS:
            return _KEYWORDS[flag]
        shown = value if value is None or value.isupper() else repr(value)
        return f"{flag.replace('-', '_')}={shown or '...'}"

    return re.sub(_FLAG, keyword, message)


@contextlib.contextmanager
def python_errors() -> Iterator[None]:
    """Errors leaving the Python API name keyword arguments, not flags."""
    try:
        yield
    except LoopbackLoginError as exc:
        if exc.args and isinstance(exc.args[0], str):
            exc.args = (in_python_terms(exc.args[0]), *exc.args[1:])
        raise


# Tracebacks and reprs name the package users import from (`loopback_login.LoginRequired`),
# as httpx does. Every class here is public; set here, not on first access through the
# package, because the code raises them before anyone may have looked them up there.
for _value in list(globals().values()):
    if isinstance(_value, type) and issubclass(_value, LoopbackLoginError):
        _value.__module__ = "loopback_login"
del _value
