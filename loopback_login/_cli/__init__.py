"""The ``loopback-login`` command: argparse, one error boundary, exit codes.

stdout carries only the result (the summary of ``login``, the token of
``token``, the table of ``status``); the URL, progress and errors go to stderr.
Exit codes: 0 ok, 2 usage or configuration, 3 login required, 4 provider or
network, 5 timed out or cancelled. Heavy modules are imported only by the
commands that need them: ``token`` reads one file and prints. What each fast
path may import is stated once, in tests/test_fast_paths.py.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

from .._errors import ConfigError, LoginRequired, LoopbackLoginError
from .._store import Store, check_profile_name
from .._text import shown

# `token` must start fast: the typing machinery is for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn

    from .._profiles.profile import Profile
    from .._tokens.token import Token

PROG = "loopback-login"

EPILOG = """\
PROFILE is a name you choose for one app at one provider: the provider's endpoints,
the client id (and secret), the redirect URI and the scopes. Give them as flags once;
`--save` writes them to config.toml, the secret is kept in the OS keyring, and later
commands need only the name. Names: letters, digits, '.', '_', '-'.

examples:
  loopback-login demo                                   try it; no account needed
  export LOOPBACK_LOGIN_CLIENT_SECRET=...               asked for if not set; kept after one login
  loopback-login login home --provider honeywell --client-id KEY \\
      --redirect-uri http://localhost:8080/callback --save
  loopback-login token home                             print a valid access token
  curl -H "$(loopback-login token home --header)" https://api.example/...
  loopback-login status                                 profiles, expiry, where secrets are
  loopback-login logout home --forget                   remove tokens, secret and profile

`loopback-login COMMAND --help` shows a command's flags."""
EXIT_INTERNAL = 1
EXIT_CANCELLED = 5


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


def _progress(line: str) -> None:
    print(shown(line), file=sys.stderr, flush=True)


def _warn_secret_flag(args: argparse.Namespace) -> None:
    """Once the configuration is accepted: a secret in argv is visible to other users."""
    if getattr(args, "client_secret", None):
        _progress(
            "loopback-login: warning: --client-secret is visible to other users of this machine "
            "(ps) and stays in your shell history; set LOOPBACK_LOGIN_CLIENT_SECRET instead"
        )


# --- commands -------------------------------------------------------------------


def cmd_login(args: argparse.Namespace) -> int:
    from .._login.start import check_login, start_login
    from .._ui import Terminal

    store = Store()
    profile = _resolve(args, store, register=True)
    check_login(profile, paste=args.paste)
    _accept(args, store, profile)
    reporter = Terminal()
    # The browser opens first; asyncio and aiohttp load while the person logs in.
    started = start_login(
        profile,
        open_browser=not args.no_browser,
        paste=args.paste,
        fallback_paste=args.fallback == "paste",
        reporter=reporter,
    )
    with started:
        from .._login.flow import finish_login

        token = _run(
            finish_login(profile, started, store=store, timeout=args.timeout, reporter=reporter)
        )
    path = store.token_path(profile.name)
    print(shown(_summary(f"Logged in{_who(token)}", profile.name, profile.provider, token, path)))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from .._tokens.record import expiring, is_token_value, record_skew

    store = Store()
    name = check_profile_name(args.profile)
    record = store.require_record(name)
    _warn_secret_flag(args)
    access_token, expires_at = record.get("access_token"), record.get("expires_at")
    if (
        is_token_value(access_token)
        and (expires_at is None or isinstance(expires_at, (int, float)))
        and not expiring(expires_at, record_skew(record))
    ):
        # The common case, kept light: one file read, nothing else imported.
        _print_token(access_token, str(record.get("token_type") or "Bearer"), record, args)
        return 0
    from .._login.flow import refresh_stored

    token = _run(refresh_stored(store, name, client_secret=args.client_secret))
    _print_token(token.access_token, token.token_type, store.require_record(name), args)
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    from .._login.flow import refresh_stored

    store = Store()
    name = check_profile_name(args.profile)
    _warn_secret_flag(args)
    token = _run(refresh_stored(store, name, force=True, client_secret=args.client_secret))
    provider = str((store.read_record(name) or {}).get("provider"))
    print(shown(_summary("Refreshed", name, provider, token, store.token_path(name))))
    return 0


def cmd_client_credentials(args: argparse.Namespace) -> int:
    store = Store()
    profile = _resolve(args, store)
    _accept(args, store, profile)
    from .._login.flow import fetch_client_credentials

    token = _run(fetch_client_credentials(profile, store))
    record = store.read_record(profile.name, store.client_credentials_path(profile.name)) or {}
    _print_token(token.access_token, token.token_type, record, args)
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from .._using.call import (
        ApiRequest,
        call_api,
        parse_field,
        parse_header,
        parse_method,
        read_input,
    )

    name = check_profile_name(args.profile)
    fields = [parse_field(text, typed=False) for text in args.raw_field]
    fields += [parse_field(text, typed=True) for text in args.field]
    request = ApiRequest(
        method=parse_method(args.method, has_body=bool(fields) or args.input is not None),
        path_or_url=args.path,
        fields=fields,
        body=read_input(args.input) if args.input is not None else None,
        headers=[parse_header(text) for text in args.header],
    )
    _warn_secret_flag(args)
    out = sys.stdout.buffer
    call_api(
        name,
        request,
        out=out,
        include=args.include,
        pretty=out.isatty(),
        client_secret=args.client_secret,
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .._tokens.record import jwt_claims
    from .._tokens.token import token_from_record

    store = Store()
    if args.profile is not None:
        names = [check_profile_name(args.profile)]
        if args.profile not in store.profile_names():
            raise LoginRequired(f"no profile or tokens named {args.profile!r}")
    else:
        names = store.profile_names()
    if not names:
        _progress(f"No profiles yet in {store.root}; try `loopback-login demo`.")
        return 0
    tables = store.read_config().get("profiles", {})
    from .._profiles.secrets import source

    rows = [
        (
            "PROFILE",
            "PROVIDER",
            "SUBJECT",
            "EXPIRES",
            "SCOPE",
            "REFRESH",
            "KIND",
            "SECRET",
            "RESOURCE",
            "FILE",
        )
    ]
    now = time.time()
    for name in names:
        table = tables.get(name, {})
        provider = str(table.get("provider") or "-")
        secret = source(store, name)  # where it comes from, never the secret
        resource = _resource_column(table, None)  # for rows without a record
        kinds = (
            ("login", store.token_path(name)),
            ("client-credentials", store.client_credentials_path(name)),
        )
        listed = False
        for kind, path in kinds:
            try:
                record = store.read_record(name, path)
                token = token_from_record(record) if record is not None else None
            except (LoopbackLoginError, ValueError):  # one bad record never hides the others
                rows.append(
                    (name, provider, "-", "unreadable", "-", "-", kind, secret, resource, path)
                )
                listed = True
                continue
            if record is None or token is None:
                continue
            listed = True
            rows.append(
                (
                    name,
                    str(record.get("provider") or provider),
                    str((jwt_claims(token.raw.get("id_token")) or {}).get("sub") or "-"),
                    _expiry(token.expires_at, now),
                    token.scope or "-",
                    "yes" if token.refresh_token else "no",
                    kind,
                    secret,
                    _resource_column(table, record),
                    path,
                )
            )
        if not listed:
            rows.append(
                (name, provider, "-", "not logged in", "-", "-", "-", secret, resource, "-")
            )
    _print_table(rows)
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    from .._login.flow import logout

    store = Store()
    name = check_profile_name(args.profile)
    _warn_secret_flag(args)
    done = _run(logout(store, name, client_secret=args.client_secret, revoke=not args.local_only))
    for entry in done:
        what = "tokens" if entry.kind == "login" else "client-credentials token"
        if entry.revoked:
            print(
                f"Logged out of profile {name!r}: {what} revoked at the provider and deleted "
                f"({entry.path})"
            )
        else:
            print(
                f"Logged out of profile {name!r}: {what} deleted here ({entry.path}), "
                f"NOT revoked ({entry.not_revoked})"
            )
            if entry.still_valid:
                print(f"  They stay valid at the provider: {entry.still_valid}.")
    if args.forget:
        from .._profiles import secrets as _secrets

        forgotten = [
            what
            for what, removed in (
                ("its stored client secret", _secrets.delete(store, name)),
                (f"its [profiles.{name}] table in {store.config_path}", store.delete_profile(name)),
            )
            if removed
        ]
        if forgotten:
            print(f"Forgot profile {name!r}: removed {' and '.join(forgotten)}")
        elif not done:
            _progress(f"Nothing stored for profile {name!r}; nothing to do.")
    elif not done:
        _progress(f"No tokens stored for profile {name!r}; nothing to do.")
    return 0


def cmd_providers(args: argparse.Namespace) -> int:
    from .._profiles.providers import PRESET_NAMES, preset

    rows = [("NAME", "PROVIDER", "AUTHORIZE URL", "TOKEN URL", "CLIENT CREDENTIALS URL")]
    for name in PRESET_NAMES:
        base = "http://127.0.0.1:PORT" if name == "demo" else None
        provider = preset(name, base)
        rows.append(
            (
                name,
                provider.description,
                provider.authorize_url,
                provider.token_url,
                provider.client_credentials_url or "-",
            )
        )
    _print_table(rows)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .._demo import run_demo

    store = Store()
    from .._ui import Terminal

    serving = False

    def serve(token: Token) -> None:
        nonlocal serving
        serving = True
        print(
            shown(_summary("Logged in", "demo", "demo", token, store.token_path("demo"))),
            flush=True,
        )

    try:
        token = _run(
            run_demo(
                store,
                timeout=args.timeout,
                reporter=Terminal(),
                serve=serve if args.serve else None,
            )
        )
    except KeyboardInterrupt:
        if not serving:
            raise
        _progress("Demo provider stopped.")
        return 0  # Ctrl-C is how --serve is meant to end
    print(shown(_summary("Logged in", "demo", "demo", token, store.token_path("demo"))))
    return 0


# --- helpers --------------------------------------------------------------------


def _given_profile_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The profile flags the user typed (in config-file form: the flags are named as the keys)."""
    from .._profiles.profile import PROFILE_KEYS

    flags = {key: getattr(args, key) for key in PROFILE_KEYS if getattr(args, key) is not None}
    params = dict(flags.pop("authorize_params", None) or {})
    if args.prompt is not None:
        params["prompt"] = args.prompt
    if params:
        flags["authorize_params"] = params
    return flags


def _accept(args: argparse.Namespace, store: Store, profile: Profile) -> None:
    """The configuration is accepted: now warn about a secret in argv, and save if asked."""
    _warn_secret_flag(args)
    if args.save:
        # Never the secret: it is kept apart (the keyring where there is one) once it works.
        flags = _given_profile_flags(args)
        flags.pop("client_secret", None)
        store.save_profile(profile.name, flags)
        _progress(f"Saved profile {profile.name!r} in {store.config_path}")


def _resolve(args: argparse.Namespace, store: Store, *, register: bool = False) -> Profile:
    from .._profiles import secrets as _secrets
    from .._profiles.profile import issuer_of, resource_of

    name = check_profile_name(args.profile)
    store.check_case(name)
    table, flags = store.profile_table(name), _given_profile_flags(args)
    if resource_of(table, flags) is not None or issuer_of(table, flags) is not None:
        from .._login.flow import resolve

        return _run(  # type: ignore[no-any-return]
            resolve(store, name, flags, register=register, say=_progress)
        )
    return _secrets.resolve(store, name, table, flags)


def _did_you_mean(args: argparse.Namespace, exc: LoopbackLoginError) -> str:
    """For a profile name that does not exist, the names it is close to."""
    name = getattr(args, "profile", None)
    if not name or not isinstance(exc, (LoginRequired, ConfigError)):
        return ""
    if hasattr(args, "provider") and _given_profile_flags(args):
        return ""  # a new profile described by flags, not a misspelled one
    try:
        names = Store(warn=lambda _: None).profile_names()
    except LoopbackLoginError:
        return ""
    if name in names:
        return ""
    import difflib

    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)"


def _resource_column(table: dict[str, Any], record: dict[str, Any] | None) -> str:
    """The RFC 8707 resource, and whether the client was registered by us (RFC 7591)."""
    resource = (record or {}).get("resource") or table.get("resource")
    if not isinstance(resource, str):
        return "-"
    dynamic = isinstance(table.get("dynamic_registration"), dict) and (
        record is None or record.get("client_id") == table.get("client_id")
    )
    return f"{resource} (registered client)" if dynamic else resource


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    rows = [[shown(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _run(coroutine: Any) -> Any:
    import asyncio

    return asyncio.run(coroutine)


def _expiry(expires_at: float | None, now: float) -> str:
    if expires_at is None:
        return "no expiry given"
    left = expires_at - now
    try:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(expires_at))
    except (OverflowError, OSError, ValueError):  # beyond what the C library can show
        return "no usable expiry"
    if left <= 0:
        return f"{when} (expired)"
    return f"{when} (in {_duration(left)})"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h"


def _who(token: Token) -> str:
    """`` as NAME`` when the provider's id_token says who logged in (OIDC Core §5.1)."""
    from .._tokens.record import jwt_claims

    claims = jwt_claims(token.raw.get("id_token")) or {}
    for claim in ("preferred_username", "email", "sub"):
        value = claims.get(claim)
        if isinstance(value, str) and value:
            return f" as {shown(value[:100])}"
    return ""


def _summary(what: str, name: str, provider: str, token: Token, path: str) -> str:
    refresh = "refresh token saved" if token.refresh_token else "no refresh token"
    expiry = _expiry(token.expires_at, time.time())
    scope = f", scope {token.scope!r}" if token.scope else ""
    return (
        f"{what}: profile {name!r} ({provider}), access token until {expiry}, "
        f"{refresh}{scope}; saved to {path}"
    )


def _print_token(
    access_token: str, token_type: str, record: dict[str, Any], args: argparse.Namespace
) -> None:
    """Print the access token alone, as a header (``--header``), or the record (``--json``)."""
    from .._tokens.record import authorization

    if args.json:
        import json

        from .._tokens.record import public_record

        print(json.dumps(public_record(record), indent=2))
    elif args.header:
        print(f"Authorization: {authorization(token_type, access_token)}")
    else:
        print(access_token)


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
        "--api-base-url",
        metavar="URL",
        help="where `api` and the Python sessions send requests, and the token "
        "(default: the preset's API, else the resource)",
    )
    add("--client-id", help="the app's client id (API key)")
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
        help="write these flags to config.toml (the secret is kept apart, in the keyring)",
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


def _no_flags(parser: argparse.ArgumentParser) -> None:
    pass


#: name: (function, help, its flags, takes a PROFILE)
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str, Callable[..., None], bool]] = {
    "login": (cmd_login, "log in through the browser and save the tokens", _login_flags, True),
    "token": (cmd_token, "print a valid access token, refreshing it if needed", _token_flags, True),
    "refresh": (cmd_refresh, "refresh the access token now", _secret_flag, True),
    "client-credentials": (
        cmd_client_credentials,
        "print a client-credentials token (cached until it expires)",
        _credentials_flags,
        True,
    ),
    "api": (
        cmd_api,
        "call the profile's API with its token (like `gh api`)",
        _api_flags,
        True,
    ),
    "status": (cmd_status, "list profiles and their tokens (no secrets)", _status_flags, False),
    "logout": (cmd_logout, "revoke (where possible) and delete the tokens", _logout_flags, True),
    "providers": (cmd_providers, "list the built-in provider presets", _no_flags, False),
    "demo": (
        cmd_demo,
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
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    # An explicit prog spares argparse a help formatter (and its imports) at start-up.
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", prog=PROG)
    for name, (func, help, add_flags, takes_profile) in COMMANDS.items():
        sub = commands.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(func=func)
        if only is None or only == name:
            if takes_profile:
                sub.add_argument("profile", metavar="PROFILE")
            add_flags(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = _parser(command if command in COMMANDS else None).parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        return int(args.func(args))
    except LoopbackLoginError as exc:
        if debug:
            import traceback

            traceback.print_exc()  # and still the exit code that scripts rely on
        print(f"{PROG}: {shown(exc)}{_did_you_mean(args, exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except BrokenPipeError:
        # The reader of our stdout went away (`... | head`): nothing left to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INTERNAL
    except Exception as exc:
        if debug:
            raise
        # Only the type: an unexpected exception's text might carry a secret.
        print(
            f"{PROG}: internal error ({type(exc).__name__}); run again with --debug and report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
