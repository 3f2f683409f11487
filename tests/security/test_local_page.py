"""The browser is handed a private local page, never the authorize URL on its command line.

Another user of the machine reads every program's command line (``/proc/PID/cmdline``).
With the authorize URL there, they had the login's ``state``: they could complete the
login in their own browser and deliver their own code through a forwarder the person
runs (``ssh -L``, socat), which the listener sees as the person's own connection.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from fake_browser import page_target
from support import (
    TESTS,
    Browser,
    DemoServer,
    free_port,
    login_args,
    run_cli,
)

from loopback_login._login.page import LocalPage, is_confined, page_html


def _page_path(opened: str) -> Path:
    assert opened.startswith("file://"), opened
    return Path(unquote(urlsplit(opened).path))


def test_the_browser_gets_a_private_page_that_is_removed_after_the_login(
    demo: DemoServer, browser: Browser
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    result = run_cli(*login_args(demo, redirect), env=browser.env)
    assert result.returncode == 0, result.stderr
    log = browser.log
    opened, authorize_url = log["opened"], log["authorize_url"]
    # On its command line: a file name that says nothing; the state is in the page only.
    state = parse_qs(urlsplit(authorize_url).query)["state"][0]
    assert state not in opened and "state" not in opened and "client_id" not in opened
    assert log["page_modes"] == [0o600, 0o700]
    assert not _page_path(opened).parent.exists()  # removed when the login ended
    # The terminal still shows the URL itself.
    assert f"Open this URL to log in: {authorize_url}" in result.stderr


def test_the_page_is_removed_when_the_login_fails(demo: DemoServer, browser: Browser) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    env = {**browser.env, "TEST_BROWSER_ACTION": "nothing"}
    result = run_cli(*login_args(demo, redirect, "--timeout", "2"), env=env)
    assert result.returncode == 5, result.stderr
    assert not _page_path(browser.wait_log()["opened"]).parent.exists()


def test_no_page_without_a_browser(demo: DemoServer, tmp_path: Path) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    env = {"XDG_RUNTIME_DIR": str(tmp_path), "BROWSER": "true"}
    result = run_cli(*login_args(demo, redirect, "--no-browser", "--timeout", "1"), env=env)
    assert result.returncode == 5 and "Open this URL to log in: " in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_page_forwards_to_the_url_whatever_it_contains(tmp_path: Path) -> None:
    url = "https://as.example/authorize?state=s&x=\"><script>x</script>&q=’;'"
    page = LocalPage()
    opened = page.write(url, str(tmp_path))
    assert opened is not None
    text = _page_path(opened).read_text()
    assert "<script>" not in text and "’" not in text and "'" not in text.split("url=")[1]
    assert unquote(page_target(opened)) == url
    page.remove()
    assert list(tmp_path.iterdir()) == []
    # Removed first (the login ended before the browser's thread ran): nothing is written.
    assert page.write(url, str(tmp_path)) is None and list(tmp_path.iterdir()) == []
    assert 'http-equiv="refresh"' in page_html(url)


def _script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_confined_browsers_are_recognised(tmp_path: Path) -> None:
    snap = _script(tmp_path / "snap" / "bin" / "firefox", "#!/bin/sh\n")
    wrapper = _script(tmp_path / "usr" / "firefox", '#!/bin/sh\nexec /snap/bin/firefox "$@"\n')
    flatpak = _script(tmp_path / "fp", '#!/bin/sh\nexec flatpak run org.mozilla.firefox "$@"\n')
    plain = _script(tmp_path / "usr" / "browser", '#!/bin/sh\nexec /usr/lib/browser "$@"\n')
    assert is_confined([str(snap)]) and is_confined([str(wrapper)]) and is_confined([str(flatpak)])
    assert is_confined(["flatpak", "run", "org.chromium.Chromium"])
    assert not is_confined([str(plain)]) and not is_confined([sys.executable])


@pytest.mark.parametrize("downloads", [True, False], ids=["in Downloads", "the URL"])
def test_a_snap_browser_gets_the_page_where_it_can_read_it_or_the_url(
    demo: DemoServer, tmp_path: Path, downloads: bool
) -> None:
    """Snap and flatpak browsers read the download directory, not /tmp or /run/user."""
    home = tmp_path / "home"
    home.mkdir()
    if downloads:
        (home / "Downloads").mkdir()
    log = tmp_path / "browser.json"
    fake = shlex.join([sys.executable, str(TESTS / "fake_browser.py")])
    snap = _script(tmp_path / "snap" / "bin" / "browser", f'#!/bin/sh\nexec {fake} "$@"\n')
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    env = {"BROWSER": f"{snap} %s", "TEST_BROWSER_LOG": str(log), "HOME": str(home)}
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    result = run_cli(*login_args(demo, redirect), env=env)
    assert result.returncode == 0, result.stderr
    opened = Browser(env=env, log_path=log).log["opened"]
    if downloads:
        assert _page_path(opened).parent.parent == home / "Downloads"
        assert list((home / "Downloads").iterdir()) == []  # removed
    else:
        assert opened.startswith("http://127.0.0.1:")  # where the page is not possible
