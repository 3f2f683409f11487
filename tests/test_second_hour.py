"""A newcomer's second hour (issue 21): logins remembered, the API key beyond the preset,
``config``, messages that say what happened, and the small glitches of output."""

from __future__ import annotations

import os
import pty
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from support import (
    CLI,
    CLIENT_ID,
    CLIENT_SECRET,
    NEUTRAL_CWD,
    Browser,
    DemoServer,
    expire,
    free_port,
    login_args,
    read_record,
    run_cli,
    token_path,
)

import loopback_login
from loopback_login._errors import in_python_terms
from loopback_login._login.flow import login
from loopback_login._profiles.profile import resolve_profile
from loopback_login._protocol import ClientAuth, other_basic
from loopback_login._ui import Terminal
from loopback_login._using.target import names_api_key


def _config(isolated_env: Path) -> dict[str, object]:
    path = isolated_env / "config.toml"
    return tomllib.loads(path.read_text()) if path.exists() else {}


def _by_urls(demo: DemoServer, redirect: str, *extra: str, profile: str = "home") -> list[str]:
    """A Honeywell-like app given by its URLs, not the preset."""
    return [
        "login",
        profile,
        "--authorize-url",
        f"{demo.base_url}/oauth2/authorize",
        "--token-url",
        f"{demo.base_url}/oauth2/token",
        "--api-base-url",
        demo.base_url,
        "--client-auth",
        "basic-raw",
        "--client-id",
        CLIENT_ID,
        "--redirect-uri",
        redirect,
        *extra,
    ]


# --- 1. a successful login remembers its profile; a failed one writes none -----------


def test_a_login_without_save_is_remembered(
    demo: DemoServer, browser: Browser, isolated_env: Path
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    first = run_cli(*login_args(demo, redirect), env=browser.env)
    assert first.returncode == 0, first.stderr
    table = _config(isolated_env)["profiles"]["home"]  # type: ignore[index]
    assert table["provider"] == "honeywell" and table["redirect_uri"] == redirect
    assert table["client_id"] == CLIENT_ID and table["base_url"] == demo.base_url
    # The name alone is enough from now on.
    again = run_cli("login", "home", env=browser.env)
    assert again.returncode == 0, again.stderr
    assert "Remembered" not in again.stderr  # nothing changed, nothing said


def test_a_failed_login_with_save_writes_no_profile(
    demo: DemoServer, browser: Browser, isolated_env: Path
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect, secret="the-real-one")
    result = run_cli(*login_args(demo, redirect, "--save"), env=browser.env)
    assert result.returncode == 4
    assert "home" not in _config(isolated_env).get("profiles", {})  # type: ignore[operator]
    assert "Saved profile" not in result.stderr
    status = run_cli("status")
    assert "home" not in status.stdout


def test_a_provider_given_anew_replaces_the_remembered_one() -> None:
    remembered = {"issuer": "https://idp.example", "client_id": "x", "scope": "openid"}
    profile = resolve_profile(
        "home", remembered, {"provider": "honeywell", "client_secret": "s", "client_id": "k"}
    )
    assert profile.provider == "honeywell" and profile.issuer is None
    assert "issuer" not in profile.settings and profile.settings["scope"] == "openid"


def test_python_errors_name_keyword_arguments() -> None:
    with pytest.raises(loopback_login.ConfigError) as caught:
        loopback_login.login_sync("nb", paste=True)
    message = str(caught.value)
    assert "provider=NAME" in message and "authorize_url=" in message
    assert "--" not in message
    # The command line still names its flags.
    result = run_cli("login", "nb", "--paste")
    assert result.returncode == 2 and "--provider NAME" in result.stderr


@pytest.mark.parametrize(
    ("cli", "python"),
    [
        ("give --provider NAME, or --authorize-url", "give provider=NAME, or authorize_url=..."),
        ("pass --client-secret or set $X", "pass client_secret=... or set $X"),
        ("try --client-auth basic-raw", "try client_auth='basic-raw'"),
        ("drop --no-pkce", "drop pkce=False"),
        ("or run again with --paste", "or run again with paste=True"),
        ("run `loopback-login demo`", "run `loopback-login demo`"),
    ],
)
def test_in_python_terms(cli: str, python: str) -> None:
    assert in_python_terms(cli) == python


# --- 2. the API key is a profile setting ----------------------------------------------


def test_an_app_given_by_urls_sends_its_api_key(demo: DemoServer, browser: Browser) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    login = run_cli(*_by_urls(demo, redirect, "--api-key-param", "apikey"), env=browser.env)
    assert login.returncode == 0, login.stderr
    assert read_record()["api_key_param"] == "apikey"
    api = run_cli("api", "home", "/v2/locations")
    assert api.returncode == 0, api.stderr
    assert '"locationID"' in api.stdout


def test_an_answer_naming_the_api_key_is_a_wrong_key_without_a_refresh(
    demo: DemoServer, browser: Browser
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    login = run_cli(*_by_urls(demo, redirect), env=browser.env)  # no --api-key-param
    assert login.returncode == 0, login.stderr
    refreshes = demo.provider.requests["refresh_token"]
    api = run_cli("api", "home", "/v2/locations")
    assert api.returncode == 4
    last = api.stderr.strip().splitlines()[-1]
    assert "refused the request for its API key (401)" in last
    assert "loopback-login config home api_key_param NAME" in last
    assert "Invalid ApiKey" in api.stdout  # the body, as it came
    assert demo.provider.requests["refresh_token"] == refreshes  # no refresh spent
    # Set it, without a login: the next call works.
    config = run_cli("config", "home", "api_key_param", "apikey")
    assert config.returncode == 0, config.stderr
    assert run_cli("api", "home", "/v2/locations").returncode == 0


def test_the_python_session_does_not_refresh_for_a_wrong_key(
    demo: DemoServer, browser: Browser
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    assert run_cli(*_by_urls(demo, redirect), env=browser.env).returncode == 0
    requests = pytest.importorskip("requests")
    refreshes = demo.provider.requests["refresh_token"]
    response = requests.get(
        f"{demo.base_url}/v2/locations", auth=loopback_login.RequestsAuth("home")
    )
    assert response.status_code == 401 and "Invalid ApiKey" in response.text
    assert demo.provider.requests["refresh_token"] == refreshes


@pytest.mark.parametrize(
    ("body", "param", "named"),
    [
        (b'{"ErrorCode": "invalid_request", "Error": "Invalid ApiKey"}', None, True),
        (b'{"fault": {"detail": {"errorcode": "oauth.v2.InvalidApiKey"}}}', None, True),
        (b'{"fault": {"faultstring": "Failed to resolve API Key variable"}}', None, True),
        (b'{"error": "invalid_key", "message": "key is invalid"}', "key", True),
        (b'{"error": "invalid_token"}', "apikey", False),
        (b'{"query": {"apikey": "123abc"}}', "apikey", False),  # an echo only names it
        (b"", "apikey", False),
    ],
)
def test_names_api_key(body: bytes, param: str | None, named: bool) -> None:
    assert names_api_key(body, param) is named


# --- 3. config NAME [KEY VALUE] -------------------------------------------------------


def test_config_shows_and_sets_settings(
    demo: DemoServer, browser: Browser, isolated_env: Path
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    assert run_cli(*login_args(demo, redirect), env=browser.env).returncode == 0
    shown = run_cli("config", "home")
    assert shown.returncode == 0, shown.stderr
    assert 'provider = "honeywell"' in shown.stdout
    assert 'api_key_param = "apikey"' in shown.stdout
    assert "# client secret: config file" in shown.stdout
    assert CLIENT_SECRET not in shown.stdout + shown.stderr
    moved = run_cli("config", "home", "api_base_url", "http://127.0.0.1:9/")
    assert moved.returncode == 0, moved.stderr
    assert read_record()["api_base_url"] == "http://127.0.0.1:9/"  # `api` reads the record
    assert _config(isolated_env)["profiles"]["home"]["api_base_url"] == "http://127.0.0.1:9/"  # type: ignore[index]
    skew = run_cli("config", "home", "skew", "120")
    assert skew.returncode == 0 and read_record()["skew"] == 120
    unknown = run_cli("config", "home", "colour", "blue")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "loopback-login: unknown setting 'colour'; `config` sets: api_base_url, api_key_param, "
        "scope, skew, client_check, revocation_url"
    ]
    login_key = run_cli("config", "home", "client_id", "x")
    assert login_key.returncode == 2 and "login setting" in login_key.stderr
    bad = run_cli("config", "home", "api_base_url", "http://example.com")
    assert bad.returncode == 2 and "must use https" in bad.stderr
    assert run_cli("config", "nobody").returncode == 2


def test_an_api_base_url_is_set_without_a_new_login(demo: DemoServer, browser: Browser) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    args = _by_urls(demo, redirect)
    del args[args.index("--api-base-url") : args.index("--api-base-url") + 2]
    assert run_cli(*args, env=browser.env).returncode == 0
    exchanges = demo.provider.requests["authorization_code"]
    refused = run_cli("api", "home", "/v2/locations")
    assert refused.returncode == 2
    assert "set it with `loopback-login config home api_base_url URL`" in refused.stderr
    for key, value in (("api_base_url", demo.base_url), ("api_key_param", "apikey")):
        assert run_cli("config", "home", key, value).returncode == 0
    assert run_cli("api", "home", "/v2/locations").returncode == 0
    assert demo.provider.requests["authorization_code"] == exchanges  # no login on the way


# --- 4. Basic encodings ---------------------------------------------------------------


def test_the_other_basic_encoding_is_named_only_when_it_differs() -> None:
    assert other_basic(ClientAuth.BASIC, "id", "s3cr+t/") == "basic-raw"
    assert other_basic(ClientAuth.BASIC_RAW, "id", "a:b") == "basic"
    assert other_basic(ClientAuth.BASIC, "id", "plain-Secret_1") is None
    assert other_basic(ClientAuth.POST, "id", "s3cr+t/") is None
    assert other_basic(ClientAuth.BASIC, "a:b", "s3cr+t/") is None  # basic-raw cannot send it


def test_a_refused_plain_secret_gets_no_encoding_hint(demo: DemoServer, browser: Browser) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect, secret="the-real-one")
    result = run_cli(
        *login_args(demo, redirect),
        env={**browser.env, "LOOPBACK_LOGIN_CLIENT_SECRET": "plain-wrong-one"},
    )
    assert result.returncode == 4
    assert "refused the client id or secret" in result.stderr
    assert "--client-auth" not in result.stderr


# --- 5. timeouts that blame the right thing -------------------------------------------


def test_a_timeout_without_a_browser_says_none_was_opened(demo: DemoServer) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    result = run_cli(*login_args(demo, redirect, "--no-browser", "--timeout", "1"))
    assert result.returncode == 5
    last = result.stderr.strip().splitlines()[-1]
    assert "no browser was opened here (--no-browser)" in last
    assert "open the printed URL" in last and "--paste" in last
    assert "Look at the browser" not in last and "not registered" not in last


def test_an_unreachable_token_endpoint_is_said_while_waiting(demo: DemoServer) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    closed = free_port()  # nobody listens there: refused
    result = run_cli(
        "login",
        "home",
        "--authorize-url",
        f"{demo.base_url}/oauth2/authorize",
        "--token-url",
        f"http://127.0.0.1:{closed}/token",
        "--client-id",
        CLIENT_ID,
        "--redirect-uri",
        redirect,
        "--no-browser",
        "--timeout",
        "5",
    )
    assert result.returncode == 5
    lines = result.stderr.strip().splitlines()
    warning = next(i for i, line in enumerate(lines) if "cannot be reached" in line)
    assert (
        f"token endpoint at 127.0.0.1:{closed} cannot be reached (Connection refused)"
        in (lines[warning])
    )
    assert warning < len(lines) - 1  # said before the wait ended, not at its end


class _SilentPlayer:
    """A played browser (as the demo's) that never comes back."""

    plays_itself = True

    def unavailable(self) -> str | None:
        return None

    def open(self, url: str, say: Callable[[str], None]) -> None:
        pass


async def test_a_timeout_while_the_demo_plays_the_browser_says_so(demo: DemoServer) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    profile = resolve_profile(
        "home",
        None,
        {
            "provider": "honeywell",
            "base_url": demo.base_url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": redirect,
        },
    )
    with pytest.raises(loopback_login.LoginTimeout) as caught:
        await login(profile, browser=_SilentPlayer(), timeout=1, reporter=Terminal())
    message = str(caught.value)
    assert "the demo played the browser itself and it never came back" in message
    assert "not registered" not in message and "Look at the browser" not in message


# --- 6. the demo's dead ends ------------------------------------------------------------


def test_after_the_demo_is_gone_commands_point_to_the_demo(isolated_env: Path) -> None:
    demo = run_cli("demo", "--timeout", "30")
    assert demo.returncode == 0, demo.stderr
    api = run_cli("api", "demo", "/v2/locations")  # the demo provider has stopped
    assert api.returncode == 4
    assert "`loopback-login demo --serve`" in api.stderr.strip().splitlines()[-1]
    expire("demo")
    assert run_cli("logout", "demo").returncode == 0
    token = run_cli("token", "demo")
    assert token.returncode == 3
    assert token.stderr.strip().splitlines() == [
        "loopback-login: no tokens for profile 'demo'; run `loopback-login demo` "
        "(or `loopback-login demo --serve`)"
    ]


# --- 7. output glitches -----------------------------------------------------------------


def test_short_version_and_examples_in_each_help() -> None:
    assert run_cli("-V").stdout == run_cli("--version").stdout != ""
    for command in ("login", "token", "api", "config", "logout", "demo", "status"):
        help_text = run_cli(command, "--help").stdout
        assert f"examples:\n  loopback-login {command}" in help_text, command
    save = " ".join(run_cli("login", "--help").stdout.split())
    assert "a successful login always remembers these settings" in save


def _api_on_a_terminal(*args: str) -> bytes:
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [CLI, *args], stdout=follower, stderr=subprocess.DEVNULL, cwd=NEUTRAL_CWD
        )
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other end is closed
                break
            if not chunk:
                break
            out += chunk
        process.wait(30)
        return out
    finally:
        os.close(leader)


def test_an_api_body_without_a_final_newline(demo: DemoServer, browser: Browser) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    assert run_cli(*login_args(demo, redirect), env=browser.env).returncode == 0
    piped = subprocess.run(
        [CLI, "api", "home", "/nothing-here"], capture_output=True, cwd=NEUTRAL_CWD, timeout=30
    )
    assert piped.returncode == 4
    assert piped.stdout == b"404: Not Found"  # byte for byte
    assert _api_on_a_terminal("api", "home", "/nothing-here") == b"404: Not Found\r\n"


def test_logout_forget_leaves_nothing_behind(
    demo: DemoServer, browser: Browser, isolated_env: Path
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    assert run_cli(*login_args(demo, redirect), env=browser.env).returncode == 0
    expire()
    assert run_cli("token", "home").returncode == 0  # a refresh: it takes the lock
    assert Path(str(token_path()) + ".lock").exists()
    forget = run_cli("logout", "home", "--forget")
    assert forget.returncode == 0, forget.stderr
    assert sorted(p.name for p in isolated_env.rglob("*") if p.is_file()) == ["config.toml"]
    assert "home" not in _config(isolated_env).get("profiles", {})  # type: ignore[operator]
