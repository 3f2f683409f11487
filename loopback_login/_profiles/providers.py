"""Provider presets: the endpoints and habits of the providers we know."""

from __future__ import annotations

from typing import NamedTuple

from .._errors import ConfigError

HONEYWELL_BASE_URL = "https://api.honeywellhome.com"


class Provider(NamedTuple):
    """Where a provider's endpoints are and how it wants to be spoken to."""

    name: str
    description: str
    authorize_url: str
    token_url: str
    client_credentials_url: str | None = None
    revocation_url: str | None = None
    pkce: bool = True
    #: The client authentication the provider expects (``None``: RFC 6749's ``basic``).
    client_auth: str | None = None
    #: Where ``loopback-login api`` and the Python sessions send requests.
    api_base_url: str | None = None
    #: The query parameter that carries the client id on every API call, if the API wants one.
    api_key_param: str | None = None


def _apigee_oauth(
    name: str, description: str, base_url: str, *, revocation_path: str | None = None
) -> Provider:
    """The Honeywell Home / Resideo layout on Apigee.

    Client credentials live at ``/oauth2/accesstoken``, not ``/token``. PKCE is
    not documented there; authorization servers ignore parameters they do not
    know (RFC 6749 §3.1), so it is sent anyway and ``--no-pkce`` turns it off.
    """
    base = base_url.rstrip("/")
    return Provider(
        name=name,
        description=description,
        authorize_url=f"{base}/oauth2/authorize",
        token_url=f"{base}/oauth2/token",
        client_credentials_url=f"{base}/oauth2/accesstoken",
        revocation_url=f"{base}{revocation_path}" if revocation_path else None,
        # The documentation's recipe: Base64 of `apikey:secret` as they are, which
        # Apigee reads literally (RFC 6749 §2.3.1's form-encoding would not match).
        client_auth="basic-raw",
        # The API is served from the same host as the OAuth endpoints.
        api_base_url=base,
        # Honeywell's API (Apigee) wants `?apikey=<client id>` beside the Bearer token;
        # the demo provider checks it the same way.
        api_key_param="apikey",
    )


def preset_api_key_param(provider: str | None) -> str | None:
    """The preset's API key parameter, for a record written before profiles had one."""
    if provider not in PRESET_NAMES:
        return None
    return preset(provider, "http://127.0.0.1").api_key_param


def preset(name: str, base_url: str | None = None) -> Provider:
    """The preset called ``name``, its endpoints under ``base_url`` when given."""
    if name == "honeywell":
        return _apigee_oauth(
            "honeywell", "Honeywell Home / Resideo API", base_url or HONEYWELL_BASE_URL
        )
    if name == "demo":
        if not base_url:
            raise ConfigError(
                "the demo provider needs --base-url (or run `loopback-login demo`, "
                "which starts it for you)"
            )
        # Like Honeywell, plus an RFC 7009 revocation endpoint.
        return _apigee_oauth(
            "demo",
            "loopback-login's local demo provider",
            base_url,
            revocation_path="/oauth2/revoke",
        )
    raise ConfigError(
        f"unknown provider {name!r}; known: {', '.join(PRESET_NAMES)} "
        "(or give --authorize-url and --token-url)"
    )


PRESET_NAMES = ("honeywell", "demo")
