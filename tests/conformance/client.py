"""The client of the MCP conformance suite (``conformance client``), as a user would write it.

The suite runs ``python client.py SERVER_URL`` with ``MCP_CONFORMANCE_SCENARIO``
set, and ``MCP_CONFORMANCE_CONTEXT`` (JSON) when it hands out a pre-registered
client. Only the public surface is used:

1. ``loopback-login login conformance --resource SERVER_URL`` (plus ``--client-id``
   and ``--client-secret`` of a pre-registered client, ``--client-metadata-url``
   for servers that take a URL as the client id), with ``$BROWSER`` following redirects;
2. MCP over streamable HTTP with ``httpx`` and :class:`loopback_login.HttpxAuth`:
   ``initialize``, ``tools/list``, ``tools/call`` (where a 403 ``insufficient_scope``
   leads to a new login with the union of the scopes, and one retry).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

import loopback_login

PROFILE = "conformance"
#: Where a person would host docs/client-metadata.json; the suite only compares the URL.
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"


def log(*parts: object) -> None:
    print("[client]", *parts, file=sys.stderr, flush=True)


def login(server_url: str, context: dict[str, str]) -> int:
    cli = str(Path(sys.executable).parent / "loopback-login")
    argv = [cli, "login", PROFILE, "--resource", server_url]
    argv += ["--client-metadata-url", CLIENT_METADATA_URL]
    if context.get("client_id"):
        argv += ["--client-id", context["client_id"]]
        # The suite's authorization server judges every authorization-code request by its
        # PKCE verifier, the client check's made-up one included (which a real server answers
        # with invalid_grant): a pre-registered client with a secret is logged in without it.
        argv.append("--no-client-check")
    env = dict(os.environ)
    if context.get("client_secret"):
        # Given for this client by flag: the environment's secret is never sent to an
        # authorization server an API's metadata chose (SECURITY.md).
        argv += ["--client-secret", context["client_secret"]]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=25)
    log(f"login exit {done.returncode}")
    for line in (done.stdout + done.stderr).splitlines():
        log("  login:", line)
    return done.returncode


class Mcp:
    """A minimal streamable-HTTP MCP client over httpx and HttpxAuth."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.next_id = 1
        self.headers = {
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        self.http = httpx.Client(auth=loopback_login.HttpxAuth(PROFILE), timeout=20)

    def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
        notify = method.startswith("notifications/")
        if not notify:
            message["id"] = self.next_id
            self.next_id += 1
        response = self.http.post(self.url, json=message, headers=self.headers)
        log(f"{method}: HTTP {response.status_code}")
        response.raise_for_status()
        if session := response.headers.get("mcp-session-id"):
            self.headers["Mcp-Session-Id"] = session
        if notify:
            return None
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            answers = [
                json.loads(line[5:])
                for line in response.text.splitlines()
                if line.startswith("data:")
            ]
            answer = next(a for a in answers if a.get("id") == message["id"])
        else:
            answer = response.json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]


def main() -> int:
    server_url = sys.argv[-1]
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    log(f"scenario {os.environ.get('MCP_CONFORMANCE_SCENARIO')} at {server_url}")
    os.environ["LOOPBACK_LOGIN_CONFIG_DIR"] = tempfile.mkdtemp(prefix="loopback-login-conf-")
    os.environ["BROWSER"] = f"{sys.executable} {Path(__file__).with_name('browser.py')} %s"
    status = login(server_url, context)
    if status != 0:
        return status
    mcp = Mcp(server_url)
    try:
        init = mcp.send(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "loopback-login-conformance", "version": "1"},
            },
        )
        mcp.headers["MCP-Protocol-Version"] = init["protocolVersion"]
        mcp.send("notifications/initialized")
        tools = [tool["name"] for tool in mcp.send("tools/list")["tools"]]
        if tools:
            mcp.send("tools/call", {"name": tools[0], "arguments": {}})
    except loopback_login.LoopbackLoginError as exc:
        log(f"loopback-login: {exc}")
        return exc.exit_code
    except (httpx.HTTPError, RuntimeError, KeyError, StopIteration) as exc:
        log(f"MCP failed: {type(exc).__name__}: {exc}")
        return 1
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
