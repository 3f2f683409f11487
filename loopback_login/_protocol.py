"""OAuth 2.0 without I/O: values in, values out.

State and PKCE, the authorize URL, callback parsing, token request forms and
client authentication, token response and error normalization (the Apigee
quirks of the Honeywell Home API included). Randomness and the clock are
parameters, so everything here is tested without sockets or an event loop.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import math
import re
import secrets
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from ._errors import (
    AuthorizationDenied,
    AuthorizationError,
    ConfigError,
    InvalidCallback,
    InvalidIdToken,
    IssuerMismatch,
    StateMismatch,
    TokenEndpointError,
)
from ._text import clean as _clean
from ._tokens.record import MAX_LIFETIME, is_token_value

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, TypeGuard

    from ._tokens.token import Token

    TokenBytes = Callable[[int], bytes]


class ClientAuth(enum.StrEnum):
    """How the client authenticates at the token endpoint (RFC 6749 §2.3)."""

    BASIC = "basic"  # client_secret_basic, id and secret form-encoded (RFC 6749 §2.3.1)
    #: Basic with id and secret as they are: the seed's recipe for Honeywell's Apigee,
    #: which reads the header literally (a form-encoded ``+`` or ``%2F`` would not match).
    BASIC_RAW = "basic-raw"
    POST = "post"  # client_secret_post
    NONE = "none"  # public client, PKCE carries the proof


def origin(url: str) -> str:
    """RFC 6454 §4: ``scheme://host:port``, the host lower-cased, the default port spelled out.

    What a credential is bound to: the registration access token to the registration
    endpoint's, a kept client secret to the token endpoint's.
    """
    parts = urlsplit(url)
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, 0)
    except ValueError:
        port = 0
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# --- state and PKCE ---------------------------------------------------------


def new_state(token_bytes: TokenBytes = secrets.token_bytes) -> str:
    """A fresh, unguessable ``state`` (RFC 6749 §10.12; 256 bits, well over 128)."""
    return _b64url(token_bytes(32))


def new_code_verifier(token_bytes: TokenBytes = secrets.token_bytes) -> str:
    """A PKCE code verifier: 32 random octets, base64url, 43 characters (RFC 7636 §4.1)."""
    return _b64url(token_bytes(32))


def s256_challenge(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(code_verifier)))`` (RFC 7636 §4.2)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


# --- the authorize request --------------------------------------------------

# Parameters the flow owns; a profile's extra parameters may not replace them.
RESERVED_AUTHORIZE_PARAMS = frozenset(
    {
        "nonce",
        "response_type",
        "scope",  # --scope sets it
        "client_id",
        "redirect_uri",
        "state",
        "code_challenge",
        "code_challenge_method",
        "resource",  # --resource sets it (RFC 8707)
    }
)


class AuthorizeRequest(NamedTuple):
    """One login attempt: the URL to open and the secrets needed to finish it."""

    url: str
    redirect_uri: str
    state: str
    code_verifier: str | None
    #: OIDC Core §3.1.2.1: sent when ``openid`` is in scope, checked in the id_token.
    nonce: str | None = None

    def __repr__(self) -> str:
        # The verifier is a secret until the code is exchanged.
        return f"AuthorizeRequest(url={self.url!r}, redirect_uri={self.redirect_uri!r})"


def authorize_request(
    authorize_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str | None = None,
    pkce: bool = True,
    extra_params: Mapping[str, str] | None = None,
    resource: str | None = None,
    token_bytes: TokenBytes = secrets.token_bytes,
) -> AuthorizeRequest:
    """Build the authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3).

    Fresh ``state`` and code verifier each call. The endpoint's own query
    parameters are kept (RFC 6749 §3.1).
    """
    state = new_state(token_bytes)
    params: list[tuple[str, str]] = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
    ]
    if scope:
        params.append(("scope", scope))
    if resource:
        # RFC 8707 §2.1: the API the token is for; the server may bind the grant to it.
        params.append(("resource", resource))
    params.append(("state", state))
    verifier = None
    if pkce:
        verifier = new_code_verifier(token_bytes)
        params += [("code_challenge", s256_challenge(verifier)), ("code_challenge_method", "S256")]
    nonce = None
    if scope and "openid" in scope.split():
        nonce = new_state(token_bytes)
        params.append(("nonce", nonce))
    for key, value in (extra_params or {}).items():
        if key in RESERVED_AUTHORIZE_PARAMS:
            raise ConfigError(f"the authorize parameter {key!r} is set by loopback-login itself")
        params.append((key, value))
    scheme, netloc, path, query, _fragment = urlsplit(authorize_url)
    own_query = urlencode(params, quote_via=quote)
    query = f"{query}&{own_query}" if query else own_query
    return AuthorizeRequest(
        url=urlunsplit((scheme, netloc, path, query, "")),
        redirect_uri=redirect_uri,
        state=state,
        code_verifier=verifier,
        nonce=nonce,
    )


# --- the callback -----------------------------------------------------------

_MAX_CALLBACK_FIELDS = 64


def parse_callback(
    query: str,
    *,
    expected_state: str,
    expected_issuer: str | None = None,
    issuer_required: bool = False,
) -> str:
    """Check the redirect's query string and return the authorization code.

    Raises :class:`InvalidCallback` (:class:`StateMismatch` for the state) for
    anything that is not this login's answer: such a request is ignored by the
    receiver. Raises :class:`AuthorizationError` for ``error=`` and
    :class:`IssuerMismatch` for a bad ``iss``: those end the login.
    """
    try:
        pairs = parse_qsl(
            query,
            keep_blank_values=True,
            errors="strict",
            max_num_fields=_MAX_CALLBACK_FIELDS,
        )
    except (ValueError, UnicodeDecodeError):
        raise InvalidCallback("the callback's query string is malformed") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params and key in ("state", "code", "error", "error_description", "iss"):
            # RFC 6749 §3.1: parameters MUST NOT be included more than once.
            raise InvalidCallback(f"the callback repeats the {key!r} parameter")
        params.setdefault(key, value)

    state = params.get("state")
    if state is None or not hmac.compare_digest(
        state.encode("utf-8", "surrogatepass"), expected_state.encode("utf-8", "surrogatepass")
    ):
        raise StateMismatch(
            "the callback's state is missing or is not this login's "
            "(a stale tab or a forged request)"
        )

    # RFC 9207 §2.4: with a known issuer, a present iss must match exactly;
    # a missing one is refused when the provider says it always sends it.
    if expected_issuer is not None:
        iss = params.get("iss")
        if iss is None and issuer_required:
            error = params.get("error")
            if error is None:
                raise IssuerMismatch("the callback has no iss, but the provider always sends one")
            # Still refused (RFC 9207 §2.4), but the person learns what the provider
            # said: a denied consent, an unknown scope, a missing PKCE challenge.
            description = params.get("error_description")
            detail = f": {_clean(description)}" if description else ""
            raise IssuerMismatch(
                f"the provider answered {_clean(error, 64)}{detail}; but the callback has no "
                "iss although the provider always sends one, so it is refused (RFC 9207 §2.4)"
            )
        if iss is not None and iss != expected_issuer:
            raise IssuerMismatch(
                f"the callback came from issuer {_clean(iss)!r}, not {expected_issuer!r}"
            )

    error = params.get("error")
    if error is not None:
        description = params.get("error_description")
        cls = AuthorizationDenied if error == "access_denied" else AuthorizationError
        raise cls(_clean(error, 64), _clean(description) if description else None)

    code = params.get("code")
    if not code:
        raise InvalidCallback("the callback has neither code nor error")
    return code


def parse_pasted(
    text: str,
    *,
    expected_state: str,
    pkce: bool,
    expected_issuer: str | None = None,
    issuer_required: bool = False,
) -> str:
    """The code from what the person pasted: the address the browser landed on, or the code.

    An address is checked exactly like a callback (:func:`parse_callback`). A
    bare code carries no state; it is taken only with PKCE, whose verifier
    binds the code to this login (RFC 7636 §1, RFC 9700 §4.5.3).
    """
    text = text.strip()
    if not text:
        raise InvalidCallback("nothing was pasted")
    if "=" in text or "?" in text:
        query = text.split("?", 1)[1] if "?" in text else text
        return parse_callback(
            query.split("#", 1)[0],
            expected_state=expected_state,
            expected_issuer=expected_issuer,
            issuer_required=issuer_required,
        )
    if not pkce:
        raise InvalidCallback(
            "paste the whole address, not just the code: without PKCE its state must be checked"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise InvalidCallback("that does not look like an address or a code")
    return text


# --- token requests ---------------------------------------------------------


class TokenRequest(NamedTuple):
    """A POST to a token (or revocation) endpoint: URL, headers and form, ready to send."""

    url: str
    headers: Mapping[str, str]
    form: Sequence[tuple[str, str]]
    #: The grant type, or "revocation": safe to show, unlike the form.
    purpose: str

    @property
    def body(self) -> bytes:
        return urlencode(list(self.form)).encode("ascii")

    def __repr__(self) -> str:
        return f"TokenRequest(purpose={self.purpose!r}, url={self.url!r})"


def basic_credentials(client_id: str, client_secret: str) -> str:
    """The ``Authorization: Basic`` value for client_secret_basic.

    RFC 6749 §2.3.1: id and secret are form-encoded before they are joined and
    Base64-encoded, so a ``:`` or ``%`` in either survives the trip.
    """
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def other_basic(client_auth: ClientAuth, client_id: str, client_secret: str | None) -> str | None:
    """The other Basic encoding, when it would send different bytes for this client.

    Providers differ: RFC 6749 §2.3.1 form-encodes id and secret, Apigee (and
    others) read them literally. For a secret with ``+ / : %`` or a space the two
    differ, and a refusal may mean the wrong one was chosen, not a wrong secret.
    """
    if client_secret is None or client_auth not in (ClientAuth.BASIC, ClientAuth.BASIC_RAW):
        return None
    if (quote_plus(client_id), quote_plus(client_secret)) == (client_id, client_secret):
        return None
    if client_auth is ClientAuth.BASIC:
        return None if ":" in client_id else ClientAuth.BASIC_RAW.value
    return ClientAuth.BASIC.value


def raw_basic_credentials(client_id: str, client_secret: str) -> str:
    """The ``Authorization: Basic`` value as Honeywell's documentation builds it.

    Base64 of ``id:secret`` as they are (RFC 7617 §2): the secret may hold any
    character, but the id must not hold ``:``, or the server would split it there.
    """
    if ":" in client_id:
        raise ConfigError(
            "client authentication 'basic-raw' cannot send a client id containing ':' "
            "(use --client-auth basic or post)"
        )
    pair = f"{client_id}:{client_secret}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def token_request(
    url: str,
    grant: Sequence[tuple[str, str]],
    *,
    client_id: str,
    client_secret: str | None,
    client_auth: ClientAuth,
) -> TokenRequest:
    """A token endpoint request for ``grant`` with the client authenticated (RFC 6749 §3.2)."""
    purpose = dict(grant)["grant_type"]
    return _authenticated(url, grant, purpose, client_id, client_secret, client_auth)


def revocation_request(
    url: str,
    token: str,
    token_type_hint: str,
    *,
    client_id: str,
    client_secret: str | None,
    client_auth: ClientAuth,
) -> TokenRequest:
    """RFC 7009 §2.1: revoke ``token``, the client authenticated as at the token endpoint."""
    form = [("token", token), ("token_type_hint", token_type_hint)]
    return _authenticated(url, form, "revocation", client_id, client_secret, client_auth)


def _authenticated(
    url: str,
    params: Sequence[tuple[str, str]],
    purpose: str,
    client_id: str,
    client_secret: str | None,
    client_auth: ClientAuth,
) -> TokenRequest:
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    form = list(params)
    if client_auth in (ClientAuth.BASIC, ClientAuth.BASIC_RAW):
        if client_secret is None:
            raise ConfigError(f"client authentication {client_auth.value!r} needs a client secret")
        encode = basic_credentials if client_auth is ClientAuth.BASIC else raw_basic_credentials
        headers["Authorization"] = encode(client_id, client_secret)
        if client_auth is ClientAuth.BASIC and purpose != "revocation":
            # RFC 6749 §3.2.1: a client MAY name itself with client_id at the token
            # endpoint; some servers (the MCP SDK's) look the client up by it first.
            form.append(("client_id", client_id))
    elif client_auth is ClientAuth.POST:
        if client_secret is None:
            raise ConfigError("client authentication 'post' needs a client secret")
        form += [("client_id", client_id), ("client_secret", client_secret)]
    else:
        # RFC 6749 §4.1.3: a client that does not authenticate names itself.
        form.append(("client_id", client_id))
    return TokenRequest(url=url, headers=headers, form=form, purpose=purpose)


def authorization_code_grant(
    code: str, redirect_uri: str, code_verifier: str | None, resource: str | None = None
) -> list[tuple[str, str]]:
    """RFC 6749 §4.1.3 (+ RFC 7636 §4.5). ``redirect_uri`` is the authorize request's, verbatim."""
    grant = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri)]
    if code_verifier is not None:
        grant.append(("code_verifier", code_verifier))
    if resource:
        # RFC 8707 §2.2: the access token is for this API (its audience).
        grant.append(("resource", resource))
    return grant


def refresh_grant(
    refresh_token: str, scope: str | None = None, resource: str | None = None
) -> list[tuple[str, str]]:
    """RFC 6749 §6."""
    grant = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)]
    if scope:
        grant.append(("scope", scope))
    if resource:
        # RFC 8707 §2.2: the refreshed access token stays bound to the same API.
        grant.append(("resource", resource))
    return grant


def client_credentials_grant(scope: str | None = None) -> list[tuple[str, str]]:
    """RFC 6749 §4.4.2."""
    grant = [("grant_type", "client_credentials")]
    if scope:
        grant.append(("scope", scope))
    return grant


# --- token responses --------------------------------------------------------

# RFC 6750 names the type "Bearer" and RFC 6749 §5.1 makes it case-insensitive;
# Apigee (Honeywell) answers "BearerToken". We send "Bearer" for all of them.
_BEARER_TYPES = frozenset({"bearer", "bearertoken"})


def parse_token_response(
    status: int,
    reason: str,
    content_type: str,
    body: bytes,
    *,
    now: float,
    requested_scope: str | None = None,
    previous_refresh_token: str | None = None,
) -> Token:
    """Normalize a token endpoint response (RFC 6749 §5.1) or raise its error (§5.2).

    Numbers may arrive as strings (``"expires_in": "3599"``); ``expires_at`` is
    ``now + expires_in`` by the local clock, since the provider's ``issued_at``
    (Apigee, milliseconds) is by a clock we do not share; it stays in ``raw``.
    """
    from ._tokens.token import Token

    if not 200 <= status < 300:
        raise parse_error_response(status, reason, content_type, body)
    data = _json_object(body)
    if data is None:
        raise TokenEndpointError(
            f"the token endpoint answered {status} without a JSON token response",
            status=status,
        )
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TokenEndpointError("the token response has no access_token", status=status)
    if not is_token_value(access_token):
        # It would split the Authorization header (`token --header`) or a shell word.
        raise TokenEndpointError(
            "the token endpoint sent an access_token with spaces or control characters, "
            "which no Bearer token has (RFC 6750 §2.1); refused",
            status=status,
        )
    token_type = data.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() not in _BEARER_TYPES:
        raise TokenEndpointError(
            f"the token type {_clean(str(token_type), 32)!r} is not supported (only Bearer)",
            status=status,
        )
    lifetime = _number(data.get("expires_in"))
    refresh_token = data.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        # RFC 6749 §6: no new refresh token means the old one stays valid.
        refresh_token = previous_refresh_token
    scope = data.get("scope")
    if not isinstance(scope, str):
        # RFC 6749 §5.1: an omitted scope is the scope requested.
        scope = requested_scope
    return Token(
        access_token=access_token,
        token_type="Bearer",
        # A negative, non-finite or absurd lifetime is no lifetime: unknown.
        expires_at=(
            now + lifetime if lifetime is not None and 0 <= lifetime <= MAX_LIFETIME else None
        ),
        refresh_token=refresh_token,
        scope=scope,
        obtained_at=now,
        raw=data,
    )


def missing_scopes(requested: str | None, granted: str | None) -> list[str]:
    """The requested scopes the provider did not grant (RFC 6749 §3.3), in request order."""
    if not requested or granted is None:
        return []
    have = set(granted.split())
    return [scope for scope in requested.split() if scope not in have]


def check_id_token(
    id_token: object,
    *,
    issuer: str | None,
    client_id: str,
    nonce: str | None,
    now: float,
    leeway: float = 120.0,
) -> dict[str, Any]:
    """Check an id_token's claims (OIDC Core §3.1.3.7) and return them.

    The signature is not checked: the token came straight from the token
    endpoint over TLS, which §3.1.3.7 item 6 allows in its place. Checked:
    ``iss`` (when the issuer is known), ``aud`` and ``azp``, ``exp``, and the
    ``nonce`` this login sent (a replayed id_token carries another).
    """
    from ._tokens.record import jwt_claims

    claims = jwt_claims(id_token)
    if claims is None:
        raise InvalidIdToken("the id_token is not a readable JWT")
    if issuer is not None and claims.get("iss") != issuer:
        raise InvalidIdToken(f"the id_token was issued by {_clean(str(claims.get('iss')), 100)!r}")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        raise InvalidIdToken("the id_token is not meant for this client (aud)")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise InvalidIdToken("the id_token names another authorized party (azp)")
    expiry = claims.get("exp")
    if not isinstance(expiry, (int, float)) or isinstance(expiry, bool) or expiry + leeway < now:
        raise InvalidIdToken("the id_token has expired")
    sent_back = claims.get("nonce")
    if nonce is not None and not (
        isinstance(sent_back, str)
        and hmac.compare_digest(sent_back.encode("utf-8", "replace"), nonce.encode("utf-8"))
    ):
        raise InvalidIdToken("the id_token's nonce is not this login's (a replayed token?)")
    return claims


def parse_error_response(
    status: int,
    reason: str,
    content_type: str,
    body: bytes,
    *,
    endpoint: str = "token endpoint",
) -> TokenEndpointError:
    """Turn an error answer of the token endpoint into a one-line error.

    Understands RFC 6749 §5.2 ``{"error", "error_description"}``, Apigee's
    ``{"ErrorCode", "Error"}`` and ``{"fault": {"faultstring", "detail": {"errorcode"}}}``.
    Anything else (an HTML gateway page, say) is reduced to its status line.
    """
    error = description = None
    data = _json_object(body)
    if data is not None:
        fault = data.get("fault")
        detail = fault.get("detail") if isinstance(fault, dict) else None
        candidates = (
            (data.get("error"), data.get("error_description")),
            (data.get("ErrorCode"), data.get("Error")),
            (
                detail.get("errorcode") if isinstance(detail, dict) else None,
                fault.get("faultstring") if isinstance(fault, dict) else None,
            ),
        )
        for code, text in candidates:
            if isinstance(code, str) and code:
                error = _clean(code, 64)
                description = _clean(text) if isinstance(text, str) and text else None
                break
    status_line = f"{status} {_clean(reason, 64)}".strip()
    if error is None:
        message = f"the {endpoint} answered {status_line}"
    else:
        detail_text = f": {description}" if description else ""
        message = f"the {endpoint} answered {status_line} ({error}{detail_text})"
    return TokenEndpointError(message, status=status, error=error, description=description)


_REFRESH_TOKEN_DEAD = re.compile(
    r"refresh.?token.*\b(invalid|expired|revoked)|"
    r"\b(invalid|expired|revoked)\b.*refresh.?token",
    re.IGNORECASE,
)


def means_login_required(error: TokenEndpointError) -> bool:
    """Does this refresh failure mean the user must log in again?

    ``invalid_grant`` (RFC 6749 §5.2), Apigee's ``ErrorCode`` of the same name,
    or an Apigee ``Error`` text saying the refresh token is invalid or expired.
    """
    if error.error is not None and error.error.lower() == "invalid_grant":
        return True
    text = f"{error.error or ''} {error.description or ''}"
    return bool(_REFRESH_TOKEN_DEAD.search(text))


# --- the device authorization grant (RFC 8628) -----------------------------------

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default."
DEFAULT_INTERVAL = 5.0
#: RFC 8628 §3.5: each ``slow_down`` adds 5 seconds to the interval, for every later poll.
SLOW_DOWN_STEP = 5.0
#: Longer than any user code a person is asked to type (RFC 8628 §6.1 suggests 8 characters).
_MAX_USER_CODE = 64


class DeviceAuthorization(NamedTuple):
    """The device authorization response (RFC 8628 §3.2): what to show, and how to poll."""

    device_code: str
    user_code: str
    verification_uri: str
    #: The URI with the code in it (§3.3.1), when the server gives one.
    verification_uri_complete: str | None
    #: Seconds the codes live (``expires_in``); ``None`` when the server did not say.
    expires_in: float | None
    #: Seconds between polls (``interval``, default 5).
    interval: float

    def __repr__(self) -> str:
        # The device code is the bearer of the pending grant: never in a repr.
        return f"DeviceAuthorization(verification_uri={self.verification_uri!r})"


class PollAnswer(enum.Enum):
    """What an error answer to a device-code poll means (RFC 8628 §3.5)."""

    PENDING = "authorization_pending"  # ask again after the interval
    SLOW_DOWN = "slow_down"  # ask again, 5 seconds slower from now on
    DENIED = "access_denied"  # the person refused: stop
    EXPIRED = "expired_token"  # the device code expired: stop


def device_authorization_request(
    url: str,
    *,
    client_id: str,
    client_secret: str | None,
    client_auth: ClientAuth,
    scope: str | None = None,
    resource: str | None = None,
) -> TokenRequest:
    """RFC 8628 §3.1, the client authenticated as at the token endpoint (public clients too)."""
    form = []
    if scope:
        form.append(("scope", scope))
    if resource:
        # RFC 8707 §2: the tokens are for this API, as in a browser login.
        form.append(("resource", resource))
    return _with_client_id(
        _authenticated(url, form, "device authorization", client_id, client_secret, client_auth),
        client_id,
    )


def device_token_request(
    url: str,
    device_code: str,
    *,
    client_id: str,
    client_secret: str | None,
    client_auth: ClientAuth,
    resource: str | None = None,
) -> TokenRequest:
    """One poll of the token endpoint: the device code grant (RFC 8628 §3.4)."""
    grant = [("grant_type", DEVICE_CODE_GRANT), ("device_code", device_code)]
    if resource:
        grant.append(("resource", resource))  # RFC 8707 §2.2
    request = token_request(
        url, grant, client_id=client_id, client_secret=client_secret, client_auth=client_auth
    )
    return _with_client_id(request, client_id)


def _with_client_id(request: TokenRequest, client_id: str) -> TokenRequest:
    """``client_id`` in the form even beside Basic authentication.

    RFC 8628 §3.1 and §3.4 require it only of clients that do not authenticate;
    django-oauth-toolkit wants it from every client, and a matching one is
    accepted by the servers that do not need it (oidc-provider).
    """
    if any(key == "client_id" for key, _ in request.form):
        return request
    return request._replace(form=[*request.form, ("client_id", client_id)])


def parse_device_authorization(
    status: int, reason: str, content_type: str, body: bytes
) -> DeviceAuthorization:
    """Read the device authorization response (RFC 8628 §3.2), or raise its error (§3.2 → RFC
    6749 §5.2)."""
    if not 200 <= status < 300:
        raise parse_error_response(
            status, reason, content_type, body, endpoint="device authorization endpoint"
        )
    data = _json_object(body)
    if data is None:
        raise TokenEndpointError(
            f"the device authorization endpoint answered {status} without a JSON object",
            status=status,
        )
    device_code = data.get("device_code")
    user_code = data.get("user_code")
    # Google's device endpoint says verification_url, from before RFC 8628.
    uri = data.get("verification_uri") or data.get("verification_url")
    if not (isinstance(device_code, str) and device_code):
        raise TokenEndpointError("the device authorization response has no device_code")
    if not (
        isinstance(user_code, str)
        and 0 < len(user_code) <= _MAX_USER_CODE
        and user_code.isprintable()
    ):
        raise TokenEndpointError("the device authorization response has no usable user_code")
    if not _web_url(uri):
        raise TokenEndpointError(
            "the device authorization response has no http(s) verification_uri"
        )
    complete = data.get("verification_uri_complete")
    lifetime = _number(data.get("expires_in"))
    interval = _number(data.get("interval"))
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=uri,
        verification_uri_complete=complete if _web_url(complete) else None,
        expires_in=lifetime if lifetime is not None and 0 < lifetime <= MAX_LIFETIME else None,
        # A nonsense interval is no interval; a poll faster than once a second helps nobody.
        interval=max(1.0, interval)
        if interval is not None and interval <= 3600
        else DEFAULT_INTERVAL,
    )


def poll_answer(error: TokenEndpointError) -> PollAnswer | None:
    """The meaning of a poll's error answer; ``None``: any other error, which ends the login."""
    try:
        return PollAnswer(error.error)
    except ValueError:
        return None


def _web_url(value: object) -> TypeGuard[str]:
    """An http(s) URL fit to show and to open (not ``javascript:``, not a line break)."""
    if not isinstance(value, str) or len(value) > 2048 or not value.isprintable():
        return False
    parts = urlsplit(value)
    return parts.scheme in ("https", "http") and bool(parts.netloc) and " " not in value


# --- helpers ----------------------------------------------------------------


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _number(value: object) -> float | None:
    """A JSON number, or a number sent as a string as Apigee does; ``None`` otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
