"""A hostile or broken provider: bad bytes in tokens, lifetimes, metadata and redirects."""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from resource_apps import FOLLOWING_BROWSER
from support import read_record, run_cli, token_path, write_private

CONTROL = "\x1b]0;pwned\x07\x1b[2J\x9b31m"

Reply = tuple[int, dict[str, str], bytes]


class Hostile:
    """A provider on 127.0.0.1 whose every answer the test chooses."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[str], Reply]] = {}
        self.hits: list[str] = []
        hostile = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                path, _, query = self.path.partition("?")
                hostile.hits.append(path)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                route = hostile.routes.get(path)
                status, headers, body = route(query) if route else (404, {}, b"")
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def tokens(self, answer: dict[str, Any] | str) -> None:
        body = answer if isinstance(answer, str) else json.dumps(answer)
        self.routes["/token"] = lambda _q: (
            200,
            {"Content-Type": "application/json"},
            body.encode(),
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    # The authorize endpoint sends the browser straight back with a code.
    server.routes["/authorize"] = lambda query: (
        302,
        {
            "Location": parse_qs(query)["redirect_uri"][0]
            + "?"
            + urlencode({"code": "c0de", "state": parse_qs(query)["state"][0]})
        },
        b"",
    )
    try:
        yield server
    finally:
        server.close()


def browser_env() -> dict[str, str]:
    """A browser that follows redirects (from the page it is handed), nothing more."""
    return dict(FOLLOWING_BROWSER)


def login(hostile: Hostile, *extra: str, profile: str = "evil") -> Any:
    return run_cli(
        "login",
        profile,
        "--authorize-url",
        f"{hostile.origin}/authorize",
        "--token-url",
        f"{hostile.origin}/token",
        "--client-id",
        "app",
        "--redirect-uri",
        "http://127.0.0.1:0/cb",
        "--timeout",
        "20",
        *extra,
        env=browser_env(),
    )


@pytest.mark.parametrize(
    "access_token",
    ["abc\r\nX-Evil: 1", "abc def", "abc\x1b[2J", "abc\x00", "tok\u00e9n", "abc\t"],
)
def test_token_with_whitespace_or_control_characters_is_refused(
    hostile: Hostile, access_token: str
) -> None:
    hostile.tokens({"access_token": access_token, "token_type": "Bearer", "expires_in": 3600})
    result = login(hostile)
    assert result.returncode == 4, result.stderr
    last = result.stderr.splitlines()[-1]
    assert "access_token with spaces or control characters" in last
    assert "X-Evil" not in result.stderr and "\x1b" not in result.stderr
    assert not token_path("evil").exists()
    # A record left by an older version is not printed either.
    write_private(
        token_path("old"),
        json.dumps({"access_token": access_token, "token_type": "Bearer", "expires_at": None}),
    )
    printed = run_cli("token", "old", "--header")
    assert printed.returncode == 3 and printed.stdout == ""


@pytest.mark.parametrize(
    "expires_in", [1e300, "1e20", 10**18, -3600, "-1", "NaN", "Infinity", "1e999"]
)
def test_absurd_lifetimes_are_unknown_and_status_still_works(
    hostile: Hostile, expires_in: object
) -> None:
    raw = json.dumps({"access_token": "ok", "token_type": "Bearer", "refresh_token": "r"})
    hostile.tokens(raw[:-1] + f', "expires_in": {json.dumps(expires_in)}}}')
    result = login(hostile)
    assert result.returncode == 0, result.stderr
    assert read_record("evil")["expires_at"] is None
    status = run_cli("status")
    assert status.returncode == 0, status.stderr
    assert "no expiry given" in status.stdout


@pytest.mark.parametrize(
    "expires_at", ["1e300", "-1e300", "NaN", "Infinity", "1e20", '"soon"', "[]", "true"]
)
def test_status_never_fails_on_a_stored_record(expires_at: str, isolated_env: Path) -> None:
    for name, text in {
        "weird": f'{{"access_token": "a", "expires_at": {expires_at}, "scope": "s"}}',
        "broken": "{not json",
        "list": "[]",
        "fields": '{"access_token": "a", "obtained_at": "x", "raw": [], "scope": 5}',
        "crlf": '{"access_token": "a\\r\\nb"}',
        "fine": '{"access_token": "a", "expires_at": null}',
    }.items():
        write_private(token_path(name), text)
    status = run_cli("status")
    assert status.returncode == 0, status.stderr
    assert status.stderr == ""
    rows = {line.split()[0]: line for line in status.stdout.splitlines()[1:]}
    assert set(rows) == {"weird", "broken", "list", "fields", "crlf", "fine"}
    assert "no expiry given" in rows["fine"]


def _id_token(claims: dict[str, Any]) -> str:
    import base64

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def test_provider_text_reaches_the_terminal_escaped(hostile: Hostile) -> None:
    hostile.tokens(
        {
            "access_token": "ok",
            "token_type": "Bearer",
            "scope": f"read {CONTROL}",
            "id_token": _id_token({"sub": f"user{CONTROL}", "aud": "app", "exp": 4e9}),
        }
    )
    result = login(hostile)
    assert result.returncode == 0, result.stderr
    status = run_cli("status")
    assert status.returncode == 0
    for output in (result.stdout, result.stderr, status.stdout, status.stderr):
        assert not any(ch in output for ch in "\x1b\x07\x9b"), repr(output)
    assert "\\x1b]0;pwned\\x07" in status.stdout
    assert "user\\x1b" in status.stdout


def test_discovered_authorize_endpoint_is_shown_escaped(hostile: Hostile) -> None:
    issuer = hostile.origin
    hostile.routes["/.well-known/openid-configuration"] = lambda _q: (
        200,
        {"Content-Type": "application/json"},
        json.dumps(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize{CONTROL}",
                "token_endpoint": f"{issuer}/token",
            }
        ).encode(),
    )
    result = run_cli(
        "login",
        "evil",
        "--issuer",
        issuer,
        "--client-id",
        "app",
        "--redirect-uri",
        "http://127.0.0.1:0/cb",
        "--no-browser",
        "--timeout",
        "1",
    )
    assert result.returncode == 5, result.stderr
    assert not any(ch in result.stderr for ch in "\x1b\x07\x9b"), repr(result.stderr)
    assert "Open this URL" in result.stderr


def test_host_in_a_network_error_is_shown_escaped(isolated_env: Path) -> None:
    write_private(
        isolated_env / "config.toml",
        # A bidi override and a C1 control (NEL) in the host: URL parsers let them through.
        '[profiles.evil]\nclient_id = "app"\n'
        'token_url = "https://evil\\u202e\\u0085x.invalid/token"\n',
    )
    result = run_cli("client-credentials", "evil")
    assert result.returncode == 4, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not any(ch in result.stderr for ch in "\u202e\x85"), repr(result.stderr)
    assert "evil\\u202e\\x85x.invalid" in result.stderr


# --- discovery redirects ---------------------------------------------------------------


@pytest.mark.parametrize("where", ["another origin", "same origin"])
def test_discovery_follows_no_redirect_to_another_origin(hostile: Hostile, where: str) -> None:
    other = Hostile()
    try:
        target = other if where == "another origin" else hostile
        issuer = hostile.origin
        document = json.dumps(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{target.origin}/authorize",
                "token_endpoint": f"{target.origin}/token",
            }
        ).encode()
        target.routes["/moved"] = lambda _q: (200, {"Content-Type": "application/json"}, document)
        hostile.routes["/.well-known/openid-configuration"] = lambda _q: (
            302,
            {"Location": f"{target.origin}/moved"},
            b"",
        )
        target.tokens({"access_token": "ok", "token_type": "Bearer"})
        result = run_cli("client-credentials", "evil", "--issuer", issuer, "--client-id", "app")
        if where == "another origin":
            assert result.returncode == 4, result.stderr
            assert "redirect" in result.stderr.splitlines()[-1]
            assert other.hits == []
            assert (
                not (Path(os.environ["LOOPBACK_LOGIN_CONFIG_DIR"]) / "metadata").exists()
                or [
                    p
                    for p in (Path(os.environ["LOOPBACK_LOGIN_CONFIG_DIR"]) / "metadata").iterdir()
                ]
                == []
            )
        else:
            assert result.returncode == 0, result.stderr
    finally:
        other.close()


def test_discovery_never_downgrades_https() -> None:
    from loopback_login._profiles.discovery import redirect_allowed

    assert redirect_allowed("https://idp.example/.well-known/x", "https://idp.example/other")
    assert redirect_allowed("https://idp.example/a", "/b")
    assert not redirect_allowed("https://idp.example/a", "http://idp.example/a")
    assert not redirect_allowed("https://idp.example/a", "https://evil.example/a")
    assert not redirect_allowed("https://idp.example/a", "https://idp.example:8443/a")
    assert not redirect_allowed("https://idp.example/a", "//evil.example/a")


# --- PKCE ------------------------------------------------------------------------------


@pytest.mark.parametrize("methods", [["plain"], [], None])
def test_pkce_is_s256_whatever_the_metadata_lists(hostile: Hostile, methods: Any) -> None:
    issuer = hostile.origin
    document: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
    }
    if methods is not None:
        document["code_challenge_methods_supported"] = methods
    hostile.routes["/.well-known/openid-configuration"] = lambda _q: (
        200,
        {"Content-Type": "application/json"},
        json.dumps(document).encode(),
    )
    args = ["login", "evil", "--issuer", issuer, "--client-id", "app"]
    args += ["--redirect-uri", "http://127.0.0.1:0/cb", "--no-browser", "--timeout", "1"]
    # A confidential client (the secret comes from the environment), as in the attack.
    result = run_cli(*args)
    assert result.returncode == 5, result.stderr
    url = next(line for line in result.stderr.splitlines() if "Open this URL" in line)
    query = parse_qs(url.split("?", 1)[1])
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    # Only the profile itself turns PKCE off.
    off = run_cli(*args, "--no-pkce")
    url = next(line for line in off.stderr.splitlines() if "Open this URL" in line)
    assert "code_challenge" not in url
