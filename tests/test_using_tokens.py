"""Using the tokens: `loopback-login api` and the four Python forms (session, middleware,
HttpxAuth, RequestsAuth) against the demo provider's API and a recording API server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import requests
from aiohttp import web
from support import (
    CLI,
    CLIENT_ID,
    NEUTRAL_CWD,
    Browser,
    DemoServer,
    LoopThread,
    expire,
    login_home,
    read_record,
    run_cli,
    token_record,
)

import loopback_login
from loopback_login._demo.provider import SAMPLE_LOCATIONS
from loopback_login._profiles.profile import resolve_profile
from loopback_login._store import Store
from loopback_login._using.call import parse_field, parse_header, parse_method
from loopback_login._using.target import ApiTarget, origin_of, should_retry, target_from_record


class Recorder:
    """An HTTP API on 127.0.0.1 (its own thread) that records every request.

    ``/redirect?to=URL`` answers 302 to URL; any other path answers the next
    status of ``statuses`` (200 when empty) with a JSON echo of the request.
    """

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def _start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        seen = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": dict(request.headers),
            "body": (await request.read()).decode(),
        }
        self.seen.append(seen)
        if request.path == "/redirect":
            raise web.HTTPFound(request.query["to"])
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response(seen, status=status, headers={"X-Recorder": "yes"})

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def api() -> Iterator[Recorder]:
    server = Recorder()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def elsewhere() -> Iterator[Recorder]:
    server = Recorder()
    try:
        yield server
    finally:
        server.close()


def _bearer(record: dict[str, Any]) -> str:
    return f"Bearer {record['access_token']}"


# --- the profile setting -------------------------------------------------------------


def test_presets_set_the_api_base_url_and_the_flag_or_key_wins() -> None:
    # The Honeywell preset always needs its secret (issue 13).
    honeywell = resolve_profile(
        "h", None, {"provider": "honeywell", "client_id": "k", "client_secret": "s"}
    )
    assert honeywell.api_base_url == "https://api.honeywellhome.com"
    moved = {"provider": "demo", "base_url": "http://127.0.0.1:5000", "client_id": "k"}
    assert resolve_profile("d", None, moved).api_base_url == "http://127.0.0.1:5000"
    table = {
        "provider": "honeywell",
        "client_id": "k",
        "client_secret": "s",
        "api_base_url": "https://a.example/v1",
    }
    assert resolve_profile("h", table, {}).api_base_url == "https://a.example/v1"
    flags = {"api_base_url": "https://b.example"}
    assert resolve_profile("h", table, flags).api_base_url == "https://b.example"
    custom = {"token_url": "https://t.example/token", "client_id": "k"}
    assert resolve_profile("c", None, custom).api_base_url is None
    assert resolve_profile("h", table, {}).record_settings()["api_base_url"] == (
        "https://a.example/v1"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://api.example.com", "must use https"),
        ("https://user:pw@api.example.com", "user name or password"),
        ("https://api.example.com/?apikey=x", "must not have a query"),
        ("ftp://api.example.com", r"not an http\(s\) URL"),
    ],
)
def test_bad_api_base_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(loopback_login.ConfigError, match=message):
        resolve_profile("h", None, {"provider": "honeywell", "client_id": "k", "api_base_url": url})


# --- the shared logic: what goes with a request, what a 401 means ----------------------


def test_target_origin_paths_and_extras() -> None:
    record = {
        "api_base_url": "https://API.example.com/v1",
        "provider": "honeywell",
        "client_id": "k",
    }
    target = target_from_record("h", record, "h.json")
    assert target.origin == ("https", "api.example.com", 443)
    assert target.owns("https", "api.example.com", None)
    assert target.owns("HTTPS", "Api.Example.Com", 443)
    assert not target.owns("http", "api.example.com", 80)
    assert not target.owns("https", "api.example.com", 8443)
    assert not target.owns_url("https://api.example.com.evil.test/")
    assert target.url_for("/locations") == "https://API.example.com/v1/locations"
    assert target.url_for("locations?x=1") == "https://API.example.com/v1/locations?x=1"
    assert target.url_for("https://api.example.com:443/x") == "https://api.example.com:443/x"
    with pytest.raises(loopback_login.ConfigError, match="not on the API's origin"):
        target.url_for("https://elsewhere.example/x")
    with pytest.raises(loopback_login.ConfigError, match="not on the API's origin"):
        target.url_for("http://api.example.com/x")
    assert (
        target.with_query("https://a/x?apikey=old&b=1", {"c": "2"})
        == "https://a/x?b=1&c=2&apikey=k"
    )
    custom = target_from_record("c", {**record, "provider": "custom"}, "c.json")
    assert custom.query == () and custom.with_query("https://a/x") == "https://a/x"
    with pytest.raises(loopback_login.ConfigError, match="has no API base URL"):
        target_from_record("c", {"provider": "custom"}, "c.json")
    assert target.headers("Bearer", "t") == {"Authorization": "Bearer t"}
    assert origin_of("http", "[::1]", None) == ("http", "::1", 80)
    assert isinstance(target, ApiTarget)


def test_a_401_is_retried_once_and_only_with_our_token() -> None:
    assert should_retry(401, authorized=True, retried=False)
    assert not should_retry(401, authorized=True, retried=True)
    assert not should_retry(401, authorized=False, retried=False)
    assert not should_retry(403, authorized=True, retried=False)
    assert not should_retry(200, authorized=True, retried=False)


def test_fields_and_headers_are_read_as_gh_api_reads_them(tmp_path: Path) -> None:
    body = tmp_path / "note.txt"
    body.write_text("hello\n")
    assert parse_field("n=12", typed=True) == ("n", 12)
    assert parse_field("n=1.5", typed=True) == ("n", 1.5)
    assert parse_field("n=12", typed=False) == ("n", "12")
    assert [parse_field(f"b={v}", typed=True)[1] for v in ("true", "false", "null")] == [
        True,
        False,
        None,
    ]
    assert parse_field("x=nan", typed=True) == ("x", "nan")
    assert parse_field("x=1_000", typed=True) == ("x", "1_000")
    assert parse_field("x=-2e3", typed=True) == ("x", -2000.0)
    assert parse_field("x=1e999", typed=True) == ("x", "1e999")
    assert parse_field("x=007", typed=True) == ("x", "007")
    assert parse_field(f"note=@{body}", typed=True) == ("note", "hello\n")
    assert parse_field("a==b", typed=False) == ("a", "=b")
    with pytest.raises(loopback_login.ConfigError, match="KEY=VALUE"):
        parse_field("novalue", typed=False)
    with pytest.raises(loopback_login.ConfigError, match="cannot read"):
        parse_field(f"x=@{tmp_path / 'missing'}", typed=True)
    assert parse_method(None, has_body=False) == "GET"
    assert parse_method(None, has_body=True) == "POST"
    assert parse_method("patch", has_body=True) == "PATCH"
    with pytest.raises(loopback_login.ConfigError, match="not an HTTP method"):
        parse_method("GET\r\nX-Evil: 1", has_body=False)
    assert parse_header("X-Thing:  a b ") == ("X-Thing", "a b")
    with pytest.raises(loopback_login.ConfigError, match="Name: value"):
        parse_header("no colon")
    with pytest.raises(loopback_login.ConfigError, match="Authorization"):
        parse_header("authorization: Bearer mine")


# --- loopback-login api ----------------------------------------------------------------


def test_api_calls_the_demo_api_with_bearer_and_apikey(demo: DemoServer, browser: Browser) -> None:
    record = login_home(demo, browser)
    assert record["api_base_url"] == demo.base_url  # the preset's, moved with --base-url
    result = run_cli("api", "home", "/v2/locations")
    assert result.returncode == 0, result.stderr
    # Piped: the body exactly as the API sent it.
    assert result.stdout == json.dumps(SAMPLE_LOCATIONS)
    assert result.stderr == ""
    full = run_cli("api", "home", f"{demo.base_url}/v2/locations", "-i")
    assert full.returncode == 0, full.stderr
    head, _, body = full.stdout.partition("\n\n")
    assert head.startswith("HTTP/1.1 200 OK\n") and "Content-Type: application/json" in head
    assert json.loads(body) == SAMPLE_LOCATIONS


def test_api_works_from_the_token_file_alone(demo: DemoServer, browser: Browser) -> None:
    login_home(demo, browser)
    # The login kept its secret in config.toml (no keyring here); the call needs none of it.
    (Path(os.environ["LOOPBACK_LOGIN_CONFIG_DIR"]) / "config.toml").unlink()
    result = run_cli("api", "home", "v2/locations")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["name"] == "Demo House"


def test_api_methods_fields_input_and_headers(
    demo: DemoServer, browser: Browser, api: Recorder, tmp_path: Path
) -> None:
    record = login_home(demo, browser, "--api-base-url", api.url)
    assert record["api_base_url"] == api.url
    run = run_cli(
        "api",
        "home",
        "/things",
        "-f",
        "q=a b",
        "-F",
        "n=3",
        "-X",
        "get",
        "-H",
        "X-A: 1",
        "-H",
        "X-B: 2",
    )
    assert run.returncode == 0, run.stderr
    get = api.seen[-1]
    assert get["method"] == "GET" and get["path"] == "/things"
    assert get["query"] == {"q": "a b", "n": "3", "apikey": CLIENT_ID}
    assert get["headers"]["Authorization"] == _bearer(record)
    assert (get["headers"]["X-A"], get["headers"]["X-B"]) == ("1", "2")

    note = tmp_path / "note.txt"
    note.write_text("from a file")
    run = run_cli(
        "api",
        "home",
        "/things",
        "-F",
        "n=3",
        "-F",
        "on=true",
        "-F",
        "none=null",
        "-f",
        "s=3",
        "-F",
        f"note=@{note}",
    )
    assert run.returncode == 0, run.stderr
    post = api.seen[-1]
    assert post["method"] == "POST" and post["query"] == {"apikey": CLIENT_ID}
    assert json.loads(post["body"]) == {
        "n": 3,
        "on": True,
        "none": None,
        "s": "3",
        "note": "from a file",
    }
    assert post["headers"]["Content-Type"] == "application/json"

    run = run_cli(
        "api",
        "home",
        "/raw",
        "--input",
        "-",
        "-X",
        "PUT",
        "-f",
        "v=1",
        "-H",
        "Content-Type: text/plain",
        input="raw body",
    )
    assert run.returncode == 0, run.stderr
    put = api.seen[-1]
    assert (put["method"], put["body"], put["headers"]["Content-Type"]) == (
        "PUT",
        "raw body",
        "text/plain",
    )
    assert put["query"] == {"v": "1", "apikey": CLIENT_ID}
    run = run_cli("api", "home", "/gone", "-X", "DELETE")
    assert run.returncode == 0 and api.seen[-1]["method"] == "DELETE"
    assert api.seen[-1]["query"] == {"apikey": CLIENT_ID}  # whatever the method


def test_api_refuses_other_origins_and_bad_flags(
    demo: DemoServer, browser: Browser, elsewhere: Recorder
) -> None:
    login_home(demo, browser)
    for args in (
        [f"{elsewhere.url}/v2/locations"],
        ["/x", "-H", "Authorization: Bearer mine"],
        ["/x", "-f", "novalue"],
        ["/x", "--input", "/nonexistent/file"],
        ["/x", "-X", "GE T"],
    ):
        result = run_cli("api", "home", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stdout == "" and len(result.stderr.splitlines()) == 1
    assert elsewhere.seen == []
    result = run_cli("api", "nobody", "/x")
    assert result.returncode == 3 and "nobody" in result.stderr


def test_api_does_not_follow_a_redirect_elsewhere(
    demo: DemoServer, browser: Browser, api: Recorder, elsewhere: Recorder
) -> None:
    login_home(demo, browser, "--api-base-url", api.url)
    result = run_cli("api", "home", f"/redirect?to={elsewhere.url}/z", "-i")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("HTTP/1.1 302 Found\n")
    assert f"Location: {elsewhere.url}/z\n" in result.stdout
    assert elsewhere.seen == [] and len(api.seen) == 1


def test_api_error_status_body_on_stdout_one_line_exit_4(
    demo: DemoServer, browser: Browser, api: Recorder
) -> None:
    login_home(demo, browser, "--api-base-url", api.url)
    api.statuses = [404]
    result = run_cli("api", "home", "/missing")
    assert result.returncode == 4
    assert json.loads(result.stdout)["path"] == "/missing"
    assert result.stderr == "loopback-login: the API answered 404 Not Found\n"


def test_api_refreshes_an_expired_token_first(demo: DemoServer, browser: Browser) -> None:
    login_home(demo, browser)
    before = expire()
    result = run_cli("api", "home", "/v2/locations")
    assert result.returncode == 0, result.stderr
    assert demo.provider.requests["refresh_token"] == 1
    assert read_record()["access_token"] != before["access_token"]


def test_api_401_refreshes_once_and_retries_once(demo: DemoServer, browser: Browser) -> None:
    before = login_home(demo, browser)
    demo.provider._access_tokens.clear()  # the provider forgot (revoked) the token
    api_calls = demo.provider.requests["api"]
    result = run_cli("api", "home", "/v2/locations")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == SAMPLE_LOCATIONS
    assert demo.provider.requests["refresh_token"] == 1
    assert demo.provider.requests["api"] - api_calls == 2
    assert read_record()["access_token"] != before["access_token"]


def test_api_second_401_is_exit_3(demo: DemoServer, browser: Browser, api: Recorder) -> None:
    login_home(demo, browser, "--api-base-url", api.url)
    api.statuses = [401, 401, 401]
    result = run_cli("api", "home", "/v2/locations")
    assert result.returncode == 3
    assert "even after a refresh" in result.stderr and "login home" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert json.loads(result.stdout)["path"] == "/v2/locations"
    assert len(api.seen) == 2 and demo.provider.requests["refresh_token"] == 1
    first, second = api.seen
    assert first["headers"]["Authorization"] != second["headers"]["Authorization"]


def test_api_network_error_is_exit_4(demo: DemoServer, browser: Browser, api: Recorder) -> None:
    login_home(demo, browser, "--api-base-url", api.url)
    api.close()
    result = run_cli("api", "home", "/x")
    assert result.returncode == 4
    assert result.stderr.startswith("loopback-login: could not connect to the API at 127.0.0.1:")
    api.__init__()  # type: ignore[misc]  # the fixture closes it again


def test_api_pretty_prints_json_on_a_terminal(demo: DemoServer, browser: Browser) -> None:
    login_home(demo, browser)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [CLI, "api", "home", "/v2/locations"],
        stdout=follower,
        stderr=subprocess.PIPE,
        cwd=NEUTRAL_CWD,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(30) == 0
    os.close(leader)
    assert process.stderr is not None
    process.stderr.close()
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    assert text == json.dumps(SAMPLE_LOCATIONS, indent=2) + "\n"


# --- the Python forms ---------------------------------------------------------------------

KINDS = ["session", "middleware", "httpx", "httpx-async", "requests"]
Response = tuple[int, dict[str, Any] | list[Any] | None]


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


async def _aiohttp_get(client: aiohttp.ClientSession, url: str) -> Response:
    async with client.get(url) as response:
        return response.status, _json(await response.text())


async def calls(kind: str, urls: list[str]) -> list[Response]:
    """GET each URL at once, through one client of ``kind``."""
    if kind == "session":
        async with loopback_login.session("home") as client:
            return await asyncio.gather(*(_aiohttp_get(client, url) for url in urls))
    if kind == "middleware":
        async with aiohttp.ClientSession(middlewares=[loopback_login.middleware("home")]) as client:
            return await asyncio.gather(*(_aiohttp_get(client, url) for url in urls))
    if kind == "httpx-async":
        async with httpx.AsyncClient(
            auth=loopback_login.HttpxAuth("home"), follow_redirects=True
        ) as async_client:
            answers = await asyncio.gather(*(async_client.get(url) for url in urls))
            return [(r.status_code, _json(r.text)) for r in answers]

    def sync_calls() -> list[Response]:
        if kind == "httpx":
            with httpx.Client(
                auth=loopback_login.HttpxAuth("home"), follow_redirects=True
            ) as client:
                get: Callable[[str], Any] = client.get
                with ThreadPoolExecutor(len(urls)) as pool:
                    answers = list(pool.map(get, urls))
            return [(r.status_code, _json(r.text)) for r in answers]
        auth = loopback_login.RequestsAuth("home")
        with requests.Session() as client, ThreadPoolExecutor(len(urls)) as pool:
            answers = list(pool.map(lambda url: client.get(url, auth=auth, timeout=30), urls))
        return [(r.status_code, _json(r.text)) for r in answers]

    return await asyncio.to_thread(sync_calls)


async def call(kind: str, url: str) -> Response:
    return (await calls(kind, [url]))[0]


def _login(demo: DemoServer, browser: Browser, *extra: str) -> dict[str, Any]:
    return login_home(demo, browser, *extra)


async def _in_thread(function: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(function)


@pytest.mark.parametrize("kind", KINDS)
async def test_python_forms_call_the_demo_api(
    kind: str, demo: DemoServer, browser: Browser
) -> None:
    await _in_thread(lambda: _login(demo, browser))
    url = "v2/locations" if kind == "session" else f"{demo.base_url}/v2/locations"
    assert await call(kind, url) == (200, SAMPLE_LOCATIONS)


@pytest.mark.parametrize("kind", KINDS)
async def test_python_forms_add_token_and_apikey_only_for_the_api_origin(
    kind: str, demo: DemoServer, browser: Browser, api: Recorder, elsewhere: Recorder
) -> None:
    record = await _in_thread(lambda: _login(demo, browser, "--api-base-url", api.url))
    status, echo = await call(kind, f"{api.url}/x?a=1")
    assert status == 200 and isinstance(echo, dict)
    assert echo["headers"]["Authorization"] == _bearer(record)
    assert echo["query"] == {"a": "1", "apikey": CLIENT_ID}
    # Another origin: no token, no apikey.
    status, echo = await call(kind, f"{elsewhere.url}/y")
    assert status == 200 and isinstance(echo, dict)
    assert "Authorization" not in echo["headers"] and echo["query"] == {}
    # A redirect from the API to another origin: the token stays behind.
    status, echo = await call(kind, f"{api.url}/redirect?to={elsewhere.url}/z")
    assert status == 200 and isinstance(echo, dict) and echo["path"] == "/z"
    assert api.seen[-1]["headers"]["Authorization"] == _bearer(record)
    assert "Authorization" not in elsewhere.seen[-1]["headers"]
    assert "apikey" not in elsewhere.seen[-1]["query"]
    assert all(record["access_token"] not in json.dumps(seen) for seen in elsewhere.seen)


@pytest.mark.parametrize("kind", KINDS)
async def test_python_forms_refresh_once_and_retry_once_on_401(
    kind: str, demo: DemoServer, browser: Browser
) -> None:
    before = await _in_thread(lambda: _login(demo, browser))
    demo.provider._access_tokens.clear()  # revoked at the provider
    assert await call(kind, f"{demo.base_url}/v2/locations") == (200, SAMPLE_LOCATIONS)
    assert demo.provider.requests["refresh_token"] == 1
    assert read_record()["access_token"] != before["access_token"]


@pytest.mark.parametrize("kind", KINDS)
async def test_python_forms_give_the_second_401_back(
    kind: str, demo: DemoServer, browser: Browser, api: Recorder
) -> None:
    await _in_thread(lambda: _login(demo, browser, "--api-base-url", api.url))
    api.statuses = [401, 401, 401]
    status, _ = await call(kind, f"{api.url}/x")
    assert status == 401
    assert len(api.seen) == 2 and demo.provider.requests["refresh_token"] == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_fifty_concurrent_requests_meeting_an_expired_token_refresh_once(
    kind: str, demo: DemoServer, browser: Browser
) -> None:
    await _in_thread(lambda: _login(demo, browser))
    await _in_thread(expire)
    answers = await calls(kind, [f"{demo.base_url}/v2/locations"] * 50)
    assert answers == [(200, SAMPLE_LOCATIONS)] * 50
    assert demo.provider.requests["refresh_token"] == 1


async def test_fifty_concurrent_401s_refresh_once(demo: DemoServer, browser: Browser) -> None:
    await _in_thread(lambda: _login(demo, browser))
    demo.provider._access_tokens.clear()
    answers = await calls("session", ["v2/locations"] * 50)
    assert answers == [(200, SAMPLE_LOCATIONS)] * 50
    assert demo.provider.requests["refresh_token"] == 1


async def test_python_forms_need_a_login(demo: DemoServer) -> None:
    with pytest.raises(loopback_login.LoginRequired):
        loopback_login.session("nobody")
    with pytest.raises(loopback_login.LoginRequired):
        loopback_login.HttpxAuth("nobody")
    with pytest.raises(loopback_login.LoginRequired):
        loopback_login.RequestsAuth("nobody")


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [("HttpxAuth", "httpx", "httpx"), ("RequestsAuth", "requests", "requests")],
)
def test_a_missing_extra_is_named(name: str, module: str, extra: str) -> None:
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "import loopback_login\n"
        f"try: loopback_login.{name}\n"
        "except ImportError as exc: print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=NEUTRAL_CWD, check=True
    )
    assert (
        result.stdout.strip()
        == f"loopback_login.{name} needs {module}: pip install 'loopback-login[{extra}]'"
    )


def test_the_package_imports_no_http_client_until_asked() -> None:
    code = (
        "import sys, loopback_login\n"
        "loopback_login.get_token_sync\n"
        "print(sorted(m for m in ('httpx', 'requests', 'loopback_login._using.target') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=NEUTRAL_CWD, check=True
    )
    assert result.stdout.strip() == "[]"


def test_api_with_a_valid_token_imports_neither_aiohttp_nor_asyncio(
    demo: DemoServer, browser: Browser
) -> None:
    """One request needs no event loop: `api` is a one-shot, like curl."""
    login_home(demo, browser)
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "loopback_login",
            "api",
            "home",
            "/v2/locations",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=NEUTRAL_CWD,
    )
    assert result.returncode == 0 and json.loads(result.stdout) == SAMPLE_LOCATIONS
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert "loopback_login._using.target" in imported  # the probe does see our imports
    assert {name.split(".")[0] for name in imported} & {
        "aiohttp",
        "asyncio",
        "httpx",
        "requests",
    } == set()


async def post(kind: str, url: str, body: bytes) -> int:
    """POST ``body`` through one client of ``kind``; the status."""
    if kind in ("session", "middleware"):
        client = (
            loopback_login.session("home")
            if kind == "session"
            else aiohttp.ClientSession(middlewares=[loopback_login.middleware("home")])
        )
        async with client, client.post(url, data=body) as response:
            return response.status
    if kind == "httpx-async":

        async def stream() -> Any:
            yield body  # a stream: only requires_request_body lets it be sent twice

        async with httpx.AsyncClient(auth=loopback_login.HttpxAuth("home")) as async_client:
            return (await async_client.post(url, content=stream())).status_code

    def sync_post() -> int:
        if kind == "httpx":
            with httpx.Client(auth=loopback_login.HttpxAuth("home")) as client:
                return client.post(url, content=iter([body])).status_code
        return requests.post(
            url, data=body, auth=loopback_login.RequestsAuth("home"), timeout=30
        ).status_code

    return int(await asyncio.to_thread(sync_post))


@pytest.mark.parametrize("kind", KINDS)
async def test_a_request_retried_after_a_401_carries_its_body_again(
    kind: str, demo: DemoServer, browser: Browser, api: Recorder
) -> None:
    await _in_thread(lambda: _login(demo, browser, "--api-base-url", api.url))
    api.statuses = [401]
    assert await post(kind, f"{api.url}/things", b'{"mode": "Heat"}') == 200
    assert [seen["body"] for seen in api.seen] == ['{"mode": "Heat"}'] * 2
    first, second = api.seen
    assert first["headers"]["Authorization"] != second["headers"]["Authorization"]
    assert second["query"] == {"apikey": CLIENT_ID}


class _ConnectProxy:
    """An HTTP proxy that tunnels CONNECT to one local port, whatever host is asked for."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[tuple[str, str | None]] = []  # (CONNECT target, Proxy-Authorization)
        self.tunnels: list[asyncio.Task[None]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tunnels.append(task)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, _version = head[0].split(" ")
        headers = dict(line.split(": ", 1) for line in head[1:] if line)
        self.requests.append((f"{method} {target}", headers.get("Proxy-Authorization")))
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):  # a TLS peer may end with a reset
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        for closing in (writer, up_writer):
            with contextlib.suppress(ConnectionError):
                await closing.wait_closed()


def test_api_goes_through_the_environments_proxy_to_a_tls_api(
    tmp_path: Path, isolated_env: Path
) -> None:
    """https_proxy: a CONNECT tunnel (with the proxy's credentials), TLS to the API inside it."""
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=api.example", "-addext", "subjectAltName=DNS:api.example"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    seen: list[str | None] = []

    async def locations(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response([{"locationID": 1}])

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_get("/v2/locations", locations)
    runner = web.AppRunner(app)

    async def start() -> tuple[asyncio.Server, _ConnectProxy]:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
        proxy = _ConnectProxy(runner.addresses[0][1])
        return await asyncio.start_server(proxy.handle, "127.0.0.1", 0), proxy

    async def stop(server: asyncio.Server) -> None:
        await asyncio.wait_for(asyncio.gather(*proxy.tunnels), 10)
        server.close()
        await server.wait_closed()
        await runner.cleanup()

    thread = LoopThread()
    server, proxy = thread.run(start())
    try:
        Store().write_record(
            "home", token_record(access_token="tok", api_base_url="https://api.example")
        )
        port = server.sockets[0].getsockname()[1]
        result = run_cli(
            "api",
            "home",
            "/v2/locations",
            env={
                "https_proxy": f"http://me:p%40ss@127.0.0.1:{port}",
                "no_proxy": "other.example",
                "SSL_CERT_FILE": str(cert),
            },
        )
    finally:
        thread.run(stop(server))
        thread.close()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"locationID": 1}]
    assert seen == ["Bearer tok"]
    # The proxy saw only where to tunnel to (and its own credentials), never the token.
    assert proxy.requests == [("CONNECT api.example:443", "Basic bWU6cEBzcw==")]
