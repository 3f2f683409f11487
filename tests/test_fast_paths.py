"""The import policy of the two fast paths, stated once and pinned here.

What a person waits for twice a day must not wait for imports:

- ``loopback-login token NAME`` with a valid token reads one file and prints.
- ``loopback-login login``, from its start until the browser opens: the
  listener is bound and the browser started before asyncio and aiohttp load
  (they load while the person logs in).

Each path may load the package modules listed below and nothing heavy. How the
code keeps to it:

- A module on a path imports at its top only what that path uses; the rest is
  imported in the function that needs it (``cmd_token`` imports ``_flows`` only
  when the token must be refreshed).
- The modules on the ``token`` path (``__init__``, ``_cli``, ``_store``,
  ``_record``; ``_text`` imports nothing) write ``TYPE_CHECKING = False`` by
  hand: nothing else on that path loads :mod:`typing`. The login path loads it anyway (``_bind``, ``_protocol``),
  so its modules import it normally.
- ``token`` avoids :mod:`shutil` (argparse would import it to size its help:
  ``_cli._Formatter``), :mod:`platformdirs` (``_store`` finds the directory
  itself on Linux), :mod:`dataclasses` and :mod:`tomllib` (``_record`` reads a
  record with :mod:`json` alone).

Measured with ``python -X importtime`` and ``scripts/bench.py``; a workaround
that stops measuring as faster goes, and so does its line here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import NEUTRAL_CWD, write_private

#: The package modules each fast path may load, all of them.
TOKEN_PATH = {
    "loopback_login",
    "loopback_login._cli",
    "loopback_login._cli.commands",
    "loopback_login._cli.output",
    "loopback_login._errors",
    "loopback_login._tokens",
    "loopback_login._tokens.record",
    "loopback_login._store",
    "loopback_login._text",
}
BROWSER_PATH = TOKEN_PATH | {
    "loopback_login._cli.parser",
    "loopback_login._profiles.resolve",
    "loopback_login._login",
    "loopback_login._login.bind",
    "loopback_login._login.browser",
    "loopback_login._profiles",
    "loopback_login._profiles.profile",
    "loopback_login._protocol",
    "loopback_login._profiles.providers",
    # Stdlib only; it imports keyring only when it must look for a kept secret.
    "loopback_login._profiles.secrets",
    "loopback_login._login.start",
    "loopback_login._ui",
}

#: Packages neither path may load (their top-level names).
HEAVY = {
    "aiohttp",
    "yarl",
    "multidict",
    "asyncio",
    "ssl",
    "http",
    "email",
    "subprocess",
    "tomlkit",
    "tomllib",
    "filelock",
    "platformdirs",
    "dataclasses",
    "shutil",
}
#: ... and what `token` may not load on top of that.
HEAVY_FOR_TOKEN = HEAVY | {"typing", "socket", "hashlib", "secrets", "threading"}
#: The secret store is looked up only when a secret is needed (tests/test_secrets.py).
HEAVY_FOR_TOKEN |= {"keyring", "secretstorage", "jeepney"}
#: ... nor the HTTP clients of the adapters.
HEAVY_FOR_TOKEN |= {"httpx", "requests"}


def _imported(stderr: str) -> list[str]:
    """Module names from ``python -X importtime``'s lines, in import order."""
    return [
        line.rsplit("|", 1)[-1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "[us]" not in line
    ]


def _env_with_valid_token(home: Path) -> dict[str, str]:
    record = {"access_token": "tok", "token_type": "Bearer", "expires_at": time.time() + 600}
    write_private(home / ".config" / "loopback-login" / "tokens" / "home.json", json.dumps(record))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LOOPBACK_LOGIN_CONFIG_DIR", "XDG_CONFIG_HOME")
    }
    return {**env, "HOME": str(home)}


def test_token_imports_nothing_heavy(tmp_path: Path) -> None:
    """`token` with a valid token reads one file and prints; python -X importtime shows it."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "loopback_login", "token", "home"],
        capture_output=True,
        text=True,
        env=_env_with_valid_token(tmp_path / "home"),
        timeout=30,
        cwd=NEUTRAL_CWD,
    )
    assert result.stdout == "tok\n", result.stderr
    imported = set(_imported(result.stderr))
    assert "loopback_login._tokens.record" in imported  # the probe does see our imports
    ours = {name for name in imported if name.startswith("loopback_login")}
    assert ours == TOKEN_PATH
    heavy = {name for name in imported if name.split(".")[0] in HEAVY_FOR_TOKEN}
    assert heavy == set()


@pytest.mark.parametrize("secret", ["by flag", "kept in the keyring", "from the environment"])
def test_login_opens_the_browser_before_anything_heavy(tmp_path: Path, secret: str) -> None:
    """Everything imported before the URL is shown (the browser starts right after).

    A secret kept in the keyring is read once the browser is open: the keyring
    stack (importlib.metadata, D-Bus) costs more than all the rest before it.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-X", "importtime", "-m", "loopback_login", "login", "home"]
    command += ["--provider", "honeywell", "--client-id", "x"]
    command += ["--redirect-uri", f"http://127.0.0.1:{port}/callback", "--timeout", "30"]
    config = tmp_path / "config"
    env = {**os.environ, "BROWSER": "true", "LOOPBACK_LOGIN_CONFIG_DIR": str(config)}
    if secret == "by flag":
        command += ["--client-secret", "s"]
    elif secret == "from the environment":
        env["LOOPBACK_LOGIN_CLIENT_SECRET"] = "s"
    else:
        # Kept for this token endpoint and client id (issue 20), so the keyring is the source.
        env.pop("LOOPBACK_LOGIN_CLIENT_SECRET", None)
        write_private(
            config / "config.toml",
            '[profiles.home]\nkept_secret = "keyring"\n[profiles.home.kept_secret_for]\n'
            'token_origin = "https://api.honeywellhome.com:443"\nclient_id = "x"\n',
        )
    before: list[str] = []
    with subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=NEUTRAL_CWD,
    ) as process:
        try:
            assert process.stderr is not None
            for line in process.stderr:
                if line.startswith("Open this URL to log in: "):
                    break
                before.append(line)
            else:
                raise AssertionError("no URL shown:\n" + "".join(before))
        finally:
            process.kill()
    imported = set(_imported("".join(before)))
    assert "loopback_login._login.start" in imported  # the probe does see our imports
    ours = {name for name in imported if name.startswith("loopback_login")}
    assert ours == BROWSER_PATH
    # A profile in config.toml is read with tomllib: that is the profile, not overhead.
    allowed = {"tomllib"} if (config / "config.toml").exists() else set()
    heavy = {name for name in imported if name.split(".")[0] in HEAVY - allowed}
    assert heavy == set()
