"""Attacks through the command line and the file system."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from support import (
    CLIENT_SECRET,
    Browser,
    DemoServer,
    free_port,
    login_args,
    login_home,
    run_cli,
    token_path,
)

SECRET_WARNING = (
    "loopback-login: warning: --client-secret is visible to other users of this machine (ps) "
    "and stays in your shell history; set LOOPBACK_LOGIN_CLIENT_SECRET instead"
)


@pytest.mark.parametrize(
    "redirect",
    [
        "http://example.com:8080/cb",
        "http://0.0.0.0:8080/cb",
        "http://[::]:8080/cb",
        "http://192.168.1.5:8080/cb",
        "http://localhost.example.com:8080/cb",
        "https://localhost:8080/cb",
        "http://127.0.0.1.nip.io:8080/cb",
    ],
)
def test_redirect_that_is_not_loopback_is_refused(demo: DemoServer, redirect: str) -> None:
    result = run_cli(*login_args(demo, redirect))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "is not an http loopback address" in lines[0]
    # With --paste there is no listener, so any registered redirect URI is fine.
    # (Registered, so that the client check, racing the empty paste, passes.)
    demo.register(redirect)
    pasted = run_cli(*login_args(demo, redirect, "--paste"), input="")
    assert pasted.returncode == 5
    assert pasted.stderr.splitlines()[-1] == "loopback-login: cancelled: nothing was pasted"


def test_symlink_planted_at_the_token_path(
    demo: DemoServer, browser: Browser, isolated_env: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    tokens = isolated_env / "tokens"
    tokens.mkdir(parents=True, mode=0o700)
    isolated_env.chmod(0o700)
    (tokens / "home.json").symlink_to(victim)
    # Reading never follows it.
    refused = run_cli("token", "home")
    assert refused.returncode == 3
    assert refused.stderr.splitlines() == [
        f"loopback-login: {tokens / 'home.json'} is a symbolic link, not a token file; "
        "delete it and run `loopback-login login home`"
    ]
    # Writing replaces the link itself, never the file it points to.
    login_home(demo, browser)
    assert victim.read_text() == "precious"
    assert not token_path().is_symlink()
    assert stat.S_IMODE(token_path().stat().st_mode) == 0o600


def test_loose_permissions_are_tightened_and_said(
    demo: DemoServer, browser: Browser, isolated_env: Path
) -> None:
    record = login_home(demo, browser)
    isolated_env.chmod(0o755)
    (isolated_env / "tokens").chmod(0o777)
    token_path().chmod(0o644)
    result = run_cli("token", "home")
    assert result.returncode == 0 and result.stdout == record["access_token"] + "\n"
    assert result.stderr.splitlines() == [
        f"loopback-login: warning: {isolated_env} was open to other users (mode 0755); made it 0700",
        f"loopback-login: warning: {isolated_env / 'tokens'} was open to other users (mode 0777); "
        "made it 0700",
        f"loopback-login: warning: {token_path()} was readable by other users (mode 0644); "
        "made it 0600",
    ]
    assert stat.S_IMODE(isolated_env.stat().st_mode) == 0o700
    assert stat.S_IMODE((isolated_env / "tokens").stat().st_mode) == 0o700
    assert stat.S_IMODE(token_path().stat().st_mode) == 0o600
    assert run_cli("token", "home").stderr == ""  # said once; fixed for good


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_directory_of_another_user_is_refused(isolated_env: Path) -> None:
    (isolated_env / "tokens").mkdir(parents=True, mode=0o700)
    os.chown(isolated_env, 65534, 65534)
    try:
        result = run_cli("token", "home")
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            f"loopback-login: {isolated_env} belongs to another user; refusing to keep secrets there"
        ]
    finally:
        os.chown(isolated_env, 0, 0)


def test_secret_on_the_command_line_is_warned_once_after_the_configuration(
    demo: DemoServer, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    ok = run_cli(*login_args(demo, redirect, "--client-secret", CLIENT_SECRET), env=browser.env)
    assert ok.returncode == 0, ok.stderr
    lines = ok.stderr.splitlines()
    assert lines.count(SECRET_WARNING) == 1
    assert lines[0] == SECRET_WARNING  # before the login starts
    assert CLIENT_SECRET not in ok.stderr + ok.stdout
    # A configuration error comes first and alone: no warning after it. (Another
    # profile: `home` is complete now, remembered by its login.)
    bad = run_cli("login", "other", "--client-secret", CLIENT_SECRET, "--client-id", "x")
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    assert "warning" not in bad.stderr


def test_secret_from_the_environment_is_in_no_argv_and_no_token_file(
    demo: DemoServer, browser: Browser
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    args = login_args(demo, redirect)
    assert CLIENT_SECRET not in " ".join(args)  # what ps would show
    result = run_cli(*args, env=browser.env)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    assert CLIENT_SECRET not in token_path().read_text()
