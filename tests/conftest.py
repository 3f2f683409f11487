from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import CLIENT_SECRET, Browser, DemoServer, DeviceServer, browser_for

_ISOLATED_ENV = (
    "BROWSER",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "SSH_CONNECTION",
    "SSH_TTY",
    "SSH_CLIENT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "LOOPBACK_LOGIN_CLIENT_SECRET",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own config directory and none of the user's browser or proxy."""
    for name in _ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config"
    monkeypatch.setenv("LOOPBACK_LOGIN_CONFIG_DIR", str(config))
    # Where users are told to keep it; tests of the --client-secret flag unset it.
    monkeypatch.setenv("LOOPBACK_LOGIN_CLIENT_SECRET", CLIENT_SECRET)
    # Never the user's own keyring: no secure backend, so secrets go to config.toml.
    # The tests of the real Secret Service (test_secrets.py) start their own.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    return config


@pytest.fixture
def demo() -> Iterator[DemoServer]:
    server = DemoServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def browser(tmp_path: Path) -> Browser:
    return browser_for(tmp_path)


@pytest.fixture
def device_server() -> Iterator[DeviceServer]:
    """An RFC 8628 server (support.DeviceServer), for the device login's tests."""
    server = DeviceServer()
    try:
        yield server
    finally:
        server.close()
