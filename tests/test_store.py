"""The config directory and its files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from support import run_cli, token_record, type_errors

from loopback_login._errors import ConfigError, LoginRequired
from loopback_login._store import Store


def test_save_profile_keeps_the_users_comments_and_tables(isolated_env: Path) -> None:
    isolated_env.mkdir(mode=0o700)
    config = isolated_env / "config.toml"
    config.write_text('# my settings\n[profiles.other]\nprovider = "honeywell" # keep me\n')
    store = Store()
    store.save_profile(
        "home", {"client_id": "abc", "pkce": False, "authorize_params": {"prompt": "consent"}}
    )
    text = config.read_text()
    assert "# my settings" in text and "# keep me" in text
    assert store.profile_table("home") == {
        "client_id": "abc",
        "pkce": False,
        "authorize_params": {"prompt": "consent"},
    }
    assert store.profile_table("other") == {"provider": "honeywell"}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert [p.name for p in isolated_env.iterdir()] == ["config.toml"]  # no temp files left


def test_directory_is_created_0700_and_loose_modes_tightened(isolated_env: Path) -> None:
    isolated_env.mkdir(mode=0o755)
    os.chmod(isolated_env, 0o755)
    Store().write_record("home", token_record(access_token="x"))
    assert stat.S_IMODE(isolated_env.stat().st_mode) == 0o700
    assert stat.S_IMODE((isolated_env / "tokens").stat().st_mode) == 0o700
    assert stat.S_IMODE((isolated_env / "tokens" / "home.json").stat().st_mode) == 0o600


def test_invalid_toml_is_a_config_error_naming_the_file(isolated_env: Path) -> None:
    isolated_env.mkdir()
    (isolated_env / "config.toml").write_text("[profiles.home\n")
    with pytest.raises(ConfigError, match=r"config\.toml is not valid TOML"):
        Store().read_config()
    result = run_cli("login", "home")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1


def test_unknown_profile_key_is_refused(isolated_env: Path) -> None:
    isolated_env.mkdir()
    (isolated_env / "config.toml").write_text('[profiles.home]\nprovder = "honeywell"\n')
    result = run_cli("login", "home")
    assert result.returncode == 2
    assert "unknown key 'provder' in [profiles.home]" in result.stderr


def test_profile_names_come_from_config_and_token_files(isolated_env: Path) -> None:
    store = Store()
    store.save_profile("configured", {"provider": "honeywell"})
    store.write_record("logged-in", token_record(access_token="x"))
    (isolated_env / "tokens" / "notes.txt").write_text("")
    (isolated_env / "tokens" / ".hidden.json").write_text("{}")
    assert store.profile_names() == ["configured", "logged-in"]


@pytest.mark.parametrize("content", [b"", b"[1, 2]", b"\xff\xfe", b'{"access_token": 5}'])
def test_unusable_token_files_mean_login_required(isolated_env: Path, content: bytes) -> None:
    store = Store()
    store.write_record("home", token_record())
    Path(store.token_path("home")).write_bytes(content)
    with pytest.raises(LoginRequired, match="run `loopback-login login home` again"):
        store.read_record("home")


@pytest.mark.parametrize(
    "env",
    [
        {"HOME": "/home/ann"},
        {"HOME": "/home/ann/"},
        {"HOME": "/home/ann", "XDG_CONFIG_HOME": "/xdg/config"},
        {"HOME": "/home/ann", "XDG_CONFIG_HOME": "relative/config"},
        {"HOME": "/home/ann", "XDG_CONFIG_HOME": ""},
        {"HOME": "relative"},
    ],
)
def test_default_directory_is_platformdirs(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path that skips importing platformdirs gives platformdirs' own answer."""
    import platformdirs

    from loopback_login._store import default_root

    monkeypatch.delenv("LOOPBACK_LOGIN_CONFIG_DIR")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        expected = str(platformdirs.user_config_path("loopback-login", appauthor=False))
    except RuntimeError:  # platformdirs cannot resolve a home either
        pytest.skip("no home directory to compare")
    assert default_root() == expected


def test_a_misspelled_record_key_is_a_type_error(tmp_path: Path) -> None:
    """The token record is typed (TokenRecord): a key that does not exist is caught before it runs."""
    errors = type_errors(
        tmp_path,
        "from loopback_login._store import Store\n"
        "record = Store().require_record('home')\n"
        "print(record['acess_token'])\n"
        "print(record['access_token'].upper(), record['expires_at'])\n",
    )
    assert [line.split(":")[1] for line in errors] == ["3"], errors
    assert '"acess_token"' in errors[0], errors
