"""The tests' browser: run as $BROWSER by the CLI, it does what a person would.

Behaviour comes from environment variables the test sets:
  TEST_BROWSER_LOG       where to write what it saw (JSON); written on every run: what it
                         was handed (`opened`: the login's private page), the modes of the
                         page and its directory, the authorize URL the page forwards to
  TEST_BROWSER_DECISION  "allow" (default) or "deny" on the consent page
  TEST_BROWSER_FIRST     "wrong-state": first send the redirect URI a forged callback
  TEST_BROWSER_ACTION    "play" (default) or "nothing" (never comes back)
  TEST_BROWSER_LINGER    seconds to stay running afterwards, as a real browser does
                         (ends early when the command that started it has ended)
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, unquote, urlsplit

from loopback_login._demo.browser import play_browser


def _get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def page_target(url: str) -> str:
    """Where a browser handed ``url`` goes: a local page's refresh target, else ``url``."""
    if not url.startswith("file://"):
        return url
    with open(unquote(urlsplit(url).path), encoding="utf-8") as file:
        page = file.read()
    match = re.search(r'http-equiv="refresh" content="0; url=([^"]*)"', page)
    assert match, page
    return html.unescape(match.group(1))


def main(opened: str) -> None:
    parent = os.getppid()
    log: dict[str, object] = {"opened": opened}
    if opened.startswith("file://"):
        path = unquote(urlsplit(opened).path)
        log["page_modes"] = [
            os.stat(path).st_mode & 0o777,
            os.stat(os.path.dirname(path)).st_mode & 0o777,
        ]
    url = log["authorize_url"] = page_target(opened)
    try:
        redirect_uri = parse_qs(urlsplit(url).query)["redirect_uri"][0]
        if os.environ.get("TEST_BROWSER_FIRST") == "wrong-state":
            log["forged"] = _get(f"{redirect_uri}?code=forged&state=not-the-state")
        if os.environ.get("TEST_BROWSER_ACTION", "play") == "play":
            visit = play_browser(url, decision=os.environ.get("TEST_BROWSER_DECISION", "allow"))
            log.update(urls=visit.urls, status=visit.status, body=visit.body)
    finally:
        log_path = os.environ.get("TEST_BROWSER_LOG")
        if log_path:
            with open(log_path, "w") as file:
                json.dump(log, file)
    # Stay running like a real browser, but not past the command that started us
    # (if the command waited for us, neither would ever end: the test times out).
    parent, deadline = (
        os.getppid(),
        time.monotonic() + float(os.environ.get("TEST_BROWSER_LINGER", "0")),
    )
    while time.monotonic() < deadline and os.getppid() == parent:
        time.sleep(0.1)


if __name__ == "__main__":
    main(sys.argv[1])
