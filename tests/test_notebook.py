"""In a real Jupyter kernel: the sync API inside its running loop, top-level await,
the login link, and a kernel interrupt that frees the port."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import (
    CLIENT_ID,
    CLIENT_SECRET,
    USER_CODE,
    Browser,
    DemoServer,
    DeviceServer,
    exchanges,
    free_port,
    jupyter_kernel,
    read_record,
)

jupyter_client = pytest.importorskip("jupyter_client")  # installed by `.[test]`


@pytest.fixture
def kernel(isolated_env: Any) -> Iterator[Any]:
    with jupyter_kernel(isolated_env.parent) as kernel:
        yield kernel


def _run(
    client: Any, code: str, timeout: float = 120
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    outputs: list[dict[str, Any]] = []
    reply = client.execute_interactive(code, timeout=timeout, output_hook=outputs.append)
    return reply["content"], outputs


def _text(outputs: list[dict[str, Any]]) -> str:
    return "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")


def _setup(browser: Browser, **extra_env: str) -> str:
    env = {**browser.env, **extra_env, "LOOPBACK_LOGIN_CLIENT_SECRET": CLIENT_SECRET}
    return f"import os, loopback_login\nos.environ.update({json.dumps(env)})\n"


def _settings(demo: DemoServer, redirect: str) -> str:
    return (
        f"provider='honeywell', base_url={demo.base_url!r}, client_id={CLIENT_ID!r}, "
        f"redirect_uri={redirect!r}"
    )


def test_sync_and_async_login_in_a_kernel(kernel: Any, demo: DemoServer, browser: Browser) -> None:
    _, client = kernel
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    reply, _ = _run(client, _setup(browser))
    assert reply["status"] == "ok"

    # The sync form, inside the kernel's running event loop.
    reply, outputs = _run(
        client,
        f"t = loopback_login.login_sync('home', {_settings(demo, redirect)})\n"
        "print('sync', t.token_type, bool(t.access_token), t.refresh_token is not None)\n",
    )
    assert reply["status"] == "ok", reply
    assert "sync Bearer True True" in _text(outputs)
    links = [
        m["content"]["data"]["text/html"]
        for m in outputs
        if m["msg_type"] == "display_data" and "text/html" in m["content"]["data"]
    ]
    assert (
        len(links) == 1
        and '<a href="http://127.0.0.1:' in links[0]
        and 'target="_blank"' in links[0]
    )

    # Top-level await: the async form.
    reply, outputs = _run(
        client,
        f"t2 = await loopback_login.login('home2', {_settings(demo, redirect)})\n"
        "g = await loopback_login.get_token('home2')\n"
        "print('async', g.access_token == t2.access_token)\n"
        "print('cached', loopback_login.get_token_sync('home').access_token == t.access_token)\n",
    )
    assert reply["status"] == "ok", reply
    assert "async True" in _text(outputs) and "cached True" in _text(outputs)
    assert exchanges(demo.provider) == 2


def test_kernel_interrupt_cancels_the_login_and_frees_the_port(
    kernel: Any, demo: DemoServer, browser: Browser
) -> None:
    manager, client = kernel
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/callback"
    demo.register(redirect)
    reply, _ = _run(client, _setup(browser, TEST_BROWSER_ACTION="nothing"))
    assert reply["status"] == "ok"
    message_id = client.execute(
        f"loopback_login.login_sync('home', timeout=600, {_settings(demo, redirect)})"
    )
    browser.wait_log(60)  # the login is waiting for a browser that never comes back
    manager.interrupt_kernel()
    deadline = time.monotonic() + 60
    while True:
        reply = client.get_shell_msg(timeout=max(1, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == message_id:
            break
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    # The port is free the moment control returns.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    # And the kernel is still usable. (ipykernel 7 aborts a request that reaches it before
    # its "stop aborting" message after an error, a race a person at the keyboard never
    # meets; sent at once, as here, it can be "aborted": then it is sent again.)
    reply, outputs = _run(client, "print('alive')")
    if reply["status"] == "aborted":
        reply, outputs = _run(client, "print('alive')")
    assert reply["status"] == "ok" and "alive" in _text(outputs)


def test_in_a_kernel_without_a_browser_the_cell_shows_a_link_and_the_code(
    kernel: Any,
    device_server: DeviceServer,
) -> None:
    _, client = kernel
    # The kernel has no DISPLAY and no BROWSER (a hosted notebook): the device flow by itself.
    reply, outputs = _run(
        client,
        "import loopback_login\n"
        f"t = loopback_login.login_sync('home', token_url={device_server.issuer + '/token'!r}, "
        f"device_authorization_url={device_server.issuer + '/device'!r}, client_id='tv-app', "
        "client_auth='none', redirect_uri='http://127.0.0.1:8765/callback')\n"
        "print('token', t.access_token)\n",
    )
    assert reply["status"] == "ok", reply
    shown = [
        m["content"]["data"]["text/html"]
        for m in outputs
        if m["msg_type"] == "display_data" and "text/html" in m["content"]["data"]
    ]
    assert len(shown) == 1
    assert f'href="{device_server.issuer}/activate?user_code={USER_CODE}"' in shown[0]
    assert f">{USER_CODE}</code>" in shown[0]
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    assert "token at-1" in text and "logging in with the device flow" in text
    assert read_record()["flow"] == "device"
