"""In a real Jupyter kernel, a profile with no secret asks for it in a password box, once."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from support import CLIENT_ID, CLIENT_SECRET, Browser, DemoServer, free_port

jupyter_client = pytest.importorskip("jupyter_client")  # installed by `.[test]`


@pytest.fixture
def kernel(isolated_env: Any) -> Iterator[Any]:
    env = {k: v for k, v in os.environ.items() if k != "LOOPBACK_LOGIN_CLIENT_SECRET"}
    manager, client = jupyter_client.manager.start_new_kernel(
        kernel_name="python3", env=env, cwd=str(isolated_env.parent)
    )
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_password_box_then_kept(kernel: Any, demo: DemoServer, browser: Browser) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    settings = (
        f"provider='honeywell', base_url={demo.base_url!r}, client_id={CLIENT_ID!r}, "
        f"redirect_uri={redirect!r}"
    )
    asked: list[dict[str, Any]] = []

    def answer(message: dict[str, Any]) -> None:
        asked.append(message["content"])
        kernel.input(CLIENT_SECRET)

    outputs: list[dict[str, Any]] = []
    code = (
        f"import os, loopback_login\nos.environ.update({json.dumps(browser.env)})\n"
        f"t = loopback_login.login_sync('home', save=True, {settings})\nprint('ok', t.token_type)\n"
    )
    reply = kernel.execute_interactive(
        code, timeout=120, allow_stdin=True, stdin_hook=answer, output_hook=outputs.append
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    assert len(asked) == 1 and asked[0]["password"] is True
    assert asked[0]["prompt"].startswith("Client secret for profile 'home'")
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    assert "ok Bearer" in text and CLIENT_SECRET not in text
    # Kept: the next login in this kernel asks nothing.
    asked.clear()
    reply = kernel.execute_interactive(
        "loopback_login.login_sync('home')",
        timeout=120,
        allow_stdin=True,
        stdin_hook=answer,
        output_hook=outputs.append,
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    assert asked == []
