"""Small holes: IPv6 spelling, deep TOML, Windows device names and case, dependency floors."""

from __future__ import annotations

import asyncio
import re
import sys
import tomllib
from pathlib import Path

import aiohttp
import pytest
from support import (
    needs_ipv6_loopback,
    receiving,
    run_cli,
    token_path,
    write_private,
)

ROOT = Path(__file__).resolve().parents[2]
STATE = "c21hbGwtb25lcy0wMTIzNDU2Nzg5YWJjZGVmZ2hpams"


@needs_ipv6_loopback
async def test_long_form_ipv6_loopback_redirect_completes() -> None:
    # What a browser sends: the canonical [::1] in the Host header.
    async with (
        receiving("http://[0:0:0:0:0:0:0:1]:0/cb", state=STATE) as (receiver, listener),
        aiohttp.ClientSession() as http,
    ):
        page = asyncio.ensure_future(
            http.get(f"http://[::1]:{listener.port}/cb?code=c&state={STATE}")
        )
        assert await asyncio.wait_for(receiver.wait(), 10) == "c"
        receiver.finish(None, profile="p")
        response = await asyncio.wait_for(page, 10)
        assert response.status == 200
        response.release()


def test_deeply_nested_config_is_a_configuration_error(isolated_env: Path) -> None:
    depth = 100_000
    write_private(isolated_env / "config.toml", "x = " + "[" * depth + "]" * depth + "\n")
    for command in (["status"], ["login", "p", "--client-id", "x"]):
        result = run_cli(*command)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and "nested too deeply" in lines[0], lines


@pytest.mark.parametrize(
    "name", ["CON", "nul", "Aux", "prn", "COM1", "com9", "LPT1", "lpt9", "con.txt", "NUL.json"]
)
def test_windows_device_names_are_refused(name: str) -> None:
    for command in (["token", name], ["status", name], ["login", name, "--client-id", "x"]):
        result = run_cli(*command)
        assert result.returncode == 2, (command, result.stderr)
        assert "device name on Windows" in result.stderr
    assert run_cli("status", "COM10").returncode == 3  # not a device: merely unknown


def test_names_equal_but_for_case_are_refused(isolated_env: Path) -> None:
    write_private(token_path("home"), '{"access_token": "a", "expires_at": null}')
    write_private(
        isolated_env / "config.toml",
        '[profiles.Work]\nclient_id = "x"\ntoken_url = "https://i/t"\n',
    )
    for command in (
        ["token", "HOME"],
        ["token", "work"],
        ["login", "Home", "--client-id", "x", "--token-url", "https://i/t"],
        ["client-credentials", "WORK", "--client-id", "x", "--token-url", "https://i/t"],
    ):
        result = run_cli(*command)
        assert result.returncode == 2, (command, result.stderr)
        assert "only in case" in result.stderr.splitlines()[-1]
    assert run_cli("token", "home").stdout == "a\n"


def _floor(requirement: str) -> tuple[int, ...]:
    match = re.search(r">=\s*([0-9.]+)", requirement)
    assert match, f"{requirement} has no floor"
    return tuple(int(part) for part in match.group(1).split("."))


def test_dependency_floors_exclude_known_vulnerable_versions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {
        re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0].lower(): _floor(requirement)
        for requirement in project["dependencies"]
    }
    # filelock < 3.20.1: CVE-2025-68146 (a planted lock symlink truncates its target);
    # 3.12.x lacks arguments we pass; 4.1.0 to 4.2.0: the CVE-2026-1129xx series.
    assert floors["filelock"] >= (4, 2, 1)
    # aiohttp < 3.13.4: CVE-2026-34513 to -34525 and CVE-2026-22815; < 3.14.3: CVE-2026-69244.
    assert floors["aiohttp"] >= (3, 14, 3)
    assert sys.version_info >= (3, 11)
