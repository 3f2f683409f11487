"""Nothing in the config directory is trusted before it is checked.

Another user (uid 65534, through ``setpriv``) plants files in a config root
left open to everyone; the tool must refuse them before reading them, so no
code, verifier or secret ever reaches a planted endpoint.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import CLIENT_ID, DemoServer, as_nobody, needs_second_user, run_cli


class Planted:
    """An attacker's token endpoint: it only records what it is sent."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        planted = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                planted.requests.append(self.rfile.read(length))
                self.send_response(400)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def planted() -> Iterator[Planted]:
    server = Planted()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def open_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A config root left at 0777, somewhere the other user can reach."""
    base = Path(tempfile.mkdtemp(prefix="loopback-login-shared-"))
    base.chmod(0o755)
    root = base / "config"
    root.mkdir()
    root.chmod(0o777)
    monkeypatch.setenv("LOOPBACK_LOGIN_CONFIG_DIR", str(root))
    try:
        yield root
    finally:
        shutil.rmtree(base)


_PLANT = r"""
import os, sys
path, text = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as file:
    file.write(text)
"""


def plant(path: Path, text: str) -> None:
    subprocess.run(as_nobody(_PLANT, str(path), text), check=True, timeout=30)
    assert path.stat().st_uid == 65534


@needs_second_user
def test_planted_config_file_is_refused_before_it_is_read(
    open_root: Path, planted: Planted
) -> None:
    plant(
        open_root / "config.toml",
        f'[profiles.work]\ntoken_url = "{planted.url}"\nclient_id = "{CLIENT_ID}"\n',
    )
    result = run_cli("client-credentials", "work")
    assert result.returncode == 2, result.stderr
    assert "config.toml belongs to another user" in result.stderr.splitlines()[-1]
    assert planted.requests == []


@needs_second_user
@pytest.mark.parametrize("metadata_dir", ["planted", "ours, left open"])
def test_planted_metadata_cache_is_refused_before_it_is_read(
    open_root: Path, planted: Planted, metadata_dir: str
) -> None:
    issuer = "https://idp.example"
    (open_root / "config.toml").write_text(
        f'[profiles.work]\nissuer = "{issuer}"\nclient_id = "{CLIENT_ID}"\n'
    )
    (open_root / "config.toml").chmod(0o600)
    document = {
        "issuer": issuer,
        "fetched_at": time.time(),
        "metadata": {"issuer": issuer, "token_endpoint": planted.url},
    }
    if metadata_dir != "planted":
        (open_root / "metadata").mkdir()
        (open_root / "metadata").chmod(0o777)
    plant(open_root / "metadata" / "work.json", json.dumps(document))
    result = run_cli("client-credentials", "work")
    assert result.returncode == 2, result.stderr
    refused = "metadata belongs" if metadata_dir == "planted" else "work.json belongs"
    assert f"{refused} to another user" in result.stderr.splitlines()[-1]
    assert planted.requests == []
    # The directory was tightened before anything was read from it.
    assert stat.S_IMODE(open_root.stat().st_mode) == 0o700


def test_every_directory_created_is_private(
    demo: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "missing" / "parents" / "config"
    monkeypatch.setenv("LOOPBACK_LOGIN_CONFIG_DIR", str(root))
    previous = os.umask(0o022)  # the usual umask, under which makedirs' parents are 0755
    # The first thing stored is a client-credentials token: tokens/ is an intermediate directory.
    demo.register("http://127.0.0.1:1/unused")
    result = run_cli(
        "client-credentials",
        "svc",
        "--provider",
        "honeywell",
        "--base-url",
        demo.base_url,
        "--client-id",
        CLIENT_ID,
    )
    os.umask(previous)
    assert result.returncode == 0, result.stderr
    for directory in (
        tmp_path / "missing",
        tmp_path / "missing" / "parents",
        root,
        root / "tokens",
        root / "tokens" / "client-credentials",
    ):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
