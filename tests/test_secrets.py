"""The client secret: asked for once, kept in a real Secret Service (gnome-keyring), else config.toml."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import (
    CLI,
    CLIENT_SECRET,
    NEUTRAL_CWD,
    Browser,
    DemoServer,
    expire,
    free_port,
    login_args,
    read_record,
    run_cli,
    token_path,
)

KEYRING_CLI = str(Path(sysconfig.get_path("scripts")) / "keyring")


class SecretService:
    """gnome-keyring's Secret Service on a private D-Bus session, unlocked with a test password."""

    def __init__(self, tmp: Path) -> None:
        home, runtime = tmp / "keyring-home", tmp / "keyring-run"
        home.mkdir()
        runtime.mkdir(mode=0o700)
        script = (
            "echo -n testpw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; "
            'echo "$DBUS_SESSION_BUS_ADDRESS"; exec cat >/dev/null'
        )
        self.process = subprocess.Popen(
            ["dbus-run-session", "--", "sh", "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)},
            start_new_session=True,
        )
        assert self.process.stdout is not None
        address = self.process.stdout.readline().strip()
        assert address, "dbus-run-session gave no bus address"
        self.env = {
            "DBUS_SESSION_BUS_ADDRESS": address,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
        }

    def get(self, name: str) -> subprocess.CompletedProcess[str]:
        """`keyring get loopback-login NAME`, as a user would read it back."""
        return subprocess.run(
            [KEYRING_CLI, "get", "loopback-login", name],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=30,
        )

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # `cat` ends, the session and its daemons with it
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        finally:
            assert self.process.stdout is not None
            self.process.stdout.close()


@pytest.fixture
def secret_service(tmp_path: Path) -> Iterator[SecretService]:
    if not (shutil.which("gnome-keyring-daemon") and shutil.which("dbus-run-session")):
        pytest.fail("gnome-keyring and dbus-run-session are needed (scripts/test installs them)")
    service = SecretService(tmp_path)
    try:
        yield service
    finally:
        service.close()


def _redirect(demo: DemoServer, secret: str = CLIENT_SECRET) -> str:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect, secret=secret)
    return redirect


def _lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return result.stderr.strip().splitlines()


def test_kept_in_the_secret_service_and_used_in_a_new_shell(
    demo: DemoServer,
    browser: Browser,
    secret_service: SecretService,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redirect = _redirect(demo)
    env = {**browser.env, **secret_service.env}
    first = run_cli(*login_args(demo, redirect), "--save", env=env)
    assert first.returncode == 0, first.stderr
    # Kept for the profile in this config directory (issue 20).
    user = f"home@{isolated_env}"
    assert (
        "Kept the client secret of profile 'home' in the OS keyring (Keyring; "
        f"service 'loopback-login', user '{user}')." in first.stderr
    )
    read_back = secret_service.get(user)
    assert read_back.returncode == 0 and read_back.stdout == CLIENT_SECRET + "\n"
    config = (isolated_env / "config.toml").read_text()
    assert CLIENT_SECRET not in config and "client_secret" not in config  # --save included
    assert CLIENT_SECRET not in token_path().read_text()

    # A new shell: no variable, no flag. The kept secret logs in and refreshes.
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    again = run_cli("login", "home", env=env)
    assert again.returncode == 0, again.stderr
    assert "Kept the client secret" not in again.stderr  # already kept: nothing to say
    expire()
    refreshed = run_cli("token", "home", env=secret_service.env)
    assert refreshed.returncode == 0, refreshed.stderr
    assert refreshed.stdout == read_record()["access_token"] + "\n"
    status = run_cli("status", env=secret_service.env)
    assert status.returncode == 0
    header, row = status.stdout.splitlines()[:2]
    assert "SECRET" in header.split() and " keyring " in row
    assert CLIENT_SECRET not in status.stdout + status.stderr

    # A wrong secret by flag is refused before the consent and does not replace the kept one.
    wrong = run_cli(
        "login",
        "home",
        "--client-secret",
        "not-the-secret",
        env={**env, "TEST_BROWSER_ACTION": "nothing"},
    )
    assert wrong.returncode == 4
    assert "refused the client id or secret of profile 'home'" in wrong.stderr.splitlines()[-1]
    assert secret_service.get(user).stdout == CLIENT_SECRET + "\n"

    # logout --forget: tokens, the keyring entry and the config table are gone.
    forget = run_cli("logout", "home", "--forget", env=secret_service.env)
    assert forget.returncode == 0, forget.stderr
    assert "Forgot profile 'home': removed its stored client secret and its [profiles.home]" in (
        forget.stdout
    )
    assert secret_service.get(user).returncode != 0
    assert "[profiles.home]" not in (isolated_env / "config.toml").read_text()
    assert not token_path().exists()
    assert run_cli("status", env=secret_service.env).stdout == ""


def test_without_a_secure_keyring_the_file_keeps_it(
    demo: DemoServer, browser: Browser, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redirect = _redirect(demo)
    first = run_cli(*login_args(demo, redirect), env=browser.env)
    assert first.returncode == 0, first.stderr
    config = isolated_env / "config.toml"
    assert (
        f"Kept the client secret of profile 'home' in {config} (mode 0600; no secure OS keyring "
        "is available here)." in first.stderr
    )
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert f'client_secret = "{CLIENT_SECRET}"' in config.read_text()
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    expire()
    assert run_cli("token", "home").returncode == 0
    assert " config file " in run_cli("status").stdout.splitlines()[1]
    assert run_cli("logout", "home", "--forget").returncode == 0
    assert "client_secret" not in config.read_text()


def test_without_a_session_bus_keyring_is_never_loaded(
    demo: DemoServer, browser: Browser, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSH, containers: no D-Bus session bus, no keyring configured, so no secure keyring can
    answer; the secret goes to the file without keyring's backend discovery."""
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(isolated_env.parent / "xdg"))  # no keyringrc.cfg
    redirect = _redirect(demo)
    first = run_cli(
        *login_args(demo, redirect), env={**browser.env, "PYTHONPROFILEIMPORTTIME": "1"}
    )
    assert first.returncode == 0, first.stderr
    assert f"Kept the client secret of profile 'home' in {isolated_env / 'config.toml'}" in (
        first.stderr
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in first.stderr.splitlines()}
    assert "loopback_login._profiles.secrets" in imported  # the probe sees our imports
    assert not {name for name in imported if name.split(".")[0] == "keyring"}


def test_precedence_flag_then_stored_then_environment(
    demo: DemoServer, browser: Browser, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redirect = _redirect(demo)
    assert run_cli(*login_args(demo, redirect), env=browser.env).returncode == 0
    # A stored secret wins over the environment: an exported secret meant for
    # another profile never reaches this profile's provider.
    monkeypatch.setenv("LOOPBACK_LOGIN_CLIENT_SECRET", "meant-for-another-profile")
    stored_wins = run_cli(*login_args(demo, redirect), env=browser.env)
    assert stored_wins.returncode == 0, stored_wins.stderr
    status = run_cli("status").stdout.splitlines()
    assert " config file " in status[1]
    # The environment serves a profile with no stored secret (and is then kept for it).
    other = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(other, client_id="other", secret="meant-for-another-profile")
    work = run_cli(
        *login_args(demo, other, profile="work"), "--client-id", "other", env=browser.env
    )
    assert work.returncode == 0, work.stderr
    config = (isolated_env / "config.toml").read_text()
    assert 'client_secret = "meant-for-another-profile"' in config.split("[profiles.work]")[1]
    # A new secret given by flag replaces the stored one.
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    rotated = _redirect(demo, secret="rotated-secret")
    flag = run_cli(*login_args(demo, rotated), "--client-secret", "rotated-secret", env=browser.env)
    assert flag.returncode == 0, flag.stderr
    assert "Kept the client secret of profile 'home'" in flag.stderr
    home = (isolated_env / "config.toml").read_text().split("[profiles.home]")[1]
    assert 'client_secret = "rotated-secret"' in home.split("[profiles.")[0]


def test_no_secret_and_nobody_to_ask_is_exit_2_before_anything(
    demo: DemoServer, browser: Browser, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    redirect = _redirect(demo)
    result = run_cli(*login_args(demo, redirect), env=browser.env)
    assert result.returncode == 2
    assert _lines(result) == [
        "loopback-login: profile 'home' needs its client secret: pass --client-secret or set "
        "$LOOPBACK_LOGIN_CLIENT_SECRET once (it is kept for the profile after one login)"
    ]
    assert not browser.log_path.exists()  # no browser was opened
    assert not token_path().exists() and not (isolated_env / "config.toml").exists()


def _run_in_pty(args: list[str], env: dict[str, str], answer: str) -> tuple[int, str]:
    """Run the CLI on a terminal, type ``answer`` at the first prompt; (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI with the pty as its controlling terminal
        os.chdir(NEUTRAL_CWD)
        os.execve(CLI, [CLI, *args], env)
    output, answered = b"", False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child has gone
                break
            if not chunk:
                break
            output += chunk
        if not answered and b"(not shown; kept after this login): " in output:
            os.write(fd, answer.encode() + b"\r")
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_asked_without_echo_on_a_terminal_then_kept(
    demo: DemoServer, browser: Browser, isolated_env: Path
) -> None:
    redirect = _redirect(demo)
    env = {k: v for k, v in os.environ.items() if k != "LOOPBACK_LOGIN_CLIENT_SECRET"}
    code, output = _run_in_pty(login_args(demo, redirect), {**env, **browser.env}, CLIENT_SECRET)
    assert code == 0, output
    assert "Client secret for profile 'home' (not shown; kept after this login): " in output
    assert CLIENT_SECRET not in output  # getpass: no echo
    assert "Logged in" in output
    assert f'client_secret = "{CLIENT_SECRET}"' in (isolated_env / "config.toml").read_text()


def test_token_fast_path_never_imports_keyring(tmp_path: Path) -> None:
    """The `token` command with a valid token: nothing keyring-related is imported."""
    home = tmp_path / "home"
    path = home / ".config" / "loopback-login" / "tokens" / "home.json"
    path.parent.mkdir(parents=True, mode=0o700)
    path.parent.parent.chmod(0o700)
    path.write_text('{"access_token": "tok", "token_type": "Bearer", "expires_at": null}')
    path.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in ("LOOPBACK_LOGIN_CONFIG_DIR",)}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "loopback_login", "token", "home"],
        capture_output=True,
        text=True,
        env={**env, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")},
        timeout=30,
        cwd=NEUTRAL_CWD,
    )
    assert result.stdout == "tok\n", result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert "loopback_login._store" in imported
    assert not {
        name
        for name in imported
        if name.split(".")[0] in ("keyring", "secretstorage", "jeepney", "jaraco")
        or name in ("loopback_login._profiles.secrets", "getpass")
    }


def test_a_broken_keyring_setup_falls_back_to_the_file(
    demo: DemoServer, browser: Browser, isolated_env: Path
) -> None:
    redirect = _redirect(demo)
    # keyring itself raises ValueError for this; the login must go on regardless.
    env = {**browser.env, "PYTHON_KEYRING_BACKEND": ""}
    result = run_cli(*login_args(demo, redirect), env=env)
    assert result.returncode == 0, result.stderr
    assert "loopback-login: warning: the OS keyring is not usable (ValueError)" in result.stderr
    assert f'client_secret = "{CLIENT_SECRET}"' in (isolated_env / "config.toml").read_text()
    assert "Traceback" not in result.stderr
