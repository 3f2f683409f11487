"""The token behind every API adapter: the stored token, refreshed through the one refresh.

:class:`ApiAuth` is what ``loopback-login api``, :func:`session`,
:func:`middleware`, :class:`HttpxAuth` and :class:`RequestsAuth` share: which
requests get the token and what they carry (:mod:`._target`), the stored token
(from memory while its file is unchanged), and the refresh after a 401, through
:func:`._flows.refresh_stored`'s single flight across tasks, threads and processes.
"""

from __future__ import annotations

import time

from ._api import _remembered_token
from ._flows import refresh_stored
from ._record import record_skew
from ._store import Store, check_profile_name
from ._sync import run_sync
from ._target import ApiTarget, should_retry, target_from_record
from ._token import Token

#: Seconds a valid token is used before its file is looked at again.
RECHECK = 1.0


class ApiAuth:
    """A profile's API and its token, for one adapter."""

    def __init__(
        self, profile: str, *, client_secret: str | None = None, config_dir: str | None = None
    ) -> None:
        self.profile = check_profile_name(profile)
        self._store = Store(config_dir)
        self._client_secret = client_secret
        self._held: tuple[Token, float, float] | None = None
        self._header: tuple[Token, dict[str, str]] | None = None
        record = self._store.require_record(self.profile)
        self._skew = record_skew(record)
        self.target: ApiTarget = target_from_record(
            self.profile, record, self._store.token_path(self.profile)
        )

    def __repr__(self) -> str:
        return f"ApiAuth(profile={self.profile!r}, api={self.target.base_url!r})"

    def _recent(self) -> Token | None:
        """The token this adapter last used, if it is still valid and was checked within
        :data:`RECHECK` seconds; else the stored one from memory (a ``stat`` of its file).

        Per request, the ``stat`` would cost more than the rest of the adapter's work.
        A refresh by another process is seen within :data:`RECHECK` seconds, and a
        token revoked meanwhile meets the 401 path, which reads the file again.
        """
        now = time.monotonic()
        held = self._held
        if held is not None and now - held[1] < RECHECK and not held[0].is_expired(held[2]):
            return held[0]
        token = _remembered_token(self._store, self.profile)
        self._held = (token, now, self._skew) if token is not None else None
        return token

    async def token(self) -> Token:
        """A valid token: from memory, else refreshed when it expires within its skew."""
        return self._recent() or await refresh_stored(
            self._store, self.profile, client_secret=self._client_secret
        )

    def token_sync(self) -> Token:
        token = self._recent()
        return token if token is not None else run_sync(self.token())

    async def after_401(self, rejected: Token) -> Token:
        """The token to retry with, after the API refused ``rejected``.

        Refreshed unless another request (task, thread or process) already has:
        many requests refused at once make one refresh.
        """
        return await refresh_stored(
            self._store,
            self.profile,
            client_secret=self._client_secret,
            rejected=rejected.access_token,
        )

    def after_401_sync(self, rejected: Token) -> Token:
        return run_sync(self.after_401(rejected))

    def headers(self, token: Token) -> dict[str, str]:
        """The headers to add for ``token`` (made once per token)."""
        made = self._header
        if made is None or made[0] is not token:
            made = self._header = (token, self.target.headers(token.token_type, token.access_token))
        return made[1]

    @staticmethod
    def should_retry(status: int, *, authorized: bool, retried: bool) -> bool:
        return should_retry(status, authorized=authorized, retried=retried)
