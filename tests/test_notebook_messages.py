"""In a notebook, messages speak notebook: the kernel's stop button, paste=True, no terminal."""

from __future__ import annotations

from collections.abc import Callable

from loopback_login._demo.browser import ScriptedBrowser
from loopback_login._demo.provider import DemoClient, DemoProvider, RunningDemo
from loopback_login._errors import LoginTimeout, ProviderError
from loopback_login._login.flow import login
from loopback_login._profiles.profile import resolve_profile
from loopback_login._store import Store
from loopback_login._ui import Notebook


class Cell(Notebook):
    """A notebook reporter that keeps what it said (and shows no widgets)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        self.lines.append(line)

    def show_url(self, url: str) -> None:
        self.lines.append(f"link: {url}")


class NoBrowser:
    def unavailable(self) -> str | None:
        return "no display"

    def open(self, url: str, say: Callable[[str], None]) -> None:
        raise AssertionError("never opened")


async def _demo_login(
    browser: object, *, timeout: float = 30, errors: list[int] | None = None
) -> tuple[Cell, Exception | None]:
    redirect = "http://127.0.0.1:0/callback"
    client = DemoClient("app", "secret", (redirect,), any_loopback_port=True)
    provider = DemoProvider([client])
    provider.faults.token_errors = list(errors or [])
    cell = Cell()
    async with RunningDemo(provider) as demo:
        profile = resolve_profile(
            "nb",
            None,
            {
                "provider": "demo",
                "base_url": demo.base_url,
                "client_id": "app",
                "client_secret": "secret",
                "redirect_uri": redirect,
                "client_check": False,
            },
        )
        error: Exception | None = None
        try:
            await login(
                profile,
                store=Store(),
                browser=browser,  # type: ignore[arg-type]
                timeout=timeout,
                reporter=cell,
            )
        except (ProviderError, LoginTimeout) as exc:
            error = exc
    return cell, error


async def test_waiting_line_and_failure_page_speak_notebook() -> None:
    browser = ScriptedBrowser()
    cell, error = await _demo_login(browser, errors=[502])
    assert isinstance(error, ProviderError)
    waiting = next(line for line in cell.lines if line.startswith("Waiting for the browser"))
    assert waiting.endswith("; interrupt the kernel (■) to cancel)")
    assert "Ctrl-C" not in " ".join(cell.lines)
    browser.outcome()  # waits for the visit to end
    assert browser.visit is not None
    body = browser.visit.body
    assert "Return to the notebook for details, and run the cell again." in body
    assert "terminal" not in body


async def test_no_browser_advice_names_paste_true() -> None:
    cell, error = await _demo_login(NoBrowser(), timeout=0.5)
    assert isinstance(error, LoginTimeout)
    advice = next(line for line in cell.lines if line.startswith("No browser can be opened"))
    assert advice.endswith("or use login(..., paste=True).")
    assert "--paste" not in advice
