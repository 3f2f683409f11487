"""A real Chromium, started by the login as ``$BROWSER``, follows the private local page.

The login hands the browser a ``file://`` page instead of the authorize URL (SECURITY.md,
section 1); this is the proof that a real browser reads it and goes on to the authorization
server, whose consent is automatic here, and back to the listener.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from resource_apps import ProtectedApi, Served
from support import run_cli


@pytest.fixture
def server() -> Iterator[ProtectedApi]:
    api = ProtectedApi()
    served = Served(api)
    try:
        yield api
    finally:
        served.close()


def test_chromium_follows_the_page_and_the_login_completes(
    server: ProtectedApi, tmp_path: Path, chromium_command: list[str]
) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    profile_dir = tmp_path / "chromium-profile"
    command = shlex.join(
        [
            *chromium_command,
            "--headless",
            f"--user-data-dir={profile_dir}",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ]
    )
    result = run_cli(
        "login",
        "work",
        "--authorize-url",
        f"{server.base_url}/authorize",
        "--token-url",
        f"{server.base_url}/token",
        "--client-id",
        "mine",
        "--redirect-uri",
        "http://127.0.0.1:0/callback",
        "--timeout",
        "60",
        env={"BROWSER": f"{command} %s", "XDG_RUNTIME_DIR": str(runtime)},
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    [query] = server.authorize_queries
    assert query["client_id"] == "mine" and query["state"]
    # The page was there (nothing else hands Chromium the URL), and is gone.
    assert list(runtime.glob("loopback-login-*")) == []
