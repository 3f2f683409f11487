"""The command line a newcomer expects: --version, --help, did you mean, --debug, clear messages."""

from __future__ import annotations

import json
from base64 import urlsafe_b64encode
from importlib.metadata import version
from pathlib import Path

import pytest
from support import CLIENT_ID, DemoServer, free_port, run_cli, token_record, write_private

from loopback_login._cli.output import summary, who
from loopback_login._tokens.token import token_from_record

HOME_TABLE = (
    '[profiles.home]\nprovider = "honeywell"\nclient_id = "abc"\n'
    'redirect_uri = "http://localhost:8080/callback"\n'
)


def _lines(result: object) -> list[str]:
    return str(result.stderr).strip().splitlines()  # type: ignore[attr-defined]


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"loopback-login {version('loopback-login')}\n"


def test_help_has_examples_and_says_what_a_profile_is() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "PROFILE is a name you choose for one app at one provider" in result.stdout
    assert "examples:\n  loopback-login demo" in result.stdout
    assert "loopback-login logout home --forget" in result.stdout
    assert "--no-client-check" in run_cli("login", "--help").stdout
    assert "--serve" in run_cli("demo", "--help").stdout
    assert "--forget" in run_cli("logout", "--help").stdout


def test_did_you_mean_a_profile(isolated_env: Path) -> None:
    write_private(isolated_env / "config.toml", HOME_TABLE)
    login = run_cli("login", "hmoe")
    assert login.returncode == 2
    assert _lines(login)[-1].endswith("(did you mean 'home'?)")
    token = run_cli("token", "hmoe")
    assert token.returncode == 3
    assert _lines(token) == [
        "loopback-login: no tokens for profile 'hmoe'; run `loopback-login login hmoe` "
        "(did you mean 'home'?)"
    ]
    described = run_cli("login", "hme", "--provider", "honeywell")  # a new one, by flags
    assert described.returncode == 2 and "did you mean" not in described.stderr
    unrelated = run_cli("token", "zzzzzz")
    assert unrelated.returncode == 3 and "did you mean" not in unrelated.stderr


def test_debug_keeps_the_exit_code() -> None:
    result = run_cli("token", "nobody", "--debug")
    assert result.returncode == 3
    assert "Traceback (most recent call last)" in result.stderr
    assert _lines(result)[-1] == (
        "loopback-login: no tokens for profile 'nobody'; run `loopback-login login nobody`"
    )


def test_timeout_zero_message_does_not_contradict_itself() -> None:
    result = run_cli("login", "home", "--timeout", "0")
    assert result.returncode == 2
    assert _lines(result) == [
        "loopback-login login: error: argument --timeout: must be more than 0 and at most "
        "86400 seconds, not '0' (see --help)"
    ]
    assert run_cli("login", "home", "--skew", "-1").stderr.count("from 0 to 86400 seconds") == 1


@pytest.mark.parametrize("command", [["login", "home"], ["status"]])
def test_a_table_outside_profiles_is_reported(isolated_env: Path, command: list[str]) -> None:
    write_private(isolated_env / "config.toml", HOME_TABLE.replace("[profiles.home]", "[home]"))
    result = run_cli(*command)
    assert result.returncode == 2
    assert _lines(result) == [
        f"loopback-login: {isolated_env / 'config.toml'}: unknown table [home]; write it as "
        "[profiles.home] (profiles are [profiles.NAME])"
    ]


def test_redirect_uri_without_a_port_says_port_80(demo: DemoServer) -> None:
    demo.register("http://127.0.0.1/callback")
    # Paste mode: nothing binds port 80; stdin is empty, so the login ends at once.
    result = run_cli(
        "login",
        "home",
        "--provider",
        "honeywell",
        "--base-url",
        demo.base_url,
        "--client-id",
        CLIENT_ID,
        "--redirect-uri",
        "http://127.0.0.1/callback",
        "--paste",
        "--no-client-check",
    )
    assert result.returncode == 5
    assert (
        "Note: the redirect URI http://127.0.0.1/callback has no port, which means port 80; "
        "the URI registered for your app usually has one (e.g. http://localhost:8080/callback)."
        in result.stderr
    )
    with_port = f"http://127.0.0.1:{free_port()}/callback"
    quiet = run_cli(
        "login", "home", "--provider", "honeywell", "--base-url", demo.base_url,
        "--client-id", CLIENT_ID, "--redirect-uri", with_port, "--paste", "--no-client-check",
    )  # fmt: skip
    assert "has no port" not in quiet.stderr


def _jwt(claims: dict[str, object]) -> str:
    def part(data: object) -> str:
        return urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"sub": "u1", "email": "a@example.com", "preferred_username": "alice"}, " as alice"),
        ({"sub": "u1", "email": "a@example.com"}, " as a@example.com"),
        ({"sub": "u1"}, " as u1"),
        ({"sub": "evil\x1b[2J"}, " as evil\\x1b[2J"),
        (None, ""),
    ],
)
def test_the_summary_says_who_logged_in(claims: dict[str, object] | None, expected: str) -> None:
    raw: dict[str, object] = {"access_token": "a", "token_type": "Bearer"}
    if claims is not None:
        raw["id_token"] = _jwt(claims)
    token = token_from_record(token_record(access_token="a", raw=raw))
    assert who(token) == expected
    line = summary(f"Logged in{who(token)}", "home", "oidc", token, "/x/home.json")
    assert line.startswith(f"Logged in{expected}: profile 'home' (oidc)")
