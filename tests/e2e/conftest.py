"""End-to-end fixtures: Debian's Chromium driven by Playwright, and a real OpenID provider.

Set up by `scripts/test` (apt's chromium, `npm ci` here, Playwright for Python). Playwright's
own browser download is never used: it cannot work here. With LOOPBACK_LOGIN_E2E=skip these
tests are skipped, loudly; anything missing otherwise is a failure, not a skip.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

E2E = Path(__file__).parent
ARTIFACTS = E2E / "artifacts"
CHROMIUM = os.environ.get("LOOPBACK_LOGIN_CHROMIUM", "/usr/bin/chromium")
SKIP = os.environ.get("LOOPBACK_LOGIN_E2E") == "skip"
# Chromium in a closed network, as root: no sandbox, no background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if SKIP:
        marker = pytest.mark.skip(reason="SKIPPED: end-to-end tests (LOOPBACK_LOGIN_E2E=skip)")
        for item in items:
            if E2E in Path(str(item.fspath)).parents:
                item.add_marker(marker)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    shots = sorted(ARTIFACTS.glob("*.png")) if ARTIFACTS.exists() else []
    if shots:
        terminalreporter.write_line(f"e2e screenshots ({len(shots)}): {ARTIFACTS}")


def _require(condition: bool, what: str) -> None:
    if not condition:
        pytest.fail(
            f"end-to-end prerequisite missing: {what} (scripts/test installs it; "
            "LOOPBACK_LOGIN_E2E=skip skips these tests)",
            pytrace=False,
        )


@pytest.fixture
def chromium_command() -> list[str]:
    """Chromium's command line as the tests start it, without Playwright (as a `$BROWSER`)."""
    _require(os.path.exists(CHROMIUM), f"Chromium at {CHROMIUM}")
    return [CHROMIUM, *CHROMIUM_ARGS]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    # Not session-wide: Playwright's sync API holds an event loop in this thread
    # while it runs, and the asyncio tests after these need the thread to themselves.
    _require(os.path.exists(CHROMIUM), f"Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "Playwright for Python")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Camera:
    """Screenshots named after the test, kept in tests/e2e/artifacts/."""

    def __init__(self, page: Any, test_name: str) -> None:
        self.page = page
        self.prefix = re.sub(r"[^\w.-]+", "_", test_name)
        self.count = 0
        ARTIFACTS.mkdir(exist_ok=True)

    def shot(self, what: str) -> Path:
        self.count += 1
        path = ARTIFACTS / f"{self.prefix}-{self.count}-{what}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[tuple[Any, Camera]]:
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page, Camera(page, request.node.name)
    finally:
        context.close()


@pytest.fixture
def url_catcher(tmp_path: Path) -> tuple[dict[str, str], Callable[[], str]]:
    """A $BROWSER that hands the authorize URL to the test's Chromium."""
    url_file = tmp_path / "authorize-url"
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(E2E / 'url_catcher.py'))} %s"

    def wait() -> str:
        deadline = time.monotonic() + 30
        while not url_file.exists():
            assert time.monotonic() < deadline, "the CLI never asked for a browser"
            time.sleep(0.05)
        url = url_file.read_text()
        url_file.unlink()
        return url

    return {"BROWSER": command, "E2E_URL_FILE": str(url_file)}, wait


@pytest.fixture
def oidc_provider() -> Iterator[Callable[..., str]]:
    """Start the certified provider (node tests/e2e/provider.mjs); returns its issuer."""
    processes: list[subprocess.Popen[str]] = []

    def start(*, client_id: str, client_secret: str, redirect_uris: list[str], **env: str) -> str:
        node = shutil.which("node")
        _require(node is not None, "Node.js 20 or newer")
        _require((E2E / "node_modules" / "oidc-provider").exists(), "`npm ci` in tests/e2e")
        process = subprocess.Popen(
            [str(node), str(E2E / "provider.mjs")],
            env={
                **os.environ,
                "CLIENT_ID": client_id,
                "CLIENT_SECRET": client_secret,
                "REDIRECT_URIS": ",".join(redirect_uris),
                **env,  # DEVICE_CODE_TTL, SLOW_DOWN, SLOW_DOWN_INTERVAL (see provider.mjs)
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("READY "), f"the provider did not start: {line!r}"
        return line.split()[1]

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()
