"""The per-user directory: ``config.toml`` and ``tokens/NAME.json``.

Everything is written atomically (temp file in the same directory, fsync,
``os.replace``) with mode 0600 from creation, so a crash mid-write leaves the
previous file whole and no other user ever sees a secret. Paths are plain
strings and imports are light: ``token NAME`` goes through here.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import sys

from ._errors import ConfigError, LoginRequired, LoginTimeout
from ._tokens.record import parse_record

TYPE_CHECKING = False  # `token` reads through here: typing only for the type checker
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping
    from typing import Any

    from ._tokens.record import TokenRecord

CONFIG_DIR_ENV = "LOOPBACK_LOGIN_CONFIG_DIR"
APP_NAME = "loopback-login"

# Profile names become file names: no separators, no dot files, bounded.
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


# Windows opens a device for these whatever the extension (NUL.json, con.txt):
# refused everywhere, so that a profile behaves the same on every OS.
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{port}{n}" for port in ("COM", "LPT") for n in range(1, 10)]
)


def check_profile_name(name: str) -> str:
    if not PROFILE_NAME.fullmatch(name):
        raise ConfigError(
            f"invalid profile name {name!r}: use letters, digits, '.', '_' or '-' "
            "(up to 64, starting with a letter or digit)"
        )
    if name.split(".", 1)[0].upper() in _RESERVED:
        raise ConfigError(
            f"invalid profile name {name!r}: {name.split('.', 1)[0]} is a device name on Windows"
        )
    return name


def default_root() -> str:
    """``$LOOPBACK_LOGIN_CONFIG_DIR``, else platformdirs' user config directory."""
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return os.path.abspath(os.path.expanduser(override))
    plain = _plain_xdg_config_root()
    if plain is not None:
        return plain
    import platformdirs

    return str(platformdirs.user_config_path(APP_NAME, appauthor=False))


def _plain_xdg_config_root() -> str | None:
    """platformdirs' answer on Linux in the plain XDG case, without importing it.

    Importing platformdirs (pathlib, tempfile, shutil) costs more than all the
    rest of ``loopback-login token``. Only the common case is done here: an
    absolute ``$XDG_CONFIG_HOME``, else ``$HOME/.config`` with an absolute
    ``$HOME``; anything else is platformdirs' to answer. A test pins the two equal.
    """
    if sys.platform != "linux":
        return None
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    if os.path.isabs(xdg):
        return os.path.join(xdg, APP_NAME)
    if not os.path.isabs(os.environ.get("HOME", "")):
        return None
    return os.path.join(os.path.expanduser("~/.config"), APP_NAME)


def _make_private_dirs(path: str) -> None:
    """``os.makedirs(path, 0o700)``, but every directory created is 0700, not only the last."""
    parent = os.path.dirname(path)
    if parent and parent != path and not os.path.isdir(parent):
        _make_private_dirs(parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)


def _warn(message: str) -> None:
    print(f"loopback-login: warning: {message}", file=sys.stderr, flush=True)


class Store:
    """The config file and the token records of one user.

    ``warn`` hears about what was repaired on the way (loose permissions).
    """

    def __init__(self, root: str | None = None, *, warn: Callable[[str], None] = _warn) -> None:
        self.root = root or default_root()
        self._warn = warn
        self.config_path = os.path.join(self.root, "config.toml")
        self.tokens_dir = os.path.join(self.root, "tokens")

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    def token_path(self, name: str) -> str:
        return os.path.join(self.tokens_dir, f"{name}.json")

    def lock_path(self, name: str) -> str:
        """The profile's refresh lock (see :meth:`refresh_lock`)."""
        return self.token_path(name) + ".lock"

    def metadata_path(self, name: str) -> str:
        """The profile's cached provider metadata (see :mod:`._profiles.discovery`)."""
        return os.path.join(self.root, "metadata", f"{name}.json")

    @property
    def demo_path(self) -> str:
        """The running ``demo --serve``'s URL and secret (see :mod:`._demo.serving`)."""
        return os.path.join(self.root, "demo.json")

    def read_json(self, path: str) -> dict[str, Any] | None:
        """One of our JSON objects below the root, or ``None`` (absent, unreadable, not one)."""
        self._check_tree(os.path.dirname(path))
        try:
            data = json.loads(self._read_private(path))
        except (OSError, ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None

    def write_json(self, path: str, document: Mapping[str, Any]) -> None:
        self._write(path, json.dumps(document, indent=2).encode("utf-8"))

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def client_credentials_path(self, name: str) -> str:
        # Its own directory: a profile name may contain dots, so no suffix is safe.
        return os.path.join(self.tokens_dir, "client-credentials", f"{name}.json")

    # --- config.toml ----------------------------------------------------

    def read_config(self) -> dict[str, Any]:
        """The parsed config file; empty when there is none."""
        self._check_tree(self.root)
        try:
            # config.toml may be a link into the user's dotfiles: followed, its owner checked.
            text = self._read_private(self.config_path, follow=True)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"cannot read {self.config_path}: {exc.strerror}") from None
        import tomllib

        try:
            config = tomllib.loads(text.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.config_path} is not valid TOML ({exc}); fix it") from None
        except RecursionError:
            raise ConfigError(f"{self.config_path} is nested too deeply; fix it") from None
        for key, value in config.items():
            if key == "profiles":
                continue
            key = key if key.isprintable() else repr(key)
            # A common slip: [home] where [profiles.home] was meant. Reported, not ignored.
            hint = f"; write it as [profiles.{key}]" if isinstance(value, dict) else ""
            raise ConfigError(
                f"{self.config_path}: unknown {'table' if hint else 'key'} "
                f"{'[' + key + ']' if hint else repr(key)}{hint} (profiles are [profiles.NAME])"
            )
        profiles = config.get("profiles", {})
        if not isinstance(profiles, dict) or not all(
            isinstance(table, dict) for table in profiles.values()
        ):
            raise ConfigError(f"{self.config_path}: [profiles] must hold [profiles.NAME] tables")
        return config

    def profile_table(self, name: str) -> dict[str, Any] | None:
        table = self.read_config().get("profiles", {}).get(name)
        return dict(table) if table is not None else None

    def save_profile(self, name: str, values: Mapping[str, Any]) -> None:
        """Set ``values`` in ``[profiles.NAME]``, keeping the rest of the file as written.

        A value of ``None`` removes the key (TOML has no null).
        """
        import tomlkit

        self.read_config()  # refuse to rewrite a file we cannot parse
        self.check_case(name)
        try:
            with open(self.config_path, encoding="utf-8") as file:
                document = tomlkit.parse(file.read())
        except FileNotFoundError:
            document = tomlkit.document()
        profiles = document.setdefault("profiles", tomlkit.table(is_super_table=True))
        table = profiles.setdefault(name, tomlkit.table())
        for key, value in values.items():
            if value is None:
                table.pop(key, None)  # None removes the key (a secret moved to the keyring)
            else:
                table[key] = value
        self._write(self.config_path, tomlkit.dumps(document).encode("utf-8"))

    def delete_profile(self, name: str) -> bool:
        """Remove ``[profiles.NAME]`` from the config file, keeping the rest; was there one?"""
        import tomlkit

        if name not in self.read_config().get("profiles", {}):
            return False
        with open(self.config_path, encoding="utf-8") as file:
            document = tomlkit.parse(file.read())
        del document["profiles"][name]
        self._write(self.config_path, tomlkit.dumps(document).encode("utf-8"))
        return True

    # --- tokens/NAME.json -----------------------------------------------

    def read_record(self, name: str, path: str | None = None) -> TokenRecord | None:
        """The stored token record, checked (:func:`.parse_record`), or ``None`` when there is none.

        A file we cannot read or parse is reported as :class:`LoginRequired`.
        """
        path = path or self.token_path(name)
        self._check_tree(os.path.dirname(path))
        try:
            data = self._read_private(path)
        except FileNotFoundError:
            self.check_case(name)  # only now: `token` with a stored token stays one read
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                # A symlink planted where our token file belongs: never follow it.
                raise LoginRequired(
                    f"{path} is a symbolic link, not a token file; delete it and run "
                    f"`loopback-login login {name}`"
                ) from None
            raise LoginRequired(
                f"cannot read {path} ({exc.strerror}); run `loopback-login login {name}` again"
            ) from None
        try:
            document = json.loads(data)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deeply
            document = None
        try:
            return parse_record(document)
        except ValueError as exc:
            problem = str(exc)
        raise LoginRequired(
            f"{path} is corrupt ({problem}); run `loopback-login login {name}` again"
        )

    def require_record(self, name: str, path: str | None = None) -> TokenRecord:
        """The stored token record of profile ``name``; :class:`LoginRequired` when none."""
        record = self.read_record(name, path)
        if record is None:
            again = f"`loopback-login login {name}`"
            if name == "demo" and self.profile_table(name) is None:
                # The demo's profile: `login demo` cannot work without the demo's provider.
                again = "`loopback-login demo` (or `loopback-login demo --serve`)"
            raise LoginRequired(f"no tokens for profile {name!r}; run {again}")
        return record

    def write_record(self, name: str, record: TokenRecord, path: str | None = None) -> str:
        path = path or self.token_path(name)
        if not os.path.exists(path):
            self.check_case(name)
        self._write(path, (json.dumps(record, indent=2) + "\n").encode("utf-8"))
        return path

    def delete_record(self, name: str) -> bool:
        """Delete the profile's tokens (client-credentials cache included); were there any?"""
        deleted = False
        for path in (self.token_path(name), self.client_credentials_path(name)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            deleted = True
        return deleted

    @contextlib.asynccontextmanager
    async def refresh_lock(self, name: str, *, timeout: float = 120.0) -> AsyncIterator[None]:
        """Hold the profile's refresh lock: one refresh at a time across processes and threads.

        An OS file lock (``flock`` / ``LockFileEx`` through filelock), polled
        so the event loop keeps running while another process refreshes.
        """
        import asyncio

        from filelock import FileLock, Timeout

        try:
            self._ensure_dir(self.root)
            self._ensure_dir(self.tokens_dir)
        except OSError as exc:
            raise ConfigError(f"cannot create {self.tokens_dir}: {exc.strerror or exc}") from None
        # The lock file stays: deleting it on release would let two processes
        # lock two different files of the same name (`logout --forget` removes it).
        lock = FileLock(
            self.lock_path(name),
            mode=0o600,
            thread_local=False,
            preserve_lock_file=True,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                lock.acquire(blocking=False)
                break
            except Timeout:
                if loop.time() >= deadline:
                    raise LoginTimeout(
                        f"another loopback-login has held the refresh lock of profile {name!r} "
                        f"for over {timeout:g} s ({lock.lock_file})"
                    ) from None
                await asyncio.sleep(0.01)
            except OSError as exc:  # a read-only directory, say
                raise ConfigError(f"cannot lock {lock.lock_file}: {exc.strerror or exc}") from None
        try:
            yield
        finally:
            lock.release()

    def check_case(self, name: str) -> None:
        """Refuse ``name`` when a profile differs from it only in case.

        Windows and macOS file systems ignore case: ``Home`` and ``home`` would
        share one token file there, so they are one name everywhere.
        """
        for existing in self.profile_names():
            if existing != name and existing.casefold() == name.casefold():
                raise ConfigError(
                    f"profile {name!r} differs from the existing profile {existing!r} only in "
                    f"case; use {existing!r} or another name"
                )

    def profile_names(self) -> list[str]:
        """Every name with a config table or a token file (client-credentials ones included)."""
        names = set(self.read_config().get("profiles", {}))
        for directory in (self.tokens_dir, os.path.dirname(self.client_credentials_path("x"))):
            self._check_tree(directory)
            try:
                entries = os.listdir(directory)
            except OSError:
                entries = []
            for entry in entries:
                stem, ext = os.path.splitext(entry)
                if ext == ".json" and PROFILE_NAME.fullmatch(stem):
                    names.add(stem)
        return sorted(names)

    # --- files ----------------------------------------------------------

    def _ensure_dir(self, path: str) -> None:
        """Create ``path`` 0700 (each missing parent too), or check an existing one."""
        _make_private_dirs(path)
        self._check_tree(path)

    def _check_tree(self, path: str) -> None:
        """The root and every directory under it down to ``path``: ours and private.

        Checked before anything in them is read: a directory another user could
        write to may hold a planted ``config.toml``, metadata or token file.
        """
        self._check_dir(self.root)
        relative = os.path.relpath(path, self.root)
        if relative == os.curdir or relative.startswith(os.pardir):
            return
        current = self.root
        for part in relative.split(os.sep):
            current = os.path.join(current, part)
            self._check_dir(current)

    def _check_dir(self, path: str) -> None:
        """An existing directory of secrets must be ours (refused) and private (tightened)."""
        if sys.platform == "win32":
            return  # per-user profile directories carry ACLs of their own
        try:
            link = os.lstat(path)
            info = os.stat(path)
        except FileNotFoundError:
            return
        if link.st_uid != os.getuid() or info.st_uid != os.getuid():
            raise ConfigError(f"{path} belongs to another user; refusing to keep secrets there")
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(path, 0o700)
            self._warn(
                f"{path} was open to other users (mode {stat.S_IMODE(info.st_mode):04o}); "
                "made it 0700"
            )

    def _read_private(self, path: str, *, follow: bool = False) -> bytes:
        """Read one of our files: never through a symlink (unless ``follow``), never
        another user's (it may have been planted), its mode tightened if it is loose."""
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0)
        if not follow:
            flags |= getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as file:
            if sys.platform != "win32":
                info = os.fstat(fd)
                if info.st_uid != os.getuid():
                    raise ConfigError(
                        f"{path} belongs to another user (uid {info.st_uid}); "
                        "refusing to read it: delete it"
                    )
                mode = stat.S_IMODE(info.st_mode)
                if mode & 0o077:
                    os.fchmod(fd, 0o600)
                    self._warn(
                        f"{path} was readable by other users (mode {mode:04o}); made it 0600"
                    )
            return file.read()

    def _write(self, path: str, data: bytes) -> None:
        """Replace ``path`` atomically with ``data``, mode 0600 from the first byte."""
        try:
            self._write_atomically(path, data)
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None

    def _write_atomically(self, path: str, data: bytes) -> None:
        import tempfile

        directory = os.path.dirname(path)
        self._ensure_dir(self.root)
        self._ensure_dir(directory)
        fd, temp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        if sys.platform != "win32":
            # Make the rename itself durable.
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
