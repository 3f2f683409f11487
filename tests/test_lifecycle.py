"""Tokens that stay fresh: refresh and rotation, single flight across processes,
retries, client credentials, revocation, and the Python API, end to end."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import (
    CLIENT_ID,
    CLIENT_SECRET,
    NEUTRAL_CWD,
    Browser,
    DemoServer,
    FakeTime,
    expire,
    free_port,
    login_home,
    read_record,
    run_cli,
    start_cli,
    token_path,
    token_record,
)

import loopback_login
from loopback_login._errors import TokenEndpointError
from loopback_login._store import Store
from loopback_login._tokens.refresh import refresh_stored


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.strip().splitlines()[-1]


def test_expired_token_is_refreshed_and_the_rotated_refresh_token_saved(
    demo: DemoServer, browser: Browser
) -> None:
    before = login_home(demo, browser)
    expire()
    result = run_cli("token", "home")
    assert result.returncode == 0, result.stderr
    after = read_record()
    assert result.stdout == after["access_token"] + "\n"
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"]
    assert after["expires_at"] > time.time() + 1700
    assert demo.provider.requests["refresh_token"] == 1
    # The provider rotated: only the saved one is still good.
    assert not demo.provider.is_valid_refresh_token(before["refresh_token"])
    assert demo.provider.is_valid_refresh_token(after["refresh_token"])
    assert result.stderr == ""
    # The settings survive a refresh.
    assert {k: after[k] for k in ("client_id", "token_url", "client_auth", "provider")} == {
        k: before[k] for k in ("client_id", "token_url", "client_auth", "provider")
    }
    # Valid now: no further refresh.
    assert run_cli("token", "home").stdout == result.stdout
    assert demo.provider.requests["refresh_token"] == 1


def test_refresh_without_a_new_refresh_token_keeps_the_old_one(
    demo: DemoServer, browser: Browser
) -> None:
    before = login_home(demo, browser)
    demo.provider.faults.no_rotation = True
    result = run_cli("refresh", "home")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Refreshed: profile 'home' (honeywell)")
    after = read_record()
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] == before["refresh_token"]
    assert "refresh_token" not in after["raw"]


@pytest.mark.parametrize("fault", ["invalid_grant", "already_rotated"])
def test_rejected_refresh_token_means_login_again_and_keeps_the_file(
    demo: DemoServer, browser: Browser, fault: str
) -> None:
    login_home(demo, browser)
    if fault == "invalid_grant":
        demo.provider.faults.invalid_grant = True
        expire()
    else:
        # Apigee's own words for a spent refresh token: "Invalid Refresh Token".
        stale = expire()
        assert run_cli("token", "home").returncode == 0
        token_path().write_text(json.dumps({**stale, "expires_at": time.time() - 1}))
    content = token_path().read_bytes()
    result = run_cli("token", "home")
    assert result.returncode == 3
    assert result.stdout == ""
    assert _last_line(result).endswith("run `loopback-login login home` again")
    assert "no longer accepts the refresh token of profile 'home'" in _last_line(result)
    assert token_path().read_bytes() == content


async def test_one_gateway_error_then_success(demo: DemoServer, browser: Browser) -> None:
    login_home(demo, browser)
    expire()
    demo.provider.faults.token_errors = [502]
    waits = FakeTime()
    token = await refresh_stored(Store(), "home", retry=waits.policy())
    assert token.access_token == read_record()["access_token"]
    assert demo.provider.requests["refresh_token"] == 2
    assert waits.slept == [0.5]  # the first backoff, at its longest jitter


async def test_429_waits_for_retry_after(demo: DemoServer, browser: Browser) -> None:
    login_home(demo, browser)
    expire()
    demo.provider.faults.token_errors = [429]
    demo.provider.faults.retry_after = "1"
    waits = FakeTime()
    token = await refresh_stored(Store(), "home", retry=waits.policy())
    assert token.access_token == read_record()["access_token"]
    assert sum(waits.slept) >= 1.0  # Retry-After honoured
    assert demo.provider.requests["refresh_token"] == 2


async def test_persistent_gateway_errors_give_up_and_keep_the_record(
    demo: DemoServer, browser: Browser
) -> None:
    login_home(demo, browser)
    expire()
    content = token_path().read_bytes()
    demo.provider.faults.token_errors = [503] * 10
    waits = FakeTime()
    with pytest.raises(TokenEndpointError) as failed:
        await refresh_stored(Store(), "home", retry=waits.policy())
    assert failed.value.exit_code == 4
    assert str(failed.value) == "the token endpoint answered 503 Service Unavailable"
    assert 2 <= demo.provider.requests["refresh_token"] <= 4  # bounded
    assert waits.slept == [0.5, 1.0, 2.0]
    assert token_path().read_bytes() == content


async def test_retries_stop_at_the_time_budget(demo: DemoServer, browser: Browser) -> None:
    login_home(demo, browser)
    expire()
    demo.provider.faults.token_errors = [503] * 10
    waits = FakeTime()
    with pytest.raises(TokenEndpointError):
        await refresh_stored(Store(), "home", retry=waits.policy(budget=1.6))
    assert waits.slept == [0.5, 1.0]  # a third wait of 2 s would overrun 1.6 s
    assert demo.provider.requests["refresh_token"] == 3


def test_connection_lost_after_sending_is_not_resent(demo: DemoServer, browser: Browser) -> None:
    login_home(demo, browser)
    expire()
    content = token_path().read_bytes()
    demo.provider.faults.drop_connection = 1
    result = run_cli("token", "home")
    assert result.returncode == 4
    assert "broke" in _last_line(result)
    assert demo.provider.requests["refresh_token"] == 1
    assert token_path().read_bytes() == content


def test_unreachable_provider_is_a_network_error(demo: DemoServer, browser: Browser) -> None:
    login_home(demo, browser)
    record = expire()
    nowhere = f"http://127.0.0.1:{free_port()}/oauth2/token"  # nothing listens there
    token_path().write_text(json.dumps({**record, "expires_at": 0, "token_url": nowhere}))
    result = run_cli("token", "home")
    assert result.returncode == 4
    assert "could not connect to the token endpoint at 127.0.0.1" in _last_line(result)


def test_refresh_storm_makes_one_request(demo: DemoServer, browser: Browser) -> None:
    login_home(demo, browser)
    expire()
    processes = [start_cli("token", "home") for _ in range(24)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * 24, outputs
    tokens = {stdout for stdout, _ in outputs}
    assert tokens == {read_record()["access_token"] + "\n"}
    assert demo.provider.requests["refresh_token"] == 1


def test_secret_from_environment_for_a_profile_saved_without_it(
    demo: DemoServer, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    # The secret came from a flag and was kept; a profile that lost it (removed by hand):
    login_home(demo, browser, "--client-secret", CLIENT_SECRET)
    config = token_path().parent.parent / "config.toml"
    config.write_text(config.read_text().replace(f'client_secret = "{CLIENT_SECRET}"\n', ""))
    expire()
    missing = run_cli("token", "home")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "loopback-login: profile 'home' needs its client secret: pass --client-secret or set "
        "$LOOPBACK_LOGIN_CLIENT_SECRET once (it is kept for the profile after one login)"
    ]
    with_env = run_cli("token", "home", env={"LOOPBACK_LOGIN_CLIENT_SECRET": CLIENT_SECRET})
    assert with_env.returncode == 0, with_env.stderr
    expire()
    with_flag = run_cli("token", "home", "--client-secret", CLIENT_SECRET)
    assert with_flag.returncode == 0, with_flag.stderr
    assert with_flag.stdout == read_record()["access_token"] + "\n"
    assert with_flag.stderr.splitlines() == [
        "loopback-login: warning: --client-secret is visible to other users of this machine "
        "(ps) and stays in your shell history; set LOOPBACK_LOGIN_CLIENT_SECRET instead"
    ]


def test_client_credentials_cached_until_expiry(demo: DemoServer, browser: Browser) -> None:
    flags = ["--provider", "honeywell", "--base-url", demo.base_url, "--client-id", CLIENT_ID]
    env = {"LOOPBACK_LOGIN_CLIENT_SECRET": CLIENT_SECRET}
    demo.register("http://127.0.0.1:1/callback")
    first = run_cli("client-credentials", "svc", *flags, "--save", env=env)
    assert first.returncode == 0, first.stderr
    assert demo.provider.requests["client_credentials"] == 1
    again = run_cli("client-credentials", "svc", env=env)  # from config.toml now
    assert again.stdout == first.stdout
    assert demo.provider.requests["client_credentials"] == 1
    cache = token_path("client-credentials/svc")
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    record = json.loads(cache.read_text())
    assert record["raw"]["token_type"] == "BearerToken" and "refresh_token" not in record
    cache.write_text(json.dumps({**record, "expires_at": time.time() - 1}))
    refetched = run_cli("client-credentials", "svc", "--header", env=env)
    assert refetched.returncode == 0
    assert refetched.stdout.startswith("Authorization: Bearer ")
    assert refetched.stdout.split()[-1] + "\n" != first.stdout
    assert demo.provider.requests["client_credentials"] == 2
    # A client-credentials cache is not a login.
    assert run_cli("token", "svc").returncode == 3


def test_logout_revokes_where_the_provider_can(demo: DemoServer, browser: Browser) -> None:
    record = login_home(demo, browser, provider="demo")
    assert record["revocation_url"] == f"{demo.base_url}/oauth2/revoke"
    result = run_cli("logout", "home")
    assert result.returncode == 0, result.stderr
    assert "revoked at the provider and deleted" in result.stdout
    assert demo.provider.requests["revoke"] == 1
    assert not demo.provider.is_valid_refresh_token(record["refresh_token"])
    assert not token_path().exists()


def test_failed_revocation_still_deletes_and_says_so(demo: DemoServer, browser: Browser) -> None:
    record = login_home(demo, browser, provider="demo")
    demo.provider.faults.token_errors = [400]
    result = run_cli("logout", "home", "--client-secret", CLIENT_SECRET)
    assert result.returncode == 4
    assert _last_line(result).startswith(
        "loopback-login: deleted the tokens of profile 'home' here, but revoking them "
        "at the provider failed: the revocation endpoint answered 400"
    )
    assert not token_path().exists()
    assert demo.provider.is_valid_refresh_token(record["refresh_token"])


def test_logout_without_revocation_endpoint_just_deletes(
    demo: DemoServer, browser: Browser
) -> None:
    login_home(demo, browser)  # honeywell: no revocation endpoint
    result = run_cli("logout", "home")
    assert result.returncode == 0 and "tokens deleted" in result.stdout
    assert demo.provider.requests["revoke"] == 0
    assert run_cli("logout", "home").returncode == 0  # nothing left: still fine


def test_killed_mid_write_leaves_the_previous_file_whole(isolated_env: Path) -> None:
    store = Store()
    store.write_record("home", token_record(access_token="old"))
    before = token_path().read_bytes()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, time\n"
            "os.replace = lambda *a: time.sleep(600)  # the crash comes before the rename\n"
            "from loopback_login._store import Store\n"
            "Store().write_record('home', {'access_token': 'new' * 1000})\n",
        ],
        cwd=NEUTRAL_CWD,
    )
    tokens = isolated_env / "tokens"
    deadline = time.monotonic() + 30
    while not any(p.name.endswith(".tmp") for p in tokens.iterdir()):
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.02)
    time.sleep(0.1)  # fully written and fsynced by now, only the rename is pending
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert token_path().read_bytes() == before
    assert json.loads(token_path().read_text())["access_token"] == "old"


# --- the Python API -------------------------------------------------------------------


def test_python_api_sync(
    demo: DemoServer, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    login_home(demo, browser)
    monkeypatch.setenv("LOOPBACK_LOGIN_CLIENT_SECRET", CLIENT_SECRET)
    token = loopback_login.get_token_sync("home")
    assert token.access_token == read_record()["access_token"]
    assert demo.provider.requests["refresh_token"] == 0
    expire()
    fresh = loopback_login.get_token_sync("home")
    assert fresh.access_token != token.access_token
    assert fresh.access_token == read_record()["access_token"]
    forced = loopback_login.refresh_sync("home")
    assert forced.access_token not in (token.access_token, fresh.access_token)
    assert demo.provider.requests["refresh_token"] == 2
    with pytest.raises(loopback_login.LoginRequired):
        loopback_login.get_token_sync("nobody")


async def test_python_api_async_and_sync_inside_a_running_loop(
    demo: DemoServer, browser: Browser
) -> None:
    login_home(demo, browser)
    expire()
    token = await loopback_login.get_token("home")
    assert token.access_token == read_record()["access_token"]
    expire()
    # A loop is running here, as in Jupyter: the sync twin must still work.
    again = loopback_login.get_token_sync("home")
    assert again.access_token == read_record()["access_token"] != token.access_token
    credentials = loopback_login.client_credentials_sync(
        "svc", provider="honeywell", base_url=demo.base_url, client_id=CLIENT_ID
    )
    assert credentials.refresh_token is None and credentials.token_type == "Bearer"
    with pytest.raises(loopback_login.TokenEndpointError) as caught:
        await loopback_login.client_credentials(
            "svc2",
            provider="honeywell",
            base_url=demo.base_url,
            client_id=CLIENT_ID,
            client_secret="wrong",
        )
    assert caught.value.status == 401 and caught.value.error == "invalid_client"
    assert "wrong" not in str(caught.value)


def test_status_shows_expiry_and_refresh_token(demo: DemoServer, browser: Browser) -> None:
    login_home(demo, browser)
    result = run_cli("status", "home")
    row = result.stdout.splitlines()[1]
    assert "(in 29 min)" in row and " yes " in row
    expire()
    assert "(expired)" in run_cli("status").stdout


def test_get_token_from_memory_notices_another_process_refresh(
    demo: DemoServer, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    login_home(demo, browser)
    first = loopback_login.get_token_sync("home")

    def no_loop(*args: object) -> None:
        raise AssertionError("a valid token needs no event loop and no thread")

    monkeypatch.setattr("loopback_login._api.run_sync", no_loop)
    assert loopback_login.get_token_sync("home") is first  # from memory
    # Another process refreshes: the file is replaced, and the next call sees it.
    assert run_cli("refresh", "home").returncode == 0
    fresh = loopback_login.get_token_sync("home")
    assert fresh.access_token == read_record()["access_token"] != first.access_token


def test_client_credentials_cache_follows_the_scope(demo: DemoServer, browser: Browser) -> None:
    flags = ["--provider", "honeywell", "--base-url", demo.base_url, "--client-id", CLIENT_ID]
    demo.register("http://127.0.0.1:1/callback")
    first = run_cli("client-credentials", "svc", *flags, "--scope", "read")
    same = run_cli("client-credentials", "svc", *flags, "--scope", "read")
    other = run_cli("client-credentials", "svc", *flags, "--scope", "write")
    assert first.returncode == same.returncode == other.returncode == 0
    assert first.stdout == same.stdout != other.stdout
    assert demo.provider.requests["client_credentials"] == 2


def test_logout_without_the_secret_to_revoke_keeps_the_tokens(
    demo: DemoServer, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    login_home(demo, browser, provider="demo")
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    config = token_path().parent.parent / "config.toml"
    config.write_text(config.read_text().replace(f'client_secret = "{CLIENT_SECRET}"\n', ""))
    refused = run_cli("logout", "home")
    assert refused.returncode == 2
    assert refused.stderr.strip().endswith(
        "or log out with --local-only to delete the tokens without revoking"
    )
    assert token_path().exists()
    local = run_cli("logout", "home", "--local-only")
    assert local.returncode == 0 and not token_path().exists()
    assert demo.provider.requests["revoke"] == 0
