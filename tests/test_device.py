"""The device login (RFC 8628): its forms, its polling loop, the command and the Python API.

The server here (support.DeviceServer) is a small aiohttp app that answers as
RFC 8628 servers do, scripted poll by poll; the polling loop runs on a fake clock (nothing waits),
the command line for real (a subprocess, intervals of one second). The real
servers (oidc-provider, django-oauth-toolkit) are in tests/e2e/test_device_e2e.py.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
from typing import Any

import pytest
from support import (
    CLIENT_SECRET,
    DEVICE_CODE,
    USER_CODE,
    DeviceServer,
    FakeTime,
    browser_for,
    read_record,
    run_cli,
    start_cli,
    token_path,
)

import loopback_login
from loopback_login._errors import (
    AuthorizationDenied,
    ConfigError,
    LoginTimeout,
    TokenEndpointError,
)
from loopback_login._login.device import device_login
from loopback_login._profiles.discovery import merge_documents
from loopback_login._protocol import (
    DEVICE_CODE_GRANT,
    ClientAuth,
    PollAnswer,
    device_authorization_request,
    device_token_request,
    parse_device_authorization,
    poll_answer,
)
from loopback_login._ui import Terminal

# --- the forms and the answers, without I/O --------------------------------------


def test_a_public_client_names_itself_and_asks_for_scope_and_resource() -> None:
    request = device_authorization_request(
        "https://as.example/device",
        client_id="tv",
        client_secret=None,
        client_auth=ClientAuth.NONE,
        scope="read",
        resource="https://api.example/",
    )
    assert "Authorization" not in request.headers
    assert request.form == [
        ("scope", "read"),
        ("resource", "https://api.example/"),
        ("client_id", "tv"),
    ]
    poll = device_token_request(
        "https://as.example/token",
        "dc",
        client_id="tv",
        client_secret=None,
        client_auth=ClientAuth.NONE,
        resource="https://api.example/",
    )
    assert dict(poll.form) == {
        "grant_type": DEVICE_CODE_GRANT,
        "device_code": "dc",
        "resource": "https://api.example/",
        "client_id": "tv",
    }


@pytest.mark.parametrize("auth", [ClientAuth.BASIC, ClientAuth.POST])
def test_a_confidential_client_authenticates_as_at_the_token_endpoint(auth: ClientAuth) -> None:
    for request in (
        device_authorization_request(
            "https://as.example/device", client_id="tv", client_secret="s", client_auth=auth
        ),
        device_token_request(
            "https://as.example/token", "dc", client_id="tv", client_secret="s", client_auth=auth
        ),
    ):
        form = dict(request.form)
        # client_id in the form with Basic too: django-oauth-toolkit wants it there.
        assert form["client_id"] == "tv"
        if auth is ClientAuth.BASIC:
            assert request.headers["Authorization"].startswith("Basic ")
            assert "client_secret" not in form
        else:
            assert form["client_secret"] == "s"
        assert [key for key, _ in request.form].count("client_id") == 1


def _answer(data: dict[str, Any], status: int = 200) -> Any:
    return parse_device_authorization(status, "OK", "application/json", json.dumps(data).encode())


def test_the_device_authorization_response_is_read_with_rfc_8628_defaults() -> None:
    base = {
        "device_code": "dc",
        "user_code": "ABCD-EFGH",
        "verification_uri": "https://as.example/device",
        "expires_in": 600,
    }
    read = _answer(base)
    assert (read.interval, read.expires_in, read.verification_uri_complete) == (5.0, 600.0, None)
    assert "dc" not in repr(read)
    # Google's pre-RFC name for the verification URI.
    google = {**base, "verification_url": base.pop("verification_uri"), "interval": "2"}
    assert _answer(google).verification_uri == "https://as.example/device"
    assert _answer(google).interval == 2.0
    assert _answer({**google, "interval": 0}).interval == 1.0  # never a busy loop


@pytest.mark.parametrize(
    "change",
    [
        {"device_code": None},
        {"user_code": "A\nB"},
        {"verification_uri": "javascript:alert(1)"},
        {"verification_uri": "https://as.example/a\x1b[2Jb"},
    ],
)
def test_an_unusable_device_authorization_response_is_refused(change: dict[str, Any]) -> None:
    good = {"device_code": "dc", "user_code": "ABCD", "verification_uri": "https://as.example/d"}
    with pytest.raises(TokenEndpointError, match="device authorization response"):
        _answer({**good, **change})


def test_a_refused_device_authorization_names_the_endpoint() -> None:
    with pytest.raises(TokenEndpointError, match=r"device authorization endpoint.*invalid_client"):
        _answer({"error": "invalid_client"}, status=401)


def test_poll_answers_are_classified() -> None:
    def of(error: str) -> PollAnswer | None:
        return poll_answer(TokenEndpointError("x", status=400, error=error))

    assert of("authorization_pending") is PollAnswer.PENDING
    assert of("slow_down") is PollAnswer.SLOW_DOWN
    assert of("access_denied") is PollAnswer.DENIED
    assert of("expired_token") is PollAnswer.EXPIRED
    assert of("invalid_grant") is None


def test_metadata_names_the_device_authorization_endpoint() -> None:
    documents = [
        {"token_endpoint": "https://as.example/token"},
        {"device_authorization_endpoint": "https://as.example/device"},
    ]
    metadata = merge_documents("https://as.example", documents)
    assert metadata.device_authorization_endpoint == "https://as.example/device"


# --- the polling loop, on a fake clock -------------------------------------------


async def _log_in(server: DeviceServer, time_: FakeTime, **kwargs: Any) -> Any:
    return await device_login(
        server.profile(),
        timeout=kwargs.pop("timeout", 300),
        reporter=Terminal(),
        open_browser=False,
        clock=time_.clock,
        sleep=time_.sleep,
        **kwargs,
    )


async def test_polls_through_pending_at_the_interval_and_saves_like_a_browser_login(
    device_server: DeviceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    device_server.interval = None  # RFC 8628 §3.2: then 5 seconds
    device_server.answers = ["authorization_pending", "authorization_pending", "tokens"]
    fake = FakeTime()
    token = await _log_in(device_server, fake)
    assert fake.slept == [5, 5, 5]
    assert token.access_token == "at-3"
    for _headers, form in device_server.polls:
        assert form == {
            "grant_type": DEVICE_CODE_GRANT,
            "device_code": DEVICE_CODE,
            "client_id": "tv-app",
        }
    record = read_record()
    assert (record["flow"], record["refresh_token"], record["profile"]) == (
        "device",
        "rt-1",
        "home",
    )
    assert stat.S_IMODE(os.stat(token_path()).st_mode) == 0o600
    err = capsys.readouterr().err
    assert USER_CODE in err and f"{device_server.issuer}/activate" in err
    assert DEVICE_CODE not in err


async def test_the_servers_interval_is_kept(device_server: DeviceServer) -> None:
    device_server.interval = 2
    device_server.answers = ["authorization_pending", "tokens"]
    fake = FakeTime()
    await _log_in(device_server, fake)
    assert fake.slept == [2, 2]


async def test_each_slow_down_adds_five_seconds_for_good(device_server: DeviceServer) -> None:
    device_server.interval = 5
    device_server.answers = ["slow_down", "authorization_pending", "slow_down", "tokens"]
    fake = FakeTime()
    await _log_in(device_server, fake)
    assert fake.slept == [5, 10, 10, 15]


async def test_denial_ends_the_login_exit_4(device_server: DeviceServer) -> None:
    device_server.answers = ["authorization_pending", "access_denied"]
    with pytest.raises(AuthorizationDenied) as caught:
        await _log_in(device_server, FakeTime())
    assert caught.value.exit_code == 4
    assert not token_path().exists()


async def test_expired_token_ends_the_login_exit_5(device_server: DeviceServer) -> None:
    device_server.answers = ["authorization_pending", "expired_token"]
    with pytest.raises(LoginTimeout, match="expired_token") as caught:
        await _log_in(device_server, FakeTime())
    assert caught.value.exit_code == 5


async def test_the_codes_lifetime_is_enforced_here(device_server: DeviceServer) -> None:
    # django-oauth-toolkit answers authorization_pending after expires_in: we stop anyway.
    device_server.expires_in = 12
    device_server.interval = 5
    device_server.answers = ["authorization_pending"]
    fake = FakeTime()
    with pytest.raises(LoginTimeout, match="expired after 12 s"):
        await _log_in(device_server, fake)
    assert fake.slept == [5, 5, 2]
    assert len(device_server.polls) == 2  # none after the code expired


async def test_the_timeout_ends_the_wait(device_server: DeviceServer) -> None:
    device_server.answers = ["authorization_pending"]
    device_server.interval = 5
    fake = FakeTime()
    with pytest.raises(LoginTimeout, match="timed out after 11 s"):
        await _log_in(device_server, fake, timeout=11)
    assert sum(fake.slept) == 11
    assert len(device_server.polls) == 2


async def test_another_error_ends_the_login_as_it_is(device_server: DeviceServer) -> None:
    device_server.answers = ["invalid_client"]
    with pytest.raises(TokenEndpointError, match="invalid_client") as caught:
        await _log_in(device_server, FakeTime())
    assert caught.value.exit_code == 4


# --- the command line ------------------------------------------------------------


def test_login_device_prints_one_summary_line_and_status_says_device(
    device_server: DeviceServer, tmp_path: Any
) -> None:
    device_server.answers = ["authorization_pending", "tokens"]
    browser = browser_for(tmp_path)
    url = f"{device_server.issuer}/device"
    result = run_cli(
        *device_server.cli_args("--device", "--device-authorization-url", url), env=browser.env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("Logged in: profile 'home'")
    assert f"enter the code {USER_CODE}" in result.stderr
    assert DEVICE_CODE not in result.stdout + result.stderr
    # Where a browser can be opened, it opens the page with the code in it.
    assert (
        browser.wait_log()["authorize_url"]
        == f"{device_server.issuer}/activate?user_code={USER_CODE}"
    )
    assert read_record()["flow"] == "device"
    status = run_cli("status")
    assert "login (device)" in status.stdout
    refreshed = run_cli("refresh", "home")
    assert refreshed.returncode == 0, refreshed.stderr
    assert read_record()["flow"] == "device"  # the refresh keeps it


def test_device_without_an_endpoint_is_exit_2_before_anything_is_sent(
    device_server: DeviceServer,
) -> None:
    device_server.advertise = False
    result = run_cli(
        "login", "home", "--issuer", device_server.issuer, "--client-id", "tv-app", "--device"
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "no device_authorization_endpoint" in result.stderr
    assert "--device-authorization-url" in result.stderr
    assert device_server.authorizations == [] and device_server.polls == []
    both = run_cli(*device_server.cli_args("--device", "--paste"))
    assert both.returncode == 2 and "either --device or --paste" in both.stderr
    assert device_server.authorizations == []


def test_no_browser_and_an_advertised_endpoint_choose_the_device_flow(
    device_server: DeviceServer,
) -> None:
    # The test environment has no DISPLAY, no BROWSER: no browser can be opened.
    args = [
        "login", "home", "--issuer", device_server.issuer, "--client-id", "tv-app",
        "--redirect-uri", "http://127.0.0.1:8765/callback",
    ]  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "device flow" in line]
    assert len(said) == 1 and "no graphical display" in said[0]
    assert read_record()["flow"] == "device"
    # --paste still forces paste mode: nothing pasted, cancelled, no device request.
    asked = len(device_server.authorizations)
    pasted = run_cli(*args, "--paste")
    assert pasted.returncode == 5
    assert "device flow" not in pasted.stderr
    assert len(device_server.authorizations) == asked


def test_the_timeout_flag_ends_a_device_login_exit_5(device_server: DeviceServer) -> None:
    device_server.answers = ["authorization_pending"]
    url = f"{device_server.issuer}/device"
    result = run_cli(
        *device_server.cli_args("--device", "--device-authorization-url", url, "--timeout", "1.5")
    )
    assert result.returncode == 5
    assert result.stderr.splitlines()[-1].startswith("loopback-login: timed out after 1.5 s")
    assert result.stdout == ""


def test_ctrl_c_cancels_a_device_login_exit_5(device_server: DeviceServer) -> None:
    device_server.answers = ["authorization_pending"]
    url = f"{device_server.issuer}/device"
    process = start_cli(*device_server.cli_args("--device", "--device-authorization-url", url))
    assert device_server.polled.wait(30), "the CLI never polled"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 5
    assert stderr.splitlines()[-1] == "loopback-login: cancelled"
    assert "Traceback" not in stderr and stdout == ""
    assert not token_path().exists()


# --- Python ----------------------------------------------------------------------


def test_python_login_sync_with_device(device_server: DeviceServer) -> None:
    token = loopback_login.login_sync(
        "home",
        device=True,
        token_url=f"{device_server.issuer}/token",
        device_authorization_url=f"{device_server.issuer}/device",
        client_id="tv-app",
        client_auth="basic",
        client_secret=CLIENT_SECRET,
    )
    assert token.access_token == "at-1"
    headers, form = device_server.authorizations[0]
    assert form["client_id"] == "tv-app"
    pair = base64.b64decode(headers["Authorization"].split()[1]).decode()
    assert pair.startswith("tv-app:")
    assert read_record()["flow"] == "device"


async def test_python_device_without_an_endpoint_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="device authorization endpoint"):
        await loopback_login.login(
            "home", device=True, token_url="https://as.example/token", client_id="tv"
        )


def test_a_notebook_shows_a_link_and_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    from loopback_login._ui import Notebook

    shown: list[str] = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj.data))
    Notebook().show_code(
        "https://as.example/device", "AB<CD", "https://as.example/device?user_code=AB%3CCD"
    )
    assert 'href="https://as.example/device?user_code=AB%3CCD"' in shown[0]
    assert "<code" in shown[0] and "AB&lt;CD" in shown[0]
