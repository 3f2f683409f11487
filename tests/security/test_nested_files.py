"""One deeply nested file in the config directory never crashes a command (RecursionError).

Every file the commands read is tried: a token file (too deep for the JSON parser, and
deep enough to parse but not to handle twice), ``config.toml``, the metadata cache and
the running demo's ``demo.json``. Each command ends in one line or one row, never a
traceback.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support import run_cli, token_path, write_private

DEEP = 100_000  # refused by the JSON and TOML parsers (RecursionError)
EDGE = 990  # parsed, but near the interpreter's limit wherever it is handled again


def _record(raw: str) -> str:
    return (
        '{"access_token": "tok", "token_type": "Bearer", "obtained_at": 1, "expires_at": '
        f'{time.time() + 600}, "profile": "home", "provider": "custom", "client_id": "x", '
        '"client_auth": "none", "token_url": "https://127.0.0.1:9/t", "skew": 60, '
        f'"api_base_url": "https://127.0.0.1:9", "raw": {raw}}}'
    )


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


COMMANDS = [
    ["status"],
    ["status", "home"],
    ["token", "home"],
    ["token", "home", "--json"],
    ["api", "home", "/x"],
    ["refresh", "home"],
    ["logout", "home"],
]


def _assert_one_line(command: list[str], result: object) -> None:
    assert isinstance(result, __import__("subprocess").CompletedProcess)
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr, (
        command,
        result.stderr[-500:],
    )
    assert "internal error" not in result.stderr, (command, result.stderr)
    assert result.returncode in (0, 2, 3, 4), (command, result.returncode, result.stderr)
    if result.returncode:
        assert len(result.stderr.splitlines()) == 1, (command, result.stderr)


@pytest.mark.parametrize("raw", [_nested(DEEP), _nested(EDGE)], ids=["deep", "edge"])
def test_a_deeply_nested_token_file_is_one_line_or_one_row(raw: str) -> None:
    for command in COMMANDS:
        write_private(token_path(), _record(raw))
        result = run_cli(*command)
        _assert_one_line(command, result)
        if command[0] == "status":
            rows = result.stdout.splitlines()
            assert len(rows) == 2 and rows[1].startswith("home "), (command, result.stdout)


def test_a_deeply_nested_config_file_is_one_line(isolated_env: Path) -> None:
    write_private(isolated_env / "config.toml", "x = " + _nested(DEEP) + "\n")
    write_private(token_path(), _record("{}"))
    for command in COMMANDS:
        result = run_cli(*command)
        _assert_one_line(command, result)
        if result.returncode == 2:  # `token` and `api` with a fresh token never read it
            assert "nested too deeply" in result.stderr, (command, result.stderr)


def test_deeply_nested_metadata_and_demo_files_are_ignored(isolated_env: Path) -> None:
    deep = '{"a": ' * DEEP + "1" + "}" * DEEP
    write_private(isolated_env / "metadata" / "home.json", deep)
    write_private(isolated_env / "demo.json", deep)
    write_private(isolated_env / "config.toml", '[profiles.home]\nissuer = "https://127.0.0.1:9"\n')
    result = run_cli("login", "home", "--client-id", "x", "--no-browser", "--timeout", "1")
    _assert_one_line(["login"], result)
    assert result.returncode == 4, result.stderr  # the issuer is fetched again: nobody there
    for command in (["status"], ["refresh", "demo"], ["token", "demo"]):
        _assert_one_line(command, run_cli(*command))
