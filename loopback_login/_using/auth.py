"""The token behind every API adapter: the stored token, refreshed through the one refresh.

:class:`ApiAuth` is what ``loopback-login api``, :func:`session`,
:func:`middleware`, :class:`HttpxAuth` and :class:`RequestsAuth` share: which
requests get the token and what they carry (:mod:`._target`), the stored token
(read again once a second at most), the refresh after a 401, through
:func:`.._tokens.refresh.refresh_stored`'s single flight across tasks, threads and processes,
and the step-up login after a 403 ``insufficient_scope`` (:meth:`ApiAuth.step_up`).
"""

from __future__ import annotations

import time

from .._store import Store, check_profile_name
from .._tokens.current import current
from .._tokens.record import is_fresh, made_by_demo
from .._tokens.token import Token
from .target import ApiTarget, names_api_key, should_retry, step_up_scope, target_from_record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .._tokens.record import TokenRecord

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
        self._held: tuple[TokenRecord, Token, float] | None = None
        self._header: tuple[Token, dict[str, str]] | None = None
        #: The scope the last step-up login asked for: never asked for twice in a row.
        self._stepped_up: str | None = None
        record = self._store.require_record(self.profile)
        #: The profile `loopback-login demo` made: its API lives only while the demo runs.
        self.made_by_demo = made_by_demo(self.profile, record["provider"])
        self.target: ApiTarget = target_from_record(
            self.profile, record, self._store.token_path(self.profile)
        )

    def __repr__(self) -> str:
        return f"ApiAuth(profile={self.profile!r}, api={self.target.base_url!r})"

    def _recent(self) -> Token | None:
        """The token this adapter last used, if it is still fresh and was read within
        :data:`RECHECK` seconds; else the stored one (``None`` when it is not fresh).

        Per request, even a ``stat`` of the token file would cost more than the rest of
        an adapter's work. A refresh by another process is seen within :data:`RECHECK`
        seconds, and a token revoked meanwhile meets the 401 path, which reads the file.
        """
        now = time.monotonic()
        held = self._held
        if held is not None and now - held[2] < RECHECK and is_fresh(held[0]):
            return held[1]
        found = current(self._store, self.profile)
        if found is None or not is_fresh(found[0]):
            self._held = None
            return None
        self._held = (*found, now)
        return found[1]

    async def token(self) -> Token:
        """A valid token: the stored one, refreshed first when it expires within its skew."""
        token = self._recent()
        if token is not None:
            return token
        # Imported here: a valid token needs no event loop (`loopback-login api` starts fast).
        from .._tokens.refresh import refresh_stored

        return await refresh_stored(self._store, self.profile, client_secret=self._client_secret)

    def token_sync(self) -> Token:
        token = self._recent()
        if token is not None:
            return token
        from .._sync import run_sync

        return run_sync(self.token())

    async def after_401(self, rejected: Token) -> Token:
        """The token to retry with, after the API refused ``rejected``.

        Refreshed unless another request (task, thread or process) already has:
        many requests refused at once make one refresh.
        """
        from .._tokens.refresh import refresh_stored

        return await refresh_stored(
            self._store,
            self.profile,
            client_secret=self._client_secret,
            rejected=rejected.access_token,
        )

    def after_401_sync(self, rejected: Token) -> Token:
        from .._sync import run_sync

        return run_sync(self.after_401(rejected))

    def headers(self, token: Token) -> dict[str, str]:
        """The headers to add for ``token`` (made once per token)."""
        made = self._header
        if made is None or made[0] is not token:
            made = self._header = (token, self.target.headers(token.token_type, token.access_token))
        return made[1]

    def step_up_scope(self, status: int, challenges: list[str], sent: Token) -> str | None:
        """After the API answered ``status`` to ``sent``: the scope to sign in for, if any."""
        return step_up_scope(status, challenges, sent.scope, self._stepped_up)

    async def step_up(self, scope: str) -> Token:
        """Sign in again for ``scope`` (the union of the granted and the required scopes).

        Only where a person can sign in (a browser can be opened, or ``$BROWSER``
        is set); elsewhere :class:`LoginRequired` (exit 3) names the scope.
        """
        from .._errors import LoginRequired
        from .._login.browser import no_browser_reason
        from .._text import shown

        self._stepped_up = scope
        why = no_browser_reason()
        if why is not None:
            raise LoginRequired(
                shown(
                    f"the API needs the scope {scope!r}, which the token of profile "
                    f"{self.profile!r} was not granted, and no one can sign in here ({why}); "
                    f"run `loopback-login login {self.profile} --scope '{scope}'`"
                )
            )
        from .._login.flow import login
        from .._profiles.resolve import resolve
        from .._ui import default_reporter

        reporter = default_reporter()
        reporter.say(f"The API needs the scope {shown(scope)!r}: signing in again for it")
        record = self._store.require_record(self.profile)
        table = self._store.profile_table(self.profile) or {}
        # The profile as the first login made it: what config.toml does not hold (flags of
        # that login), the token record does.
        flags: dict[str, object] = {"scope": scope}
        if not table.get("client_id") and record.get("client_id"):
            flags["client_id"] = record["client_id"]
        if not any(table.get(key) for key in ("provider", "issuer", "resource", "token_url")):
            for key in ("resource", "issuer"):
                if record.get(key):
                    flags[key] = record[key]
                    break
        if self._client_secret:
            flags["client_secret"] = self._client_secret
        profile = await resolve(self._store, self.profile, flags, register=True, say=reporter.say)
        token = await login(profile, store=self._store, reporter=reporter)
        self._held = None
        return token

    def step_up_sync(self, scope: str) -> Token:
        from .._sync import run_sync

        return run_sync(self.step_up(scope))

    def should_retry(
        self, status: int, *, authorized: bool, retried: bool, body: bytes = b""
    ) -> bool:
        """Refresh and resend? ``body``: the answer's, for a 401 (one naming the API key is not
        the token's fault)."""
        return should_retry(
            status,
            authorized=authorized,
            retried=retried,
            body=body,
            key_param=self.target.key_param,
        )

    def wrong_api_key(self, status: int, body: bytes) -> str | None:
        """The message for an API's answer that refuses the API key, else ``None``."""
        if status not in (401, 403) or not names_api_key(body, self.target.key_param):
            return None
        name, param = self.profile, self.target.key_param
        if param is None:
            return (
                f"the API refused the request for its API key ({status}); profile {name!r} "
                f"sends none: `loopback-login config {name} api_key_param NAME` (Honeywell: apikey)"
            )
        return (
            f"the API refused the API key of profile {name!r} ({status}; the client id, sent as "
            f"?{param}=): check the client id, and the parameter's name "
            f"(`loopback-login config {name} api_key_param NAME`); logging in again will not help"
        )
