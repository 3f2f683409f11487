"""A wrong client id or secret ends the login before the consent, not after it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support import (
    CLI,
    CLIENT_SECRET,
    NEUTRAL_CWD,
    Browser,
    DemoServer,
    exchanges,
    free_port,
    login_args,
    run_cli,
    token_path,
    write_private,
)

REFUSED = (
    "loopback-login: the provider refused the client id or secret of profile 'home' "
    "(invalid_client), before any sign-in; check --client-id, and give the right secret with "
    "--client-secret or $LOOPBACK_LOGIN_CLIENT_SECRET (it replaces the kept one)"
    # The test secret has `+ % : /` and a space: the two Basic encodings differ for it.
    "; or, if they are right, the provider may read Basic credentials the other way: "
    "try --client-auth basic"
)


def _never_comes_back(browser: Browser) -> dict[str, str]:
    # A person still on the login page: only the check can end this login early.
    return {**browser.env, "TEST_BROWSER_ACTION": "nothing"}


def test_wrong_secret_ends_the_login_at_once(
    demo: DemoServer, browser: Browser, isolated_env: Path
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect, secret="the-real-one")
    result = run_cli(
        *login_args(demo, redirect, "--timeout", "600"), env=_never_comes_back(browser)
    )
    assert result.returncode == 4
    assert result.stderr.strip().splitlines()[-1] == REFUSED
    assert "authorize_url" in browser.wait_log()  # the browser was opened all the same
    assert CLIENT_SECRET not in result.stderr and "the-real-one" not in result.stderr
    # Nothing saved: no tokens, no secret.
    assert not token_path().exists()
    assert not (isolated_env / "config.toml").exists()
    # One request, the check's; the demo provider refuses the client before reading the code.
    assert demo.provider.requests["authorization_code"] == 1


def test_no_check_for_a_public_client(demo: DemoServer, browser: Browser) -> None:
    # No secret to be wrong; a mistyped id shows on the provider's login page.
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect, client_id="registered", secret=None)
    args = [
        "login",
        "home",
        "--authorize-url",
        f"{demo.base_url}/oauth2/authorize",
        "--token-url",
        f"{demo.base_url}/oauth2/token",
        "--client-id",
        "mistyped",
        "--redirect-uri",
        redirect,
        "--timeout",
        "2",
    ]
    result = run_cli(*args, env={**_never_comes_back(browser), "LOOPBACK_LOGIN_CLIENT_SECRET": ""})
    assert result.returncode == 5, result.stderr  # waited for the browser: no check
    assert demo.provider.requests["authorization_code"] == 0


def test_right_client_goes_on_to_the_login(demo: DemoServer, browser: Browser) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    result = run_cli(*login_args(demo, redirect), env=browser.env)
    assert result.returncode == 0, result.stderr
    # The check was made (the code that cannot exist), then the one real exchange.
    assert demo.provider.requests["unknown code"] == 1 and exchanges(demo.provider) == 1


def test_paste_mode_is_checked_too(demo: DemoServer) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect, secret="the-real-one")
    # stdin stays open: nobody pastes; only the check can end the login.
    process = subprocess.Popen(
        [CLI, *login_args(demo, redirect, "--paste", "--timeout", "600")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=NEUTRAL_CWD,
    )
    try:
        process.wait(timeout=60)  # stdin still open: communicate() would close it
    finally:
        if process.poll() is None:
            process.kill()
    stdout, stderr = process.communicate()
    assert process.returncode == 4
    assert stderr.strip().splitlines()[-1] == REFUSED
    assert stdout == ""


def test_no_client_check_flag_and_key(
    demo: DemoServer, browser: Browser, isolated_env: Path
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect, secret="the-real-one")
    flag = run_cli(
        *login_args(demo, redirect, "--no-client-check", "--timeout", "2"),
        env=_never_comes_back(browser),
    )
    assert flag.returncode == 5, flag.stderr  # waited for the browser: no check
    write_private(isolated_env / "config.toml", "[profiles.home]\nclient_check = false\n")
    key = run_cli(*login_args(demo, redirect, "--timeout", "2"), env=_never_comes_back(browser))
    assert key.returncode == 5, key.stderr
    assert demo.provider.requests["authorization_code"] == 0
    bad = isolated_env / "config.toml"
    bad.write_text('[profiles.home]\nclient_check = "no"\n')
    refused = run_cli(*login_args(demo, redirect))
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "loopback-login: client_check of profile 'home' must be true or false"
    )
