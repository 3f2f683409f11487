# Django and the toolkit ship no type information.
# mypy: disable-error-code="import-untyped,misc"
"""A second real authorization server for the end-to-end tests: django-oauth-toolkit.

Jazzband's django-oauth-toolkit (on oauthlib), configured strictly: PKCE required
(S256 only), an issuer with a path (``http://127.0.0.1:PORT/o``), RFC 8414 metadata
at ``/.well-known/oauth-authorization-server/o`` beside the OpenID Connect document
at ``/o/.well-known/openid-configuration`` (which, unlike the RFC 8414 one, lists no
revocation endpoint), rotating refresh tokens with no grace period, RFC 7009
revocation, RFC 7662 introspection, RFC 9207 ``iss`` in authorization responses,
and the RFC 8628 device grant (which neither metadata document lists: clients are
told ``{issuer}/device-authorization/``) for two device clients of their own, as
the toolkit gives each client one grant: ``device-public`` and ``device-conf``.

Listens on 127.0.0.1 (a free port), prints ``READY <issuer>`` and serves until killed.
Django's own login page (a two-field template below) and DOT's consent page.

Environment: CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS (comma-separated), SVC_CLIENT_ID
(a client-credentials client with the same secret), USER_NAME and PASSWORD, DATA_DIR.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).parent
LOGIN_TEMPLATE = """<!doctype html><title>Sign in</title><h1>Sign in</h1>
<form method="post">{% csrf_token %}{{ form.as_p }}
<input type="hidden" name="next" value="{{ next }}"><button type="submit">Sign in</button></form>
"""


def main() -> None:
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    data = Path(os.environ["DATA_DIR"])
    (data / "templates" / "registration").mkdir(parents=True, exist_ok=True)
    (data / "templates" / "registration" / "login.html").write_text(LOGIN_TEMPLATE)

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    # Bind first, so the issuer can name the port.
    server = ThreadedWSGIServer(("127.0.0.1", 0), Quiet)
    issuer = f"http://127.0.0.1:{server.server_address[1]}/o"
    configure(issuer, data)

    import django
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    create_clients()
    server.set_app(WSGIHandler())
    print(f"READY {issuer}", flush=True)
    server.serve_forever()


def configure(issuer: str, data: Path) -> None:
    from django.conf import settings
    from jwcrypto import jwk

    key = jwk.JWK.generate(kty="RSA", size=2048).export_to_pem(private_key=True, password=None)
    settings.configure(
        DEBUG=False,
        SECRET_KEY="loopback-login-e2e-only",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(data / "db.sqlite3")}
        },
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "oauth2_provider",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [str(data / "templates")],
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                    ]
                },
            }
        ],
        LOGIN_URL="/accounts/login/",
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"],
        OAUTH2_PROVIDER={
            "PKCE_REQUIRED": True,
            "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,  # S256 only
            "ROTATE_REFRESH_TOKEN": True,
            "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
            "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
            "OIDC_ENABLED": True,
            "OIDC_RSA_PRIVATE_KEY": key.decode(),
            "OIDC_ISS_ENDPOINT": issuer,
            "SCOPES": {
                "openid": "OpenID Connect",
                "read": "Read your data",
                "offline_access": "Stay signed in",
            },
            "DEFAULT_SCOPES": ["read"],
            # RFC 8628 §3.2: verification_uri is required, and the toolkit has no default.
            "OAUTH_DEVICE_VERIFICATION_URI": f"{issuer}/device/",
            "OAUTH_DEVICE_VERIFICATION_URI_COMPLETE": f"{issuer}/device/?user_code={{user_code}}",
        },
    )


def create_clients() -> None:
    from django.contrib.auth.models import User
    from oauth2_provider.models import Application

    User.objects.create_user(os.environ["USER_NAME"], password=os.environ["PASSWORD"])
    secret = os.environ["CLIENT_SECRET"]
    Application.objects.create(
        name="loopback-login e2e",
        client_id=os.environ["CLIENT_ID"],
        client_secret=secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(os.environ["REDIRECT_URIS"].split(",")),
        algorithm=Application.RS256_ALGORITHM,
    )
    Application.objects.create(
        name="loopback-login e2e service",
        client_id=os.environ["SVC_CLIENT_ID"],
        client_secret=secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    for client_id, client_type in (
        ("device-public", Application.CLIENT_PUBLIC),
        ("device-conf", Application.CLIENT_CONFIDENTIAL),
    ):
        Application.objects.create(
            name=f"loopback-login e2e {client_id}",
            client_id=client_id,
            client_secret=secret if client_type == Application.CLIENT_CONFIDENTIAL else "",
            client_type=client_type,
            authorization_grant_type=Application.GRANT_DEVICE_CODE,
            algorithm=Application.RS256_ALGORITHM,
        )


def _urls() -> list[object]:
    from django.contrib.auth import views as auth_views
    from django.urls import include, path
    from oauth2_provider import urls as dot_urls

    return [
        path("o/", include(dot_urls)),
        # RFC 8414 §3.1: the well-known suffix goes between the host and the issuer's path.
        path("", include((dot_urls.metadata_urlpatterns, "oauth2_metadata"))),
        path("accounts/login/", auth_views.LoginView.as_view()),
    ]


def __getattr__(name: str) -> object:
    # Django reads ROOT_URLCONF's urlpatterns after setup; built lazily, as the
    # URL modules need configured settings to import.
    if name == "urlpatterns":
        return _urls()
    raise AttributeError(name)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
