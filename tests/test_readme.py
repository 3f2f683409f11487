"""The README's examples, run as a newcomer runs them: an empty home, the installed command.

A fenced block runs here when the line before it is a marker::

    <!-- readme-test: KIND; CLAUSE; CLAUSE ... -->

KIND is ``sh`` (bash, stopping at the first failing command), ``python`` (a fresh
interpreter; top-level ``await`` allowed) or ``notebook`` (every notebook block, in
order, as cells of one real Jupyter kernel). Clauses:

- ``fill: OLD => NEW``: replace the placeholder OLD in the block (repeatable);
- ``before: COMMAND``: a shell command run first, in the same home (a login the block needs);
- ``serve: COMMAND``: a command kept running in the background while the block runs
  (``loopback-login demo --serve``), stopped with Ctrl-C after.

In NEW and COMMAND, ``{demo}`` is a local demo provider (it behaves like Honeywell's
API, at Honeywell's paths), ``{client_id}`` an app registered there, and
``{redirect_uri}`` that app's redirect URI; the app's secret is in
``$LOOPBACK_LOGIN_CLIENT_SECRET``, as the README suggests. Unmarked blocks (installing,
the real Honeywell portal, an MCP server, SSH) are not run.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import CLI, TESTS, Browser, DemoServer, free_port, jupyter_kernel

from loopback_login._demo.browser import play_browser
from loopback_login._demo.provider import DemoClient

README = TESTS.parent / "README.md"
MARKER = re.compile(r"<!-- readme-test: (.*?) -->")
SECRET = "readme-app-secret"


@dataclass
class Block:
    line: int
    kind: str
    code: str
    fills: list[tuple[str, str]] = field(default_factory=list)
    before: list[str] = field(default_factory=list)
    serve: str | None = None

    def filled(self, values: dict[str, str]) -> str:
        code = self.code
        for old, new in self.fills:
            assert old in code, f"README.md:{self.line}: the placeholder {old!r} is not there"
            code = code.replace(old, new.format(**values))
        return code


def readme_blocks() -> list[Block]:
    lines = README.read_text().splitlines()
    blocks = []
    for number, line in enumerate(lines, 1):
        match = MARKER.fullmatch(line.strip())
        if match is None:
            continue
        kind, *clauses = (part.strip() for part in match.group(1).split(";"))
        assert kind in ("sh", "python", "notebook"), f"README.md:{number}: unknown kind {kind!r}"
        fence = lines[number]
        assert fence.startswith("```"), f"README.md:{number}: the marker must precede a block"
        end = lines.index("```", number + 1)
        block = Block(number, kind, "\n".join(lines[number + 1 : end]) + "\n")
        for clause in clauses:
            key, _, value = clause.partition(": ")
            if key == "fill":
                old, _, new = value.partition(" => ")
                block.fills.append((old, new))
            elif key == "before":
                block.before.append(value)
            elif key == "serve":
                block.serve = value
            else:
                raise AssertionError(f"README.md:{number}: unknown clause {clause!r}")
        blocks.append(block)
    return blocks


BLOCKS = readme_blocks()


def test_the_readme_marks_its_runnable_examples() -> None:
    kinds = [block.kind for block in BLOCKS]
    assert kinds.count("sh") >= 5 and kinds.count("python") >= 3 and kinds.count("notebook") >= 2


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home: the config directory is where a newcomer's would be."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("LOOPBACK_LOGIN_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOOPBACK_LOGIN_CLIENT_SECRET", SECRET)
    # The installed `loopback-login` first on PATH, as after `pipx install .`.
    monkeypatch.setenv("PATH", f"{Path(CLI).parent}{os.pathsep}{os.environ['PATH']}")
    return home


@pytest.fixture
def values(demo: DemoServer) -> dict[str, str]:
    client_id, redirect_uri = "readme-app", f"http://127.0.0.1:{free_port()}/callback"
    # Any loopback port: the README's provider given by URLs uses port 0.
    demo.provider.clients[client_id] = DemoClient(
        client_id=client_id,
        client_secret=SECRET,
        redirect_uris=(redirect_uri,),
        any_loopback_port=True,
    )
    return {"demo": demo.base_url, "client_id": client_id, "redirect_uri": redirect_uri}


def _sh(command: str, browser: Browser, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", command],
        env={**os.environ, **browser.env},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def _serving(command: str, browser: Browser, home: Path) -> Iterator[None]:
    process = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        env={**os.environ, **browser.env},
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()  # the login's summary: the provider is serving
        assert ready.startswith("Logged in"), ready + (
            process.stderr.read() if process.stderr else ""
        )
        yield
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr


def _run_block(block: Block, values: dict[str, str], browser: Browser, home: Path) -> None:
    for command in block.before:
        result = _sh(command.format(**values), browser, home)
        assert result.returncode == 0, result.stderr
    code = block.filled(values)
    if block.kind == "sh":
        result = _sh(code, browser, home)
    else:
        result = subprocess.run(
            [sys.executable, "-c", _TOP_LEVEL_AWAIT, code],
            env={**os.environ, **browser.env},
            cwd=home,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 0, f"README.md:{block.line}:\n{code}\n{result.stderr}"
    assert "Traceback" not in result.stderr


# A README block as a newcomer pastes it into `python -m asyncio` or a notebook.
_TOP_LEVEL_AWAIT = """\
import ast, asyncio, sys
code = compile(sys.argv[1], "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, {"__name__": "__main__"})
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


@pytest.mark.parametrize(
    "block",
    [block for block in BLOCKS if block.kind != "notebook"],
    ids=lambda block: f"line{block.line}-{block.kind}",
)
def test_a_readme_example_runs(
    block: Block, values: dict[str, str], browser: Browser, home: Path
) -> None:
    if block.serve is None:
        _run_block(block, values, browser, home)
        return
    with _serving(block.serve.format(**values), browser, home):
        _run_block(block, values, browser, home)


def test_the_readme_notebook_runs_in_a_kernel(
    values: dict[str, str], browser: Browser, home: Path
) -> None:
    cells = [block.filled(values) for block in BLOCKS if block.kind == "notebook"]
    with jupyter_kernel(home, browser.env) as (_, client):
        outputs: list[dict[str, Any]] = []
        pasted: list[str] = []
        for cell in cells:
            outputs.clear()

            def paste(message: dict[str, Any]) -> None:
                # The person opens the login link, signs in, and pastes where the browser landed.
                # (The link may still be on its way: the input request comes on another channel.)
                while (url := _link(outputs)) is None:
                    outputs.append(client.get_iopub_msg(timeout=30))
                landed = play_browser(url).urls[-1]
                pasted.append(landed)
                client.input(landed)

            reply = client.execute_interactive(
                cell,
                timeout=120,
                output_hook=outputs.append,
                allow_stdin=True,
                stdin_hook=paste,
            )
            errors = [m["content"] for m in outputs if m["msg_type"] == "error"]
            assert reply["content"]["status"] == "ok", (cell, errors, reply["content"])
    assert len(pasted) == 1 and "code=" in pasted[0]  # the paste cell asked, and got it


def _link(outputs: list[dict[str, Any]]) -> str | None:
    """The login link shown in the cell's output, if it is there yet."""
    html = "".join(
        m["content"]["data"].get("text/html", "")
        for m in outputs
        if m["msg_type"] == "display_data"
    )
    found = re.search(r'href="([^"]+)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_a_newcomers_walk_through_one_empty_home(
    values: dict[str, str], browser: Browser, home: Path
) -> None:
    """Day one and day two in one home, with the CLI in subprocesses: no dead end on the way,
    and every refusal names a command that gets the person further."""

    def run(command: str, status: int = 0) -> subprocess.CompletedProcess[str]:
        result = _sh(command.format(**values), browser, home)
        assert result.returncode == status, f"{command}: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result

    # Day one: the demo, then its tokens without it.
    run("loopback-login demo")
    assert run("loopback-login token demo").stdout.strip()
    assert "demo" in run("loopback-login status").stdout
    stopped = run("loopback-login api demo /v2/locations", status=4)
    assert "loopback-login demo --serve" in stopped.stderr
    run("loopback-login logout demo --forget")
    gone = run("loopback-login token demo", status=3)
    assert "run `loopback-login demo`" in gone.stderr
    # Day two: the demo kept running, every command in another terminal.
    with _serving("loopback-login demo --serve", browser, home):
        for command in ("token demo", "refresh demo", "status", "api demo /v2/locations"):
            run(f"loopback-login {command}")
        run("loopback-login logout demo")
    run("loopback-login logout demo --forget")  # and its last traces (the refresh lock)
    # A provider given by its URLs, with its API key.
    login = (
        "loopback-login login hw --authorize-url {demo}/oauth2/authorize "
        "--token-url {demo}/oauth2/token --client-auth basic-raw --api-base-url {demo} "
        "--client-id {client_id} --redirect-uri {redirect_uri}"
    )
    run(login)
    wrong_key = run("loopback-login api hw /v2/locations", status=4)
    assert "loopback-login config hw api_key_param" in wrong_key.stderr
    run("loopback-login config hw api_key_param apikey")
    assert '"locationID"' in run("loopback-login api hw /v2/locations").stdout
    assert 'api_key_param = "apikey"' in run("loopback-login config hw").stdout
    run("loopback-login login hw")  # remembered: the name alone
    run("loopback-login logout hw --forget")
    config_dir = home / ".config" / "loopback-login"
    assert sorted(p.name for p in config_dir.rglob("*") if p.is_file()) == ["config.toml"]
