"""One function per command: thin, over the package's flows, printing through :mod:`.output`.

Heavy modules are imported only by the commands that need them: ``token``
with a fresh token reads one file and prints.
"""

from __future__ import annotations

import json
import sys
import time

from .._errors import ConfigError, LoginRequired, LoopbackLoginError
from .._store import Store, check_profile_name
from .._text import shown
from .output import expiry_text, print_table, print_token, progress, resource_column, summary, who

TYPE_CHECKING = False
if TYPE_CHECKING:
    from argparse import Namespace
    from typing import Any

    from .._profiles.profile import Profile
    from .._tokens.record import TokenRecord
    from .._tokens.token import Token


def _warn_secret_flag(args: Namespace) -> None:
    """Once the configuration is accepted: a secret in argv is visible to other users."""
    _warn_secret_given(getattr(args, "client_secret", None))


def _warn_secret_given(secret: str | None) -> None:
    if secret:
        progress(
            "loopback-login: warning: --client-secret is visible to other users of this machine "
            "(ps) and stays in your shell history; set LOOPBACK_LOGIN_CLIENT_SECRET instead"
        )


# --- commands -------------------------------------------------------------------


def cmd_login(args: Namespace) -> int:
    from .._login.start import check_login, start_login, use_device
    from .._ui import Terminal

    store = Store()
    profile = _resolve(args, store, login=True)
    reporter = Terminal()
    device = use_device(
        profile,
        device=args.device,
        paste=args.paste,
        open_browser=not args.no_browser,
        reporter=reporter,
    )
    if device:
        _accept(args, profile)  # the profile is remembered once the login has worked
        from .._login.device import device_login

        token = _run(
            device_login(
                profile,
                store=store,
                open_browser=not args.no_browser,
                timeout=args.timeout,
                reporter=reporter,
            )
        )
        return _logged_in(store, profile, token)
    check_login(profile, paste=args.paste)
    _accept(args, profile)  # the profile is remembered once the login has worked (--save or not)
    # The browser opens first; asyncio and aiohttp load while the person logs in.
    started = start_login(
        profile,
        open_browser=not args.no_browser,
        paste=args.paste,
        fallback_paste=args.fallback == "paste",
        reporter=reporter,
    )
    from .._login.flow import finish_login  # owns `started` from here: closes its listener

    token = _run(
        finish_login(profile, started, store=store, timeout=args.timeout, reporter=reporter)
    )
    return _logged_in(store, profile, token)


def _logged_in(store: Store, profile: Profile, token: Token) -> int:
    path = store.token_path(profile.name)
    print(shown(summary(f"Logged in{who(token)}", profile.name, profile.provider, token, path)))
    return 0


def cmd_token(args: Namespace) -> int:
    shape = "header" if args.header else "json" if args.json else None
    return token(args.profile, shape=shape, client_secret=args.client_secret)


def token(profile: str, *, shape: str | None, client_secret: str | None = None) -> int:
    """``token NAME``: the access token (or ``shape``: ``header``, ``json``), fresh."""
    from .._tokens.record import is_fresh

    store = Store()
    name = check_profile_name(profile)
    record = store.require_record(name)
    _warn_secret_given(client_secret)
    if not is_fresh(record):
        from .._tokens.refresh import refresh_stored

        _run(refresh_stored(store, name, client_secret=client_secret))
        record = store.require_record(name)
    print_token(record, shape)
    return 0


def cmd_refresh(args: Namespace) -> int:
    from .._tokens.refresh import refresh_stored

    store = Store()
    name = check_profile_name(args.profile)
    _warn_secret_flag(args)
    token = _run(refresh_stored(store, name, force=True, client_secret=args.client_secret))
    provider = str(store.require_record(name)["provider"])
    print(shown(summary("Refreshed", name, provider, token, store.token_path(name))))
    return 0


def cmd_client_credentials(args: Namespace) -> int:
    store = Store()
    profile = _resolve(args, store, client_credentials=True)
    _accept(args, profile)
    from .._tokens.client_credentials import fetch_client_credentials

    _run(fetch_client_credentials(profile, store))
    if args.save:  # after success only: a failed request leaves no half profile
        store.save_profile(profile.name, dict(profile.settings))
        progress(f"Saved profile {profile.name!r} in {store.config_path}")
    record = store.require_record(profile.name, store.client_credentials_path(profile.name))
    print_token(record, "header" if args.header else "json" if args.json else None)
    return 0


def cmd_api(args: Namespace) -> int:
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


def cmd_status(args: Namespace) -> int:
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
        progress(f"No profiles yet in {store.root}; try `loopback-login demo`.")
        return 0
    tables = store.read_config().get("profiles", {})
    from .._profiles.profile import env_secret_refusal
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
        # Where it comes from, never the secret.
        secret = source(store, name, env=env_secret_refusal(table, {}, None) is None)
        resource = resource_column(table, None)  # for rows without a record
        kinds = (
            ("login", store.token_path(name)),
            ("client-credentials", store.client_credentials_path(name)),
        )
        listed = False
        for kind, path in kinds:
            try:
                record = store.read_record(name, path)
            except LoopbackLoginError:  # one bad record never hides the others
                rows.append(
                    (name, provider, "-", "unreadable", "-", "-", kind, secret, resource, path)
                )
                listed = True
                continue
            if record is None:
                continue
            token = token_from_record(record)
            listed = True
            rows.append(
                (
                    name,
                    str(record.get("provider") or provider),
                    str((jwt_claims(token.raw.get("id_token")) or {}).get("sub") or "-"),
                    expiry_text(token.expires_at, now),
                    token.scope or "-",
                    "yes" if token.refresh_token else "no",
                    # Which flow the login used: loopback, paste or device (RFC 8628).
                    f"{kind} ({record['flow']})" if record["flow"] else kind,
                    secret,
                    resource_column(table, record),
                    path,
                )
            )
        if not listed:
            rows.append(
                (name, provider, "-", "not logged in", "-", "-", "-", secret, resource, "-")
            )
    print_table(rows)
    return 0


def cmd_logout(args: Namespace) -> int:
    from .._tokens.logout import logout

    store = Store()
    name = check_profile_name(args.profile)
    _warn_secret_flag(args)
    done = _run(
        logout(store, name, client_secret=args.client_secret, revoke_tokens=not args.local_only)
    )
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
        # What the profile left behind: its refresh lock and its cached provider metadata.
        for path in (store.lock_path(name), store.metadata_path(name)):
            store.remove(path)
        if forgotten:
            print(f"Forgot profile {name!r}: removed {' and '.join(forgotten)}")
        elif not done:
            progress(f"Nothing stored for profile {name!r}; nothing to do.")
    elif not done:
        progress(f"No tokens stored for profile {name!r}; nothing to do.")
    return 0


def cmd_config(args: Namespace) -> int:
    """``config NAME``: the profile's settings (no secrets); ``config NAME KEY VALUE``: set one."""
    from .._profiles.profile import parse_setting
    from .._tokens.record import RECORD_SETTINGS

    store = Store()
    name = check_profile_name(args.profile)
    if args.key is not None and args.value is None:
        raise ConfigError(f"give the value too: `loopback-login config {name} {args.key} VALUE`")
    value = parse_setting(args.key, args.value) if args.key is not None else None
    table = store.profile_table(name)
    paths = (store.token_path(name), store.client_credentials_path(name))
    records = [(path, store.read_record(name, path)) for path in paths]
    if table is None and not any(record for _, record in records):
        raise ConfigError(f"no profile named {name!r}; `loopback-login status` lists them")
    if args.key is None:
        _show_settings(store, name, table or {}, [record for _, record in records if record])
        return 0
    store.save_profile(name, {args.key: value})
    if args.key in RECORD_SETTINGS:
        # The token record carries its own copy, which `api`, `token` and `refresh` read.
        _run(_update_records(store, name, args.key, value, paths))
    shown_value = "(default)" if value is None else json.dumps(value)
    print(f"Set {args.key} = {shown(shown_value)} for profile {name!r} in {store.config_path}")
    if args.key not in RECORD_SETTINGS:
        progress(
            f"loopback-login: {args.key} takes effect at the next `loopback-login login {name}`"
        )
    return 0


async def _update_records(
    store: Store, name: str, key: str, value: Any, paths: tuple[str, ...]
) -> None:
    """Change one setting in the profile's token records, under the refresh lock."""
    async with store.refresh_lock(name):
        for path in paths:
            record = store.read_record(name, path)
            if record is not None:
                changed: dict[str, Any] = {**record, key: value}
                store.write_record(name, changed, path)  # type: ignore[arg-type]


def _show_settings(
    store: Store, name: str, table: dict[str, Any], records: list[TokenRecord]
) -> None:
    from .._profiles.profile import PROFILE_KEYS, env_secret_refusal
    from .._profiles.secrets import source
    from .._tokens.record import RECORD_SETTINGS

    settings: dict[str, Any] = {}
    for record in records:  # what the last login used, under what config.toml says now
        settings.update((k, record[k]) for k in RECORD_SETTINGS if record.get(k) is not None)  # type: ignore[literal-required]
    settings.update((k, v) for k, v in table.items() if k in PROFILE_KEYS)
    settings.pop("profile", None)
    settings.pop("client_secret", None)  # never shown: where it is kept, below
    print(f"# profile {name!r}: {store.config_path}")
    for key in sorted(settings):
        print(shown(f"{key} = {json.dumps(settings[key])}"))
    usable = env_secret_refusal(table, {}, None) is None  # may the environment's secret serve it
    print(f"# client secret: {source(store, name, env=usable)}")


def cmd_providers(args: Namespace) -> int:
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
    print_table(rows)
    return 0


def cmd_demo(args: Namespace) -> int:
    from .._demo.run import run_demo

    store = Store()
    from .._ui import Terminal

    serving = False

    def serve(token: Token) -> None:
        nonlocal serving
        serving = True
        print(
            shown(summary("Logged in", "demo", "demo", token, store.token_path("demo"))),
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
        progress("Demo provider stopped.")
        return 0  # Ctrl-C is how --serve is meant to end
    print(shown(summary("Logged in", "demo", "demo", token, store.token_path("demo"))))
    return 0


# --- helpers --------------------------------------------------------------------


def given_profile_flags(args: Namespace) -> dict[str, Any]:
    """The profile flags the user typed (in config-file form: the flags are named as the keys)."""
    from .._profiles.profile import PROFILE_KEYS

    flags = {key: getattr(args, key) for key in PROFILE_KEYS if getattr(args, key) is not None}
    params = dict(flags.pop("authorize_params", None) or {})
    if args.prompt is not None:
        params["prompt"] = args.prompt
    if params:
        flags["authorize_params"] = params
    return flags


def _accept(args: Namespace, profile: Profile) -> None:
    """The configuration is accepted: now the warnings (a secret in argv, one unused)."""
    _warn_secret_flag(args)
    if profile.unused_environment is not None:
        from .._profiles.secrets import warn_unused_environment

        warn_unused_environment(profile.name, profile.unused_environment)


def _resolve(
    args: Namespace, store: Store, *, login: bool = False, client_credentials: bool = False
) -> Profile:
    from .._profiles.resolve import resolve_blocking

    return resolve_blocking(
        store,
        args.profile,
        given_profile_flags(args),
        register=login,
        say=progress,
        defer_secret=login,
        client_credentials=client_credentials,
    )


def _run(coroutine: Any) -> Any:
    import asyncio

    return asyncio.run(coroutine)
