"""``demo.json``: which ``loopback-login demo --serve`` is running, for the other commands.

The demo's provider and its throwaway client live only as long as the demo
process does. While ``--serve`` runs, ``refresh demo`` and ``logout demo`` in
another terminal need its URL and secret; once it has stopped, its port may be
anyone's, and nothing (no secret, no token) is sent there again.
Stdlib only: ``refresh`` and ``logout`` read it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .._store import Store

#: Said by every command on the demo profile that needs the demo provider once it has stopped.
DEMO_GONE = (
    "the demo provider runs only during `loopback-login demo`: run it again (or keep it "
    "running with `loopback-login demo --serve`), or clear the profile with "
    "`loopback-login logout demo --forget`"
)


def announce(store: Store, base_url: str, client_secret: str) -> None:
    """Say that this process serves the demo at ``base_url`` (0600, like a token)."""
    store.write_json(
        store.demo_path, {"pid": os.getpid(), "base_url": base_url, "client_secret": client_secret}
    )


def withdraw(store: Store) -> None:
    """Say that the demo no longer serves."""
    store.remove(store.demo_path)


def running_demo_secret(store: Store, token_url: str | None) -> str | None:
    """The throwaway secret of the running ``demo --serve`` whose provider has ``token_url``.

    ``None`` once that demo has stopped (or never served that URL).
    """
    info = store.read_json(store.demo_path)
    if info is None:
        return None
    pid, base, secret = info.get("pid"), info.get("base_url"), info.get("client_secret")
    if not (
        isinstance(pid, int)
        and isinstance(base, str)
        and isinstance(secret, str)
        and isinstance(token_url, str)
        and token_url.startswith(base.rstrip("/") + "/")
    ):
        return None
    if os.name == "posix":  # (on Windows os.kill would end the process)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # it died without saying so
        except PermissionError:
            return None  # the pid is another user's process now
    return secret
