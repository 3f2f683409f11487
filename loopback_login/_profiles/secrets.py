"""Where a profile's client secret is kept: the OS keyring, else ``config.toml``.

A secret a login used is kept for that profile's later logins and refreshes:
in the OS keyring (the ``keyring`` package: Secret Service, macOS Keychain,
Windows Credential Locker) under service ``loopback-login`` and the user
``NAME@CONFIG_DIR`` when a secure backend is available, otherwise as
``client_secret`` in the profile's ``[profiles.NAME]`` table of ``config.toml``
(0600). Never in both.

A kept secret is bound to where it was given: the config directory and the
profile (the keyring's user name; the file is the directory's own), the token
endpoint's origin and the client id (``kept_secret_for`` in the table, not
secret). It is used only where all still match: a profile ``home`` in another
config directory, or one whose token endpoint was moved, never sends it.

Precedence (:func:`choose`): the secret given (flag or argument), then the
kept one, then ``$LOOPBACK_LOGIN_CLIENT_SECRET`` where the caller allows it
(see :func:`.profile.env_secret_refusal`). Asking the person (:func:`ask`) is
the caller's last resort.

``keyring`` is imported here only, and only when a secret is looked up: the
``token`` command with a valid token never comes here. Other modules (dynamic
client registration, say) keep their secrets through these functions too.
"""

from __future__ import annotations

import functools
import os
import sys

from .._errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from .._store import Store

SERVICE = "loopback-login"
SECRET_ENV = "LOOPBACK_LOGIN_CLIENT_SECRET"

#: Where a secret came from, as ``status`` shows it.
KEYRING, CONFIG_FILE, ENVIRONMENT, NONE = "keyring", "config file", "environment", "none"

#: The ``[profiles.NAME]`` key that says the secret is in the keyring (``"keyring"``): where,
#: never what. Without it nothing is looked up there, so that a profile whose secret comes
#: from elsewhere never loads the keyring stack (a tenth of a second, and D-Bus), and a
#: login whose secret is there reads it only after the browser has opened.
KEPT_IN = "kept_secret"

#: The ``[profiles.NAME]`` key binding the kept secret to the token endpoint's origin and the
#: client id it was given for (``{token_origin = ..., client_id = ...}``): not secret.
BOUND_TO = "kept_secret_for"


def binding(token_url: str, client_id: str) -> dict[str, str]:
    """What a kept secret is bound to: the token endpoint's origin (RFC 6454) and the client id."""
    from .._protocol import origin

    return {"token_origin": origin(token_url), "client_id": client_id}


@functools.cache
def _keyring() -> Any | None:
    """The keyring backend when it is a secure one, else ``None`` (the file is used then)."""
    if not _keyring_possible():
        return None
    try:
        import keyring
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception as exc:
        # A broken keyring setup ($PYTHON_KEYRING_BACKEND naming nothing, a bad
        # keyringrc.cfg) must not stop a login: the file keeps the secret instead.
        _warn(f"the OS keyring is not usable ({type(exc).__name__}); using {SERVICE}'s config file")
        return None
    return backend if _secure(backend) else None


def _keyring_possible() -> bool:
    """Can a secure keyring answer here at all?

    On Linux the secure backends (Secret Service, KWallet) talk over the D-Bus
    session bus, which they find only through ``$DBUS_SESSION_BUS_ADDRESS``:
    without it, and without a backend named by ``$PYTHON_KEYRING_BACKEND`` or
    keyring's own config file, none can, and keyring's backend discovery (a
    tenth of a second and 10 MiB: importlib.metadata, every plugin) is skipped.
    An SSH session or a container keeps its secret in the config file at once.
    """
    if sys.platform != "linux" or "DBUS_SESSION_BUS_ADDRESS" in os.environ:
        return True
    if "PYTHON_KEYRING_BACKEND" in os.environ:
        return True
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.exists(os.path.join(config, "python_keyring", "keyringrc.cfg"))


def _secure(backend: Any) -> bool:
    # keyring's own scale: priority < 1 is the fail / null / plaintext kind;
    # keyrings.alt's file backends keep secrets on disk, no better than our 0600 file.
    members = getattr(backend, "backends", None)
    if members is not None:  # the chainer: secure if one of its backends is
        return any(_secure(member) for member in members)
    if type(backend).__module__.startswith("keyrings.alt"):
        return False
    try:
        return float(backend.priority) >= 1
    except Exception:
        return False


def _table_secret(table: Mapping[str, Any]) -> str | None:
    secret = table.get("client_secret")
    return secret if isinstance(secret, str) and secret else None


def in_keyring(table: Mapping[str, Any] | None) -> bool:
    """Does the profile's table say its secret is kept in the keyring (and not in the table)?"""
    table = table or {}
    return table.get(KEPT_IN) == KEYRING and _table_secret(table) is None


def kept_where(table: Mapping[str, Any] | None, bound: Mapping[str, str]) -> str:
    """Where a secret kept for this profile and usable for ``bound`` is, from the table alone.

    ``keyring``, ``config file`` or ``none``: the keyring is not opened to say so.
    A secret in the table with no binding was written there by hand, next to
    the endpoints it is for: it is used as it is.
    """
    table = table or {}
    held = table.get(BOUND_TO)
    if _table_secret(table) is not None:
        return CONFIG_FILE if held is None or held == dict(bound) else NONE
    if in_keyring(table) and held == dict(bound):
        return KEYRING
    return NONE


def keyring_user(store: Store, name: str) -> str:
    """The keyring's user name of the profile's secret: the profile in its config directory."""
    return f"{name}@{os.path.abspath(store.root)}"


def get(store: Store, name: str, bound: Mapping[str, str]) -> tuple[str | None, str]:
    """The profile's kept secret usable for ``bound``, and where it is kept (or ``none``).

    A secret written into ``config.toml`` by hand wins; the keyring is asked
    only when the table says the secret is there, for this token endpoint and client.
    """
    table = store.profile_table(name) or {}
    where = kept_where(table, bound)
    if where == CONFIG_FILE:
        return _table_secret(table), CONFIG_FILE
    if where == KEYRING:
        secret = _from_keyring(keyring_user(store, name))
        if secret:
            return secret, KEYRING
    return None, NONE


def _from_keyring(user: str) -> str | None:
    backend = _keyring()
    if backend is None:
        return None
    try:
        secret: str | None = backend.get_password(SERVICE, user)
    except Exception as exc:  # keyring's errors, and the D-Bus ones it lets through
        _warn(f"could not read the OS keyring ({type(exc).__name__})")
        return None
    return secret


def choose(
    store: Store, name: str, given: str | None, bound: Mapping[str, str], *, env: bool
) -> tuple[str | None, str]:
    """The secret to use and its source: given, kept (for ``bound``), the environment, none.

    ``env``: may ``$LOOPBACK_LOGIN_CLIENT_SECRET`` be used for this profile at all.
    """
    if given:
        return given, "given"
    secret, source = get(store, name, bound)
    if secret is not None:
        return secret, source
    value = os.environ.get(SECRET_ENV) if env else None
    return (value, ENVIRONMENT) if value else (None, NONE)


def source(store: Store, name: str, *, env: bool) -> str:
    """Where the profile's secret would come from (for ``status``); never the secret.

    Read from the table alone: the keyring is not opened to say that it holds it.
    ``env``: may the environment's secret be used for this profile.
    """
    table = store.profile_table(name)
    if _table_secret(table or {}) is not None:
        return CONFIG_FILE
    if in_keyring(table):
        return KEYRING
    return ENVIRONMENT if env and os.environ.get(SECRET_ENV) else NONE


def keep(store: Store, name: str, secret: str, bound: Mapping[str, str]) -> str | None:
    """Keep ``secret`` for the profile and ``bound``; one line saying where, or ``None``
    when it already was."""
    stored, _where = get(store, name, bound)
    if stored == secret:
        return None
    backend = _keyring()
    if backend is not None:
        user = keyring_user(store, name)
        try:
            backend.set_password(SERVICE, user, secret)
        except Exception as exc:  # keyring's errors, and the D-Bus ones it lets through
            _warn(f"could not write to the OS keyring ({type(exc).__name__}); using the file")
        else:
            store.save_profile(
                name, {"client_secret": None, KEPT_IN: KEYRING, BOUND_TO: dict(bound)}
            )
            return (
                f"Kept the client secret of profile {name!r} in the OS keyring "
                f"({type(backend).__name__}; service {SERVICE!r}, user {user!r})."
            )
    store.save_profile(name, {"client_secret": secret, KEPT_IN: None, BOUND_TO: dict(bound)})
    return (
        f"Kept the client secret of profile {name!r} in {store.config_path} "
        "(mode 0600; no secure OS keyring is available here)."
    )


def delete(store: Store, name: str) -> bool:
    """Remove the profile's stored secret, from the keyring and the file; was there one?"""
    removed = False
    table = store.profile_table(name) or {}
    if _table_secret(table) is not None or KEPT_IN in table or BOUND_TO in table:
        store.save_profile(name, {"client_secret": None, KEPT_IN: None, BOUND_TO: None})
        removed = _table_secret(table) is not None
    backend = _keyring()
    if backend is not None:
        from keyring.errors import PasswordDeleteError

        user = keyring_user(store, name)
        try:
            backend.delete_password(SERVICE, user)
            removed = True
        except PasswordDeleteError:
            pass  # there was none
        except Exception as exc:
            raise ConfigError(
                f"could not remove the secret of profile {name!r} from the OS keyring "
                f"({type(exc).__name__}); remove it with `keyring del {SERVICE} '{user}'`"
            ) from None
    return removed


def where(store: Store, name: str) -> str:
    """Where a secret kept now would go, in words."""
    backend = _keyring()
    if backend is not None:
        return f"the OS keyring ({type(backend).__name__})"
    return store.config_path


def interactive() -> bool:
    """Can the person be asked (a terminal on stdin, or a notebook)?"""
    from .._ui import in_notebook

    if in_notebook():
        return True
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def ask(name: str) -> str:
    """Ask for the profile's secret without echo (a password box in a notebook)."""
    import getpass

    from .._ui import in_notebook

    prompt = f"Client secret for profile {name!r} (not shown; kept after this login): "
    try:
        # ipykernel replaces getpass.getpass with a password box; it takes no stream.
        secret = getpass.getpass(prompt) if in_notebook() else getpass.getpass(prompt, sys.stderr)
    except EOFError:
        secret = ""
    secret = secret.strip()
    if not secret:
        raise ConfigError(missing_message(name))
    return secret


def missing_message(name: str) -> str:
    return (
        f"profile {name!r} needs its client secret: pass --client-secret or set ${SECRET_ENV} "
        "once (it is kept for the profile after one login)"
    )


def warn_unused_environment(name: str, refusal: str) -> None:
    """One line: ``$LOOPBACK_LOGIN_CLIENT_SECRET`` is set but not sent for this profile."""
    _warn(f"${SECRET_ENV} is set but not used for profile {name!r}: {refusal}")


def _warn(message: str) -> None:
    print(f"loopback-login: warning: {message}", file=sys.stderr, flush=True)
