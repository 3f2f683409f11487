"""The command line's grammar: argparse, its flags, and the command table.

Imported only when a command line needs parsing: ``token NAME`` is read
without it (see :func:`loopback_login._cli.main`).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

from . import commands

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

PROG = "loopback-login"

EPILOG = """\
PROFILE is a name you choose for one app at one provider: the provider's endpoints,
the client id (and secret), the redirect URI and the scopes. Give them as flags once;
a successful login remembers them in config.toml (the secret in the OS keyring where
there is one), and later commands need only the name; `config` changes a setting.
Names: letters, digits, '.', '_', '-'.

examples:
  loopback-login demo                                   try it; no account needed
  export LOOPBACK_LOGIN_CLIENT_SECRET=...               asked for if not set; kept after one login
  loopback-login login home --provider honeywell --client-id KEY \\
      --redirect-uri http://localhost:8080/callback
  loopback-login token home                             print a valid access token
  curl -H "$(loopback-login token home --header)" https://api.example/...
  loopback-login status                                 profiles, expiry, where secrets are
  loopback-login logout home --forget                   remove tokens, secret and profile

`loopback-login COMMAND --help` shows a command's flags."""


@functools.cache
def _columns() -> int:
    """Terminal width as shutil.get_terminal_size reads it, without importing shutil."""
    try:
        return int(os.environ.get("COLUMNS", ""))
    except ValueError:
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 80
    except (ValueError, OSError):
        return 80


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, sized without importing shutil (argparse makes one per flag)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        width = _columns() - 2 if width is None else width
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: usage errors are the only stderr line.
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


class _Version(argparse.Action):
    """``--version``."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from .. import __version__  # the one source of the version

        print(f"{PROG} {__version__}")
        parser.exit(0)


class _KeyValues(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        current = dict(getattr(namespace, self.dest) or {})
        key, value = values
        current[key] = value
        setattr(namespace, self.dest, current)


def _seconds(text: str, *, zero: bool = False) -> float:
    """A number of seconds up to a day; zero allowed only where it means something."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    above_floor = value >= 0 if zero else value > 0
    if not above_floor or value > 86400:
        what = "from 0 to 86400 seconds" if zero else "more than 0 and at most 86400 seconds"
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    return _seconds(text)


def _skew_seconds(text: str) -> float:
    return _seconds(text, zero=True)


def _profile_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that describe a profile; each is also a key of ``[profiles.NAME]``."""
    group = parser.add_argument_group("profile (flags win over config.toml)")
    add = group.add_argument
    add("--provider", help="a preset: see `loopback-login providers`")
    add("--base-url", help="move the preset's endpoints to this base URL")
    add("--authorize-url", help="the authorization endpoint")
    add("--token-url", help="the token endpoint")
    add("--issuer", help="an OpenID Connect / RFC 8414 issuer: endpoints from its metadata")
    add(
        "--resource",
        metavar="URL",
        help="the API to log in to: its authorization server is discovered (RFC 9728), "
        "a client registered when none is given (RFC 7591), tokens bound to it (RFC 8707)",
    )
    add("--client-credentials-url", help="where client credentials go (default: token URL)")
    add("--revocation-url", help="the RFC 7009 revocation endpoint, used by logout")
    add(
        "--device-authorization-url",
        metavar="URL",
        help="the RFC 8628 device authorization endpoint, for `login --device` where the "
        "metadata does not list it",
    )
    add(
        "--api-base-url",
        metavar="URL",
        help="where `api` and the Python sessions send requests, and the token "
        "(default: the preset's API, else the resource)",
    )
    add(
        "--api-key-param",
        metavar="NAME",
        help="the query parameter that carries the client id on every API call "
        "(the honeywell preset's: apikey; '' for none)",
    )
    add("--client-id", help="the app's client id (API key)")
    add(
        "--client-metadata-url",
        metavar="URL",
        help="with --resource: the https URL of this client's metadata document, used as its "
        "client id where the authorization server supports that (OAuth CIMD)",
    )
    add(
        "--client-secret",
        help="the app's secret, kept for the profile after the login (the OS keyring where "
        "there is one); prefer $LOOPBACK_LOGIN_CLIENT_SECRET (command lines are visible)",
    )
    add("--redirect-uri", help="the registered redirect URI, e.g. http://localhost:8080/callback")
    add("--scope", help="space-separated scopes")
    add(
        "--client-auth",
        choices=("basic", "basic-raw", "post", "none"),
        help="how the client authenticates: basic (RFC 6749, form-encoded), basic-raw (id:secret "
        "as they are, Honeywell), post, none (default: the preset's, else basic with a secret)",
    )
    add(
        "--no-pkce",
        dest="pkce",
        action="store_const",
        const=False,
        default=None,
        help="do not send PKCE (RFC 7636)",
    )
    add(
        "--no-client-check",
        dest="client_check",
        action="store_const",
        const=False,
        default=None,
        help="do not check the client id and secret at the token endpoint before the consent",
    )
    add("--skew", type=_skew_seconds, metavar="SECONDS", help="refresh this long before expiry")
    add(
        "--authorize-param",
        dest="authorize_params",
        action=_KeyValues,
        type=_key_value,
        metavar="KEY=VALUE",
        help="an extra authorize parameter (repeatable)",
    )
    add("--prompt", help="shorthand for --authorize-param prompt=VALUE")
    parser.add_argument(
        "--save",
        action="store_true",
        help="kept for compatibility: a successful login always remembers these settings in "
        "config.toml (the secret where secrets are kept: the OS keyring, else config.toml)",
    )


def _secret_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--client-secret",
        help="the secret, when the profile was saved without it "
        "(prefer $LOOPBACK_LOGIN_CLIENT_SECRET)",
    )


def _token_shape(parser: argparse.ArgumentParser, what: str) -> None:
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--header", action="store_true", help="print 'Authorization: Bearer ...'")
    shape.add_argument("--json", action="store_true", help=f"print {what}")


def _timeout_flag(parser: argparse.ArgumentParser) -> None:
    from .._login.start import LOGIN_TIMEOUT

    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=LOGIN_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the browser (default {LOGIN_TIMEOUT:g})",
    )


def _login_flags(login: argparse.ArgumentParser) -> None:
    _profile_flags(login)
    mode = login.add_mutually_exclusive_group()
    mode.add_argument(
        "--no-browser", action="store_true", help="print the URL, do not open a browser; listen"
    )
    mode.add_argument(
        "--paste",
        action="store_true",
        help="no listener: paste the address the browser landed on (SSH, remote machines)",
    )
    login.add_argument(
        "--device",
        action="store_true",
        help="log in with a code typed in any browser (RFC 8628 device flow; chosen by itself "
        "where no browser can be opened and the provider offers it)",
    )
    login.add_argument(
        "--fallback",
        choices=("paste",),
        help="switch to paste mode when no browser can be opened or the port is taken",
    )
    _timeout_flag(login)


def _token_flags(token: argparse.ArgumentParser) -> None:
    _secret_flag(token)
    _token_shape(token, "the token record without the refresh token")


def _credentials_flags(credentials: argparse.ArgumentParser) -> None:
    _profile_flags(credentials)
    _token_shape(credentials, "the token record")


def _api_flags(api: argparse.ArgumentParser) -> None:
    api.add_argument("path", metavar="PATH_OR_URL", help="a path under the API base URL, or a URL")
    api.add_argument("-X", "--method", help="the HTTP method (default GET; POST with fields)")
    api.add_argument(
        "-f",
        "--raw-field",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a string field: in the query for GET, else in a JSON body (repeatable)",
    )
    api.add_argument(
        "-F",
        "--field",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a typed field: numbers, true, false, null; @FILE reads a file (repeatable)",
    )
    api.add_argument("--input", metavar="FILE", help="the request body from FILE ('-': stdin)")
    api.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="an extra request header (repeatable)",
    )
    api.add_argument(
        "-i", "--include", action="store_true", help="print the status line and headers first"
    )
    _secret_flag(api)


def _status_flags(status: argparse.ArgumentParser) -> None:
    status.add_argument("profile", nargs="?", metavar="PROFILE")


def _logout_flags(logout: argparse.ArgumentParser) -> None:
    _secret_flag(logout)
    logout.add_argument(
        "--local-only", action="store_true", help="only delete them here; do not revoke"
    )
    logout.add_argument(
        "--forget",
        action="store_true",
        help="also remove the profile's stored client secret and its config.toml table",
    )


def _demo_flags(demo: argparse.ArgumentParser) -> None:
    _timeout_flag(demo)
    demo.add_argument(
        "--serve",
        action="store_true",
        help="keep the demo provider running after the login, until Ctrl-C",
    )


def _config_flags(config: argparse.ArgumentParser) -> None:
    from .._profiles.profile import CONFIG_KEYS

    config.add_argument("key", nargs="?", metavar="KEY", help=f"one of: {', '.join(CONFIG_KEYS)}")
    config.add_argument("value", nargs="?", metavar="VALUE", help="its new value ('': default)")


def _no_flags(parser: argparse.ArgumentParser) -> None:
    pass


#: Each command's examples, for its --help.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "login": (
        "login home --provider honeywell --client-id KEY "
        "--redirect-uri http://localhost:8080/callback",
        "login work --authorize-url https://idp.example/authorize "
        "--token-url https://idp.example/token --client-id ID "
        "--redirect-uri http://127.0.0.1:0/callback",
        "login work --resource https://api.example.com/mcp",
        "login home --paste                    over SSH: paste the address the browser landed on",
    ),
    "token": (
        "token home",
        'token home --header                  for curl -H "$(...)"',
        "token home --json",
    ),
    "refresh": ("refresh home",),
    "client-credentials": (
        "client-credentials app --provider honeywell --client-id KEY --save",
        "client-credentials app --header",
    ),
    "api": (
        "api home /v2/locations",
        "api home /v2/locations -i",
        "api home /v2/devices -f locationId=123",
        "api home /v2/things -X POST -F name=lamp -F on=true",
    ),
    "status": ("status", "status home"),
    "logout": ("logout home", "logout home --local-only", "logout home --forget"),
    "config": (
        "config home                            its settings (no secrets)",
        "config home api_base_url https://api.example.com",
        "config home api_key_param apikey",
        "config home skew 120",
    ),
    "providers": ("providers",),
    "demo": ("demo", "demo --serve                          keep the provider running"),
}

#: name: (function, help, its flags, takes a PROFILE)
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str, Callable[..., None], bool]] = {
    "login": (
        commands.cmd_login,
        "log in through the browser and save the tokens",
        _login_flags,
        True,
    ),
    "token": (
        commands.cmd_token,
        "print a valid access token, refreshing it if needed",
        _token_flags,
        True,
    ),
    "refresh": (commands.cmd_refresh, "refresh the access token now", _secret_flag, True),
    "client-credentials": (
        commands.cmd_client_credentials,
        "print a client-credentials token (cached until it expires)",
        _credentials_flags,
        True,
    ),
    "api": (
        commands.cmd_api,
        "call the profile's API with its token (like `gh api`)",
        _api_flags,
        True,
    ),
    "status": (
        commands.cmd_status,
        "list profiles and their tokens (no secrets)",
        _status_flags,
        False,
    ),
    "logout": (
        commands.cmd_logout,
        "revoke (where possible) and delete the tokens",
        _logout_flags,
        True,
    ),
    "config": (
        commands.cmd_config,
        "show a profile's settings (no secrets), or set one without a new login",
        _config_flags,
        True,
    ),
    "providers": (commands.cmd_providers, "list the built-in provider presets", _no_flags, False),
    "demo": (
        commands.cmd_demo,
        "log in to a built-in local demo provider (no account needed)",
        _demo_flags,
        False,
    ),
}


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, that command's flags alone are set up.

    Building every command's flags costs more than all of ``token``'s work,
    so ``main`` asks only for the command on the command line.
    """
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    parser = _Parser(
        prog=PROG,
        description="Get OAuth2 tokens through your browser and keep them fresh.",
        epilog=EPILOG,
        parents=[common],
    )
    parser.add_argument(
        "-V", "--version", action=_Version, nargs=0, help="print the version and exit"
    )
    # An explicit prog spares argparse a help formatter (and its imports) at start-up.
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", prog=PROG)
    for name, (func, help, add_flags, takes_profile) in COMMANDS.items():
        sub = subparsers.add_parser(
            name,
            help=help,
            description=help,
            parents=[common],
            epilog="examples:\n" + "\n".join(f"  {PROG} {line}" for line in EXAMPLES[name]),
        )
        sub.set_defaults(func=func)
        if only is None or only == name:
            if takes_profile:
                sub.add_argument("profile", metavar="PROFILE")
            add_flags(sub)
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse a command line (usage errors exit 2 with one line)."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    return _parser(command if command in COMMANDS else None).parse_args(argv)
