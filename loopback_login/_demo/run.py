"""``loopback-login demo``: the demo provider on loopback, and a real login to it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import serving
from .browser import DEMO_PASSWORD, DEMO_USER, ScriptedBrowser
from .provider import DemoClient, DemoProvider, RunningDemo

if TYPE_CHECKING:
    from .._store import Store
    from .._tokens.token import Token
    from .._ui import Reporter


async def run_demo(
    store: Store,
    *,
    timeout: float,
    reporter: Reporter,
    serve: Callable[[Token], None] | None = None,
) -> Token:
    """Start the demo provider on loopback and log in to it as profile ``demo``.

    With ``serve``, it is called with the token once logged in, and the provider
    keeps running until the task is cancelled (Ctrl-C).
    """
    from .._login.flow import login
    from .._login.start import SystemBrowser
    from .._profiles.profile import resolve_profile

    _refuse_to_replace(store)
    secret = secrets.token_urlsafe(24)  # a fresh demo app each run: nothing to leak
    redirect_uri = "http://127.0.0.1:0/callback"
    client = DemoClient(
        client_id="demo-app",
        client_secret=secret,
        redirect_uris=(redirect_uri,),
        any_loopback_port=True,
    )
    async with RunningDemo(DemoProvider([client])) as demo:
        reporter.say(
            f"Demo provider (behaves like Honeywell Home's API) running at {demo.base_url}"
        )
        profile = resolve_profile(
            "demo",
            None,
            {
                "provider": "demo",
                "base_url": demo.base_url,
                "client_id": client.client_id,
                "client_secret": secret,
                "redirect_uri": redirect_uri,
                "scope": "thermostats",
            },
        )
        browser: SystemBrowser | ScriptedBrowser = SystemBrowser()
        reason = browser.unavailable()
        if reason is None:
            reporter.say(
                "Opening your browser at the demo's login page: sign in as user "
                f"{DEMO_USER!r} with password {DEMO_PASSWORD!r}, then allow."
            )
        else:
            reporter.say(
                f"No browser can be opened here ({reason}); the demo plays the browser "
                "itself: it signs in as the demo user and approves the consent page."
            )
            browser = ScriptedBrowser()
        token = await login(
            profile, store=store, browser=browser, timeout=timeout, reporter=reporter
        )
        if isinstance(browser, ScriptedBrowser):
            reporter.say(browser.outcome())
        else:
            reporter.say("Your browser completed the login (a real browser, not played).")
        await _call_api(store, reporter.say)
        if serve is not None:
            # For `refresh demo` and `logout demo` in another terminal: this demo
            # runs, at this URL, with this throwaway secret (0600, like a token).
            serving.announce(store, demo.base_url, secret)
            serve(token)
            reporter.say(
                f"The demo provider keeps running at {demo.base_url} until Ctrl-C. "
                "In another terminal, try:"
            )
            for command in ("token demo", "refresh demo", "status", "logout demo"):
                reporter.say(f"    loopback-login {command}")
            try:
                await asyncio.Event().wait()  # until cancelled
            finally:
                serving.withdraw(store)
    reporter.say(
        "The demo provider has stopped; its tokens stay in the store as profile 'demo' "
        "(`loopback-login status`). `loopback-login token demo` works while the access token "
        "is valid; refreshing it needs the demo provider: `loopback-login demo --serve` keeps "
        "it running."
    )
    return token


def _refuse_to_replace(store: Store) -> None:
    """The demo logs in as profile ``demo``: never over one it did not make."""
    from .._errors import ConfigError, LoginRequired
    from .._tokens.record import DEMO_PROFILE, made_by_demo

    try:
        record = store.read_record(DEMO_PROFILE)
        demo_made = record is None or made_by_demo(DEMO_PROFILE, record["provider"])
    except LoginRequired:
        demo_made = False  # unreadable: not known to be the demo's
    if store.profile_table(DEMO_PROFILE) is not None:
        raise ConfigError(
            f"a profile named {DEMO_PROFILE!r} is configured in {store.config_path}; the demo "
            f"would replace it: rename or remove [profiles.{DEMO_PROFILE}] first"
        )
    if not demo_made:
        raise ConfigError(
            f"a profile named {DEMO_PROFILE!r} already holds tokens the demo did not make; "
            f"the demo would replace them: `loopback-login logout {DEMO_PROFILE}` first"
        )


async def _call_api(store: Store, progress: Callable[[str], None]) -> None:
    """The new token at work, as a user would call the API: through :func:`session`."""
    from .._using.aiohttp_session import session

    async with session("demo", config_dir=store.root) as api, api.get("v2/locations") as response:
        locations = await response.json() if response.status == 200 else []
    progress(
        f"Called GET /v2/locations with the new token: {response.status}, "
        f"{len(locations)} location(s)."
    )
