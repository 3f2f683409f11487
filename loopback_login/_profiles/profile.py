"""Profiles: a name for provider + client + redirect URI + scopes.

A profile is resolved from its ``[profiles.NAME]`` table in ``config.toml`` and
from command-line flags, flags winning. Resolution is pure: it reads nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import SplitResult, urlsplit

from .._errors import ConfigError
from .._login.bind import is_loopback_host
from .._protocol import RESERVED_AUTHORIZE_PARAMS, ClientAuth
from .._store import check_profile_name
from .._tokens.record import DEFAULT_SKEW
from .providers import PRESET_NAMES, preset
from .secrets import BOUND_TO, KEPT_IN, missing_message
from .secrets import SECRET_ENV as SECRET_ENV  # its owner is _secrets

if TYPE_CHECKING:
    from typing import Any

    from .discovery import Metadata

#: Keys of a ``[profiles.NAME]`` table; the flags have the same names.
PROFILE_KEYS = frozenset(
    {
        "provider",
        "base_url",
        "authorize_url",
        "token_url",
        "issuer",
        "client_credentials_url",
        "revocation_url",
        "client_id",
        "client_secret",
        "redirect_uri",
        "scope",
        "client_auth",
        "pkce",
        "skew",
        "authorize_params",
        "client_check",
        "resource",
        "api_base_url",
        "client_metadata_url",
        "api_key_param",
        "device_authorization_url",
    }
)

#: Every environment variable holding a secret we read: kept from the programs we start.
SECRET_ENVS = frozenset({SECRET_ENV})

#: Keys a ``[profiles.NAME]`` table may hold that no flag sets: what a dynamic
#: client registration (RFC 7591) left there, see :mod:`._dynamic`.
STORED_KEYS = frozenset({"dynamic_registration", "registration_access_token", KEPT_IN, BOUND_TO})


class Profile(NamedTuple):
    """Everything needed to log in and to refresh, for one profile."""

    name: str
    provider: str
    client_id: str
    client_secret: str | None
    redirect_uri: str | None
    authorize_url: str | None
    token_url: str
    scope: str | None = None
    client_auth: ClientAuth = ClientAuth.BASIC
    pkce: bool = True
    skew: float = DEFAULT_SKEW
    authorize_params: Mapping[str, str] = MappingProxyType({})
    client_credentials_url: str | None = None
    revocation_url: str | None = None
    issuer: str | None = None
    #: RFC 9207: the provider always sends ``iss``, so a callback without it is refused.
    issuer_required: bool = False
    #: Check the client id and secret at the token endpoint while the browser opens.
    client_check: bool = True
    #: RFC 8707: the API the tokens are for, sent in the authorize, token and refresh requests.
    resource: str | None = None
    #: Where API requests go; the resource by default.
    api_base_url: str | None = None
    #: The secret is kept in the keyring, read when first needed (after the browser opened).
    secret_pending: bool = False
    #: Why ``$LOOPBACK_LOGIN_CLIENT_SECRET``, set, is not used for this profile (one warning).
    unused_environment: str | None = None
    #: The query parameter that carries the client id on every API call (Honeywell: ``apikey``).
    api_key_param: str | None = None
    #: The profile's settings as given (table and flags, no secret): what a login remembers.
    settings: Mapping[str, Any] = MappingProxyType({})
    #: RFC 8628 §3.1: where a device login starts (the metadata's, or given).
    device_authorization_url: str | None = None

    def __repr__(self) -> str:
        # Never the secret: reprs end up in logs and tracebacks.
        return (
            f"Profile(name={self.name!r}, provider={self.provider!r}, client_id={self.client_id!r})"
        )

    def record_settings(self) -> dict[str, Any]:
        """The non-secret settings kept in the token record."""
        return {
            "profile": self.name,
            "provider": self.provider,
            "token_url": self.token_url,
            "client_credentials_url": self.client_credentials_url,
            "revocation_url": self.revocation_url,
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_auth": self.client_auth.value,
            "skew": self.skew,
            "resource": self.resource,
            "api_base_url": self.api_base_url,
            "api_key_param": self.api_key_param,
        }


#: Keys naming a provider: a preset excludes an issuer and a resource (which go together).
PROVIDER_CHOICE = ("provider", "issuer", "resource")


def chosen_by_flags(
    table: Mapping[str, Any] | None, flags: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The table, less the provider keys that the flags' choice of provider excludes.

    A login remembers its profile; a later login of the same name that names
    another kind of provider (a preset instead of an issuer or a resource, or the
    other way round) means that one: flags win.
    """
    if table is None:
        return None
    if flags.get("provider"):
        dropped: tuple[str, ...] = ("issuer", "resource")
    elif flags.get("issuer") or flags.get("resource"):
        dropped = ("provider",)
    else:
        return dict(table)
    return {key: value for key, value in table.items() if key not in dropped}


def issuer_of(table: Mapping[str, Any] | None, flags: Mapping[str, Any]) -> str | None:
    """The issuer to discover, if the profile names one (flags win)."""
    issuer = flags.get("issuer") or (table or {}).get("issuer")
    if issuer is None:
        return None
    if not isinstance(issuer, str):
        raise ConfigError("issuer must be a string")
    _check_endpoint("issuer", issuer)
    if urlsplit(issuer).query:
        raise ConfigError(f"the issuer {issuer!r} must not have a query (RFC 8414 §2)")
    return issuer


def resource_of(table: Mapping[str, Any] | None, flags: Mapping[str, Any]) -> str | None:
    """The protected resource (RFC 9728) the profile logs in to, if it names one (flags win)."""
    resource = flags.get("resource") or (table or {}).get("resource")
    if resource is None:
        return None
    if not isinstance(resource, str):
        raise ConfigError("resource must be a string")
    if flags.get("provider") or (table or {}).get("provider"):
        # Checked before any request: usage errors come first (exit 2).
        raise ConfigError("give either --provider or --resource, not both")
    return check_resource(resource)


def check_resource(resource: str) -> str:
    """RFC 8707 §2: an absolute https URL (http only on this machine), without a fragment."""
    _check_endpoint("resource", resource)
    return resource


def resolve_profile(
    name: str,
    table: Mapping[str, Any] | None,
    flags: Mapping[str, Any],
    *,
    env_secret: str | None = None,
    where: str = "config.toml",
    metadata: Metadata | None = None,
    secret_pending: bool = False,
) -> Profile:
    """Merge the config table and the flags (flags win) into a checked :class:`Profile`.

    ``flags`` holds only the flags the user gave. ``env_secret`` is
    ``$LOOPBACK_LOGIN_CLIENT_SECRET``, used when neither gives a secret.
    ``metadata`` is the discovered metadata of the profile's issuer, if it has one.
    ``secret_pending``: the secret is kept in the keyring and read later (no secret
    here is then not a missing one).
    """
    check_profile_name(name)
    table = chosen_by_flags(table, flags) or {}
    unknown = sorted(set(table) - PROFILE_KEYS - STORED_KEYS)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in [profiles.{name}] of {where}")
    unknown = sorted(set(flags) - PROFILE_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown profile setting {unknown[0]!r}; known: {', '.join(sorted(PROFILE_KEYS))}"
        )
    merged = {**table, **{k: v for k, v in flags.items() if v is not None}}
    for source in (table, flags):
        params = source.get("authorize_params")
        if params is not None and not (
            isinstance(params, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())
        ):
            raise ConfigError(f"authorize_params of profile {name!r} must map strings to strings")
    # Extra authorize parameters merge key by key, the flags' winning.
    merged["authorize_params"] = {
        **(table.get("authorize_params") or {}),
        **(flags.get("authorize_params") or {}),
    }
    reserved = sorted(set(merged["authorize_params"]) & RESERVED_AUTHORIZE_PARAMS)
    if reserved:
        raise ConfigError(
            f"the authorize parameter {reserved[0]!r} is set by loopback-login itself"
            + (" (use --scope)" if reserved[0] == "scope" else "")
        )
    if merged.get("redirect_uri") is not None:
        _check_redirect_uri(str(merged["redirect_uri"]))
    for key in PROFILE_KEYS - {"pkce", "skew", "authorize_params", "client_check"}:
        value = merged.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{key} of profile {name!r} must be a string")

    base_url = merged.get("base_url")
    provider_name = merged.get("provider")
    preset_auth: str | None = None  # a preset's own client authentication, if it has one
    if provider_name and merged.get("issuer"):
        raise ConfigError("give either --provider or --issuer, not both")
    if merged.get("issuer") and metadata is None:
        raise ConfigError(f"profile {name!r} names an issuer whose metadata was not read")
    resource = merged.get("resource")
    if resource is not None:
        if provider_name:
            raise ConfigError("give either --provider or --resource, not both")
        check_resource(resource)
        if metadata is None:
            raise ConfigError(f"profile {name!r} names a resource whose metadata was not read")
    if provider_name:
        provider = preset(provider_name, base_url)
        authorize_url = merged.get("authorize_url") or provider.authorize_url
        token_url = merged.get("token_url") or provider.token_url
        client_credentials_url = (
            merged.get("client_credentials_url") or provider.client_credentials_url or token_url
        )
        revocation_url = merged.get("revocation_url") or provider.revocation_url
        default_pkce = provider.pkce
        preset_auth = provider.client_auth
        default_api = provider.api_base_url
        default_key_param = provider.api_key_param
        device_url = merged.get("device_authorization_url")
    elif metadata is not None:
        # Discovered: the metadata fills in what the flags and the table leave open.
        authorize_url = merged.get("authorize_url") or metadata.authorization_endpoint
        token_url = merged.get("token_url") or metadata.token_endpoint
        client_credentials_url = merged.get("client_credentials_url") or token_url
        revocation_url = merged.get("revocation_url") or metadata.revocation_endpoint
        # PKCE S256 whatever the metadata lists: a provider listing only "plain"
        # (or nothing) must not turn it off (RFC 9700 §2.1.1); only the profile can.
        provider_name, default_pkce = "oidc", True
        default_api = default_key_param = None
        device_url = (
            merged.get("device_authorization_url") or metadata.device_authorization_endpoint
        )
    else:
        if base_url:
            raise ConfigError("--base-url needs --provider (a preset whose endpoints it moves)")
        authorize_url = merged.get("authorize_url")
        token_url = merged.get("token_url")
        if not token_url:
            raise ConfigError(
                f"profile {name!r} has no provider: give --provider NAME, or "
                "--authorize-url and --token-url"
            )
        # RFC 6749 §4.4: client credentials go to the token endpoint.
        client_credentials_url = merged.get("client_credentials_url") or token_url
        revocation_url = merged.get("revocation_url")
        provider_name, default_pkce = "custom", True
        default_api = default_key_param = None
        device_url = merged.get("device_authorization_url")
    # A profile with a resource (RFC 8707) calls that resource unless told otherwise.
    api_base_url = _api_base_url(merged, default_api or merged.get("resource"))
    for label, url in (
        ("authorize URL", authorize_url),
        ("token URL", token_url),
        ("client credentials URL", client_credentials_url),
        ("revocation URL", revocation_url),
        ("device authorization URL", device_url),
    ):
        if url is not None:
            _check_endpoint(label, url)

    client_id = merged.get("client_id")
    if not client_id:
        raise ConfigError(
            f"profile {name!r} has no client id: pass --client-id "
            f"(or set client_id in [profiles.{name}] of {where})"
        )
    client_secret = merged.get("client_secret") or env_secret or None
    secret_pending = secret_pending and client_secret is None
    has_secret = client_secret is not None or secret_pending

    client_auth_name = merged.get("client_auth") or _default_client_auth(
        has_secret, metadata, preset_auth
    )
    try:
        client_auth = ClientAuth(client_auth_name)
    except ValueError:
        raise ConfigError(
            f"client_auth must be {', '.join(ClientAuth)}, not {client_auth_name!r}"
        ) from None
    if client_auth is ClientAuth.BASIC_RAW and ":" in client_id:
        # RFC 7617 §2: the server splits the pair at the first colon.
        raise ConfigError(
            f"client authentication 'basic-raw' cannot send the client id {client_id!r}: it "
            "contains ':' (use --client-auth basic, which form-encodes it)"
        )
    if client_auth is ClientAuth.NONE and not (merged.get("pkce", default_pkce)):
        raise ConfigError("a public client (client_auth none) needs PKCE; drop --no-pkce")

    pkce = merged.get("pkce", default_pkce)
    if not isinstance(pkce, bool):
        raise ConfigError(f"pkce of profile {name!r} must be true or false")
    skew = merged.get("skew", DEFAULT_SKEW)
    if isinstance(skew, bool) or not isinstance(skew, (int, float)) or not 0 <= skew <= 86400:
        raise ConfigError(f"skew of profile {name!r} must be a number of seconds (0 to 86400)")

    client_check = merged.get("client_check", True)
    if not isinstance(client_check, bool):
        raise ConfigError(f"client_check of profile {name!r} must be true or false")
    # Given as "" (no key on API calls) or a name; the preset's by default.
    api_key_param = merged.get("api_key_param", default_key_param)
    if api_key_param:
        _check_api_key_param(api_key_param)
    # Last, so that every other mistake is reported first: a missing secret
    # may be asked for, and asking is pointless for a profile that cannot work.
    if needs_secret(provider_name, client_auth) and not has_secret:
        raise MissingSecret(name)

    return Profile(
        name=name,
        provider=provider_name,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=merged.get("redirect_uri"),
        authorize_url=authorize_url,
        token_url=token_url,
        scope=merged.get("scope") or None,
        client_auth=client_auth,
        pkce=pkce,
        skew=float(skew),
        authorize_params=merged["authorize_params"],
        client_credentials_url=client_credentials_url,
        revocation_url=revocation_url,
        issuer=metadata.issuer if metadata is not None else None,
        issuer_required=metadata is not None and metadata.iss_parameter_supported,
        client_check=client_check,
        api_base_url=api_base_url,
        resource=resource,
        secret_pending=secret_pending,
        api_key_param=api_key_param,
        settings=MappingProxyType(
            {
                key: value
                for key, value in merged.items()
                if key in PROFILE_KEYS and key != "client_secret" and value not in (None, {})
            }
        ),
        device_authorization_url=device_url,
    )


class MissingSecret(ConfigError):
    """The profile needs a client secret and none was given, stored or in the environment."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(missing_message(name))


def needs_secret(provider: str, client_auth: ClientAuth) -> bool:
    """Whether the client must authenticate with a secret.

    The Honeywell preset always does (Apigee refuses a public client); a
    provider given by URL does when its client authentication is not ``none``.
    """
    return provider == "honeywell" or client_auth is not ClientAuth.NONE


def env_secret_refusal(
    table: Mapping[str, Any] | None,
    flags: Mapping[str, Any],
    metadata: Metadata | None,
    *,
    client_credentials: bool = False,
) -> str | None:
    """Why ``$LOOPBACK_LOGIN_CLIENT_SECRET`` must not be sent for this profile; ``None`` if it may.

    One exported secret (the person's Honeywell secret, say) goes only to a
    provider the person chose that needs a secret: a preset that needs one, a
    ``client_auth`` other than ``none`` given or saved, a client-credentials
    request, or an issuer the person named whose metadata offers no public
    client (``none`` absent from ``token_endpoint_auth_methods_supported``).
    Never to an authorization server an API's metadata chose (``resource``),
    and never to choose the client authentication of a profile that has none.
    """
    table = table or {}

    def setting(key: str) -> Any:
        value = flags.get(key)
        return table.get(key) if value is None else value

    if setting("resource"):
        return (
            "its authorization server was chosen by the API's metadata (--resource); "
            "pass --client-secret if it needs one"
        )
    if client_credentials:
        return None
    provider = setting("provider")
    if isinstance(provider, str) and provider in PRESET_NAMES:
        return None  # every preset is an Apigee provider, which refuses public clients
    auth = setting("client_auth")
    if isinstance(auth, str) and auth != ClientAuth.NONE.value:
        return None
    public = metadata is None or ClientAuth.NONE.value in metadata.token_endpoint_auth_methods
    if setting("issuer") and not public:
        return None
    return (
        "it is sent only to a provider that needs a secret (a preset that needs one, "
        "--client-auth, client credentials, an --issuer without public clients); "
        "pass --client-auth basic to send it"
    )


def _api_base_url(merged: Mapping[str, Any], default: str | None) -> str | None:
    """Where the API is: ``api_base_url`` as given, else the default (the preset's API or the
    resource); the one place that decides.

    The token is sent to this URL's origin only, so it is checked like an endpoint.
    """
    url = merged.get("api_base_url") or default
    if url is None:
        return None
    _check_endpoint("API base URL", url)
    if urlsplit(url).query:
        raise ConfigError(f"the API base URL {url!r} must not have a query")
    return str(url)


def _default_client_auth(
    has_secret: bool, metadata: Metadata | None, preset_auth: str | None
) -> str:
    if not has_secret:
        return "none"
    if preset_auth is not None:
        return preset_auth
    supported = metadata.token_endpoint_auth_methods if metadata else ("client_secret_basic",)
    # RFC 8414 §2: client_secret_basic unless the provider says otherwise.
    if "client_secret_basic" not in supported and "client_secret_post" in supported:
        return "post"
    if "client_secret_basic" not in supported and "none" in supported:
        return "none"  # a server for public clients only: the secret is not sent
    return "basic"


def _split(label: str, url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a port that is not a number in range
    except ValueError:
        raise ConfigError(f"the {label} {url!r} is not a valid URL") from None
    return parts


def _check_redirect_uri(uri: str) -> None:
    parts = _split("redirect URI", uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"the redirect URI {uri!r} is not an http(s) URL")


def _check_endpoint(label: str, url: str) -> None:
    parts = _split(label, url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"the {label} {url!r} is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        # They would travel in every error message that names the host.
        raise ConfigError(f"the {label} must not carry a user name or password")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        # RFC 6749 §3.1 and §3.2: both endpoints require TLS; plain http is
        # only for a provider on this machine (the demo provider).
        raise ConfigError(f"the {label} {url!r} must use https")
    if parts.fragment:
        raise ConfigError(f"the {label} {url!r} must not have a #fragment (RFC 6749 §3.1)")


#: The settings ``loopback-login config NAME KEY VALUE`` changes without a new login: the
#: ones a login does not depend on (or only the next one does), and their kinds.
CONFIG_KEYS: Mapping[str, type] = MappingProxyType(
    {
        "api_base_url": str,
        "api_key_param": str,
        "scope": str,
        "skew": float,
        "client_check": bool,
        "revocation_url": str,
    }
)


def parse_setting(key: str, text: str) -> Any:
    """The value of ``config NAME KEY VALUE``, checked as a login would check it.

    ``""`` removes the setting (back to the default), except for ``api_key_param``,
    where it means "no API key on API calls".
    """
    kind = CONFIG_KEYS.get(key)
    if kind is None:
        hint = (
            f" ({key} is a login setting: give it to `loopback-login login NAME`)"
            if key in PROFILE_KEYS
            else ""
        )
        raise ConfigError(f"unknown setting {key!r}; `config` sets: {', '.join(CONFIG_KEYS)}{hint}")
    if text == "" and key != "api_key_param":
        return None
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ConfigError(f"{key} must be true or false, not {text!r}")
        return text.lower() == "true"
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 <= value <= 86400:
            raise ConfigError(f"{key} must be a number of seconds (0 to 86400), not {text!r}")
        return value
    if key == "api_base_url":
        return _api_base_url({"api_base_url": text}, None)
    if key == "revocation_url":
        _check_endpoint("revocation URL", text)
    if key == "api_key_param" and text:
        _check_api_key_param(text)
    return text


def _check_api_key_param(name: str) -> None:
    if not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise ConfigError(f"api_key_param must be a query parameter name, not {name!r}")
