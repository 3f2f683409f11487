"""Every command path, run with known secrets: none of them may appear in what is printed
or logged. The one exception is the access token that `token` and `client-credentials`
are asked to print."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from support import (
    CLIENT_ID,
    CLIENT_SECRET,
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
from loopback_login._api import ProfileSettings

PRINTS_THE_TOKEN = {"token", "client-credentials"}


class Scan:
    """Runs commands, keeps everything they printed, and every secret the provider issued."""

    def __init__(self, demo: DemoServer, browser: Browser) -> None:
        self.demo, self.browser = demo, browser
        self.runs: list[tuple[list[str], subprocess.CompletedProcess[str]]] = []
        self.secrets: set[str] = {CLIENT_SECRET}
        self.printed_tokens: set[str] = set()

    def run(
        self, *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = run_cli(*args, env={**self.browser.env, **(env or {})}, input=input)
        self.runs.append((list(args), result))
        self.collect()
        return result

    def collect(self) -> None:
        for path in token_path().parent.rglob("*.json"):
            record = json.loads(path.read_text())
            for key in ("refresh_token", "access_token"):
                value = record.get(key) or record.get("raw", {}).get(key)
                if value:
                    self.secrets.add(value)
        log = self.browser.log
        for url in log.get("urls", []):
            code = parse_qs(urlsplit(url).query).get("code")
            if code:
                self.secrets.add(code[0])

    def assert_clean(self) -> None:
        assert len(self.secrets) > 5  # the scan saw real secrets
        for args, result in self.runs:
            allowed = set()
            if args[0] in PRINTS_THE_TOKEN and result.returncode == 0:
                allowed = {result.stdout.split()[-1]} if result.stdout.strip() else set()
                if args[-1] == "--json":
                    allowed = {json.loads(result.stdout)["access_token"]}
            for secret in self.secrets - allowed:
                assert secret not in result.stdout, (args, "stdout")
                assert secret not in result.stderr, (args, "stderr")


def test_no_secret_in_any_output(demo: DemoServer, browser: Browser, isolated_env: Path) -> None:
    scan = Scan(demo, browser)
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    base = login_args(demo, redirect)
    base[base.index("--provider") + 1] = "demo"  # with a revocation endpoint

    assert scan.run(*base, "--client-secret", CLIENT_SECRET, "--save").returncode == 0
    assert scan.run("login", "home").returncode == 0
    assert scan.run("token", "home").returncode == 0
    assert scan.run("token", "home", "--header").returncode == 0
    assert scan.run("token", "home", "--json").returncode == 0
    expire()
    assert scan.run("token", "home").returncode == 0  # the refresh path
    assert scan.run("refresh", "home").returncode == 0
    assert scan.run("status").returncode == 0
    assert scan.run("status", "home", "--debug").returncode == 0
    assert scan.run("client-credentials", "home").returncode == 0
    assert scan.run("client-credentials", "home", "--json").returncode == 0
    assert scan.run("providers").returncode == 0

    # Failures, with and without --debug tracebacks.
    demo.provider.faults.token_errors = [502]
    assert scan.run("login", "home", "--no-client-check").returncode == 4
    # A wrong secret, refused by the client check before the consent.
    scan.secrets.add("wrong-secret-value")
    assert scan.run("login", "home", "--client-secret", "wrong-secret-value").returncode == 4
    demo.provider.faults.invalid_grant = True
    expire()
    assert scan.run("token", "home").returncode == 3
    assert scan.run("token", "home", "--debug").returncode != 0
    demo.provider.faults.invalid_grant = False
    assert scan.run("login", "home", env={"TEST_BROWSER_DECISION": "deny"}).returncode == 4
    assert (
        scan.run(
            "login", "home", "--timeout", "1", env={"TEST_BROWSER_ACTION": "nothing"}
        ).returncode
        == 5
    )
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", int(urlsplit(redirect).port or 0)))
        holder.listen()
        assert scan.run("login", "home").returncode == 4
    demo.provider.faults.drop_connection = 1
    expire()
    assert scan.run("token", "home").returncode == 4

    assert scan.run("login", "home").returncode == 0
    demo.provider.faults.token_errors = [400]
    assert scan.run("logout", "home").returncode == 4  # revocation failed, still deleted
    assert scan.run("login", "home").returncode == 0
    assert scan.run("logout", "home").returncode == 0
    assert scan.run("demo", "--timeout", "30", env={"BROWSER": ""}).returncode == 0
    scan.collect()
    scan.assert_clean()


def test_no_secret_in_python_logs(
    demo: DemoServer,
    browser: Browser,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Python API with every logger at DEBUG (aiohttp's and asyncio's included)."""
    caplog.set_level(logging.DEBUG)
    for name, value in browser.env.items():
        monkeypatch.setenv(name, value)
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    settings: ProfileSettings = dict(
        provider="honeywell", base_url=demo.base_url, client_id=CLIENT_ID, redirect_uri=redirect
    )
    token = loopback_login.login_sync("home", **settings)
    first = read_record()
    expire()
    fresh = loopback_login.get_token_sync("home")
    credentials = loopback_login.client_credentials_sync("home", **settings)
    demo.provider.faults.invalid_grant = True
    expire()
    with pytest.raises(loopback_login.LoginRequired) as caught:
        loopback_login.get_token_sync("home")
    code = parse_qs(urlsplit(browser.log["urls"][-1]).query)["code"][0]
    secrets = {
        CLIENT_SECRET,
        code,
        first["refresh_token"],
        token.access_token,
        fresh.access_token,
        credentials.access_token,
        read_record()["refresh_token"],
    }
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in secrets:
        assert secret not in logged
        assert secret not in str(caught.value) and secret not in repr(caught.value)
    for obtained in (token, fresh, credentials):
        assert obtained.access_token not in repr(obtained)
