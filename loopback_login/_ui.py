"""Talking to the person: the terminal (stderr, stdin) or a notebook (IPython display, input()).

Nothing here touches stdout: it carries only a command's result.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol


class Reporter(Protocol):
    """What the login flow needs from the person's side."""

    def say(self, line: str) -> None: ...

    def show_url(self, url: str) -> None: ...

    def ask(self, prompt: str) -> str:
        """A line typed by the person; ``EOFError`` when there is none to read."""
        ...

    async def countdown(self, seconds: float, what: str) -> None:
        """Show the time left until cancelled (a live line, where there is a screen for it)."""
        ...


class Terminal:
    """stderr for everything said; stdin for answers (read only in paste mode)."""

    #: How the person cancels, retries and gets to paste mode, where they are.
    place = "the terminal"
    cancel_hint = "Ctrl-C cancels"
    retry_hint = "run the login again"
    paste_hint = "run again with --paste"

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream

    @property
    def stream(self) -> Any:
        return self._stream or sys.stderr

    def say(self, line: str) -> None:
        from ._text import shown

        print(shown(line), file=self.stream, flush=True)

    def show_url(self, url: str) -> None:
        self.say(f"Open this URL to log in: {url}")

    def show_code(self, verification_uri: str, user_code: str, link: str) -> None:
        """A device login (RFC 8628 §3.3): where to go and what to type there."""
        self.say(
            f"To log in, open {verification_uri} in any browser and enter the code {user_code}"
        )
        if link != verification_uri:
            self.say(f"  (or open {link}, which carries the code)")

    def ask(self, prompt: str) -> str:
        print(prompt, end="", file=self.stream, flush=True)
        line = sys.stdin.readline()
        if not line:
            print(file=self.stream, flush=True)  # end the prompt's line
            raise EOFError
        return line.strip()

    async def countdown(self, seconds: float, what: str) -> None:
        import asyncio
        import math

        stream = self.stream
        if not (hasattr(stream, "isatty") and stream.isatty()):
            return  # a log file gets no carriage-return animation
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        try:
            while True:
                left = max(0, math.ceil(deadline - loop.time()))  # 5:00, not 4:59
                stream.write(f"\r\x1b[K{what}: {left // 60}:{left % 60:02d} left (Ctrl-C cancels)")
                stream.flush()
                await asyncio.sleep(1)
        finally:
            stream.write("\r\x1b[K")
            stream.flush()


class Notebook(Terminal):
    """In a Jupyter kernel: the URL as a clickable link, the paste as an input box."""

    place = "the notebook"
    cancel_hint = "interrupt the kernel (■) to cancel"
    retry_hint = "run the cell again"
    paste_hint = "use login(..., paste=True)"

    def show_url(self, url: str) -> None:
        import html

        from IPython.display import HTML, display

        link = html.escape(url, quote=True)
        display(
            HTML(
                f'<p>Log in: <a href="{link}" target="_blank" rel="noopener noreferrer">'
                "open the login page</a></p>"
            )
        )
        super().show_url(url)

    def show_code(self, verification_uri: str, user_code: str, link: str) -> None:
        import html

        from IPython.display import HTML, display

        display(
            HTML(
                f'<p>Log in: <a href="{html.escape(link, quote=True)}" target="_blank" '
                f'rel="noopener noreferrer">open {html.escape(verification_uri)}</a> and enter '
                f'the code <code style="font-size: 1.4em">{html.escape(user_code)}</code></p>'
            )
        )
        super().show_code(verification_uri, user_code, link)

    def ask(self, prompt: str) -> str:
        return input(prompt).strip()

    async def countdown(self, seconds: float, what: str) -> None:
        return None  # a cell's output is no terminal: the link and the timeout say enough


def in_notebook() -> bool:
    """Running in a Jupyter (IPython) kernel?"""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def default_reporter() -> Reporter:
    return Notebook() if in_notebook() else Terminal()
