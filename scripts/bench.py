#!/usr/bin/env python3
"""Benchmark loopback-login against google-auth-oauthlib and httpx-auth, in one run.

    python3 scripts/bench.py [--rounds N]

Makes its own virtual environment (scripts/.bench-venv) with this project, the two
peers and matplotlib, then measures, interleaving the tools round by round, against
the demo provider over plain http and over TLS (a self-signed certificate):

- login: from the command's start until it has saved the tokens, a scripted browser
  signing in and consenting (the same script for every tool);
- start to browser: from the command's start until the browser command starts;
- redirect to saved: from the browser sending the redirect until the token file is
  written, against a hand-written aiohttp receiver that does one POST;
- `loopback-login token NAME` with a valid token against `python -c pass`;
- `get_token()` in a running process;
- peak memory (max RSS) of a login;
- a storm: 32 processes asking for a token that has just expired;
- the warm login flow in one process against a bare aiohttp receiver doing the same
  flow, and the receiver's answer to the callback (`--only warm` runs just these);
- calling the API (the demo's GET /v2/locations): the per-request cost of
  `loopback_login.session()` against a plain aiohttp.ClientSession with a fixed
  header, and `loopback-login api` one-shot against
  `curl -H "$(loopback-login token --header)"` (`--only api` runs just these).

Prints medians and ratios, then each row of DESIGN.md §5 against its must-reach
and aim; writes scripts/results/bench.json, bench.png, bench-warm.*, bench-api.*
and bench-targets.txt.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "scripts" / ".bench-venv"
RESULTS = ROOT / "scripts" / "results"
PEERS = ["google-auth-oauthlib", "httpx-auth", "matplotlib"]
CLIENT_ID = "benchapp"
SECRET = "benchsecret0123456789"  # alphanumeric: every tool encodes it the same way

# --- the peers, each logging in once and saving the tokens to $OUT -------------------

GOOGLE = """
import json, os, sys
from google_auth_oauthlib.flow import InstalledAppFlow
base, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
flow = InstalledAppFlow.from_client_config(
    {"installed": {"client_id": "%(client)s", "client_secret": "%(secret)s",
                   "auth_uri": base + "/oauth2/authorize", "token_uri": base + "/oauth2/token",
                   "redirect_uris": ["http://127.0.0.1"]}},
    scopes=["thermostats"])
credentials = flow.run_local_server(host="127.0.0.1", port=port, open_browser=True)
with open(out + ".tmp", "w") as file:
    json.dump({"access_token": credentials.token, "refresh_token": credentials.refresh_token}, file)
os.replace(out + ".tmp", out)
""" % {"client": CLIENT_ID, "secret": SECRET}

HTTPX_AUTH = """
import json, os, sys
import httpx_auth
base, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# httpx-auth's PKCE flow has no client secret; its plain code flow sends Basic auth.
auth = httpx_auth.OAuth2AuthorizationCode(
    base + "/oauth2/authorize", base + "/oauth2/token", redirect_uri_port=port,
    redirect_uri_endpoint="callback", client_id="%(client)s", scope="thermostats",
    username="%(client)s", password="%(secret)s")
token = auth.request_new_token()
with open(out + ".tmp", "w") as file:
    json.dump({"token": list(token)}, file)
os.replace(out + ".tmp", out)
""" % {"client": CLIENT_ID, "secret": SECRET}

BASELINE = """
# The floor: a hand-written aiohttp receiver that does one POST and saves the tokens.
import asyncio, base64, json, os, secrets, sys, webbrowser
from urllib.parse import urlencode
from aiohttp import ClientSession, web
base, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
redirect = f"http://127.0.0.1:{port}/callback"
state = secrets.token_urlsafe(32)
async def main():
    done = asyncio.get_running_loop().create_future()
    async def callback(request):
        if request.query.get("state") != state:
            return web.Response(status=400)
        basic = base64.b64encode(b"%(client)s:%(secret)s").decode()
        async with ClientSession() as session:
            async with session.post(base + "/oauth2/token", data={
                "grant_type": "authorization_code", "code": request.query["code"],
                "redirect_uri": redirect}, headers={"Authorization": "Basic " + basic}) as r:
                tokens = await r.json()
        with open(out + ".tmp", "w") as file:
            json.dump(tokens, file)
        os.replace(out + ".tmp", out)
        done.set_result(None)
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_get("/callback", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    webbrowser.open(base + "/oauth2/authorize?" + urlencode({"response_type": "code",
        "client_id": "%(client)s", "redirect_uri": redirect, "state": state}))
    await done
    await runner.cleanup()
asyncio.run(main())
""" % {"client": CLIENT_ID, "secret": SECRET}

# The scripted browser: signs in, consents, notes when it sends the redirect.
BROWSER = """
import os, re, sys, time, html, urllib.parse
from loopback_login._demo.browser import _HIDDEN_REQUEST, _fetch
url = sys.argv[1]
if url.startswith("file://"):  # loopback-login hands the browser a private page (SECURITY.md)
    with open(urllib.parse.unquote(urllib.parse.urlsplit(url).path)) as page:
        url = html.unescape(re.search(r'http-equiv="refresh" content="0; url=([^"]*)"', page.read())[1])
status, body, location = _fetch(url, None, 30)
for form, action in (({"username": "demo", "password": "demo"}, "/oauth2/login"),
                     ({"decision": "allow"}, "/oauth2/consent")):
    request_id = html.unescape(_HIDDEN_REQUEST.search(body).group(1))
    status, body, location = _fetch(urllib.parse.urljoin(url, action), {"request": request_id, **form}, 30)
with open(os.environ["BENCH_REDIRECT_AT"], "w") as file:
    file.write(str(time.time_ns()))
_fetch(location, None, 30)
"""

MARK = '#!/bin/sh\ndate +%s%N > "$BENCH_MARK"\n'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-qq",
            "--disable-pip-version-check",
            str(ROOT),
            *PEERS,
        ],
        check=True,
    )
    return python


# --- running one command, measured from outside ----------------------------------------


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(start time ns, seconds to exit, peak RSS in KiB) of one command.

    The peak is the process's own VmHWM, sampled until it exits: not wait4's
    ru_maxrss, which would also count the browser process it waited for.
    """
    started = time.time_ns()
    process = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peak = 0
    status_file = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status_file.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    elapsed = (time.time_ns() - started) / 1e9
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed: {stderr.strip()[-3000:]}")
    return started, elapsed, peak


class Bench:
    def __init__(self, work: Path, rounds: int) -> None:
        self.work = work
        self.rounds = rounds
        self.python = sys.executable
        self.cli = str(Path(sys.executable).parent / "loopback-login")
        for name, source in (
            ("peer_google.py", GOOGLE),
            ("peer_httpx_auth.py", HTTPX_AUTH),
            ("peer_baseline.py", BASELINE),
            ("bench_browser.py", BROWSER),
        ):
            (work / name).write_text(textwrap.dedent(source))
        (work / "mark.sh").write_text(MARK)
        (work / "mark.sh").chmod(0o755)
        self.env = {
            **os.environ,
            "LOOPBACK_LOGIN_CONFIG_DIR": str(work / "config"),
            "LOOPBACK_LOGIN_CLIENT_SECRET": SECRET,
            "OAUTHLIB_INSECURE_TRANSPORT": "1",
            "BENCH_REDIRECT_AT": str(work / "redirect-at"),
        }
        self.env.pop("DISPLAY", None)

    def command(self, tool: str, base: str, port: int, out: Path) -> list[str]:
        if tool == "loopback-login":
            return [
                self.cli,
                "login",
                "bench",
                "--provider",
                "demo",
                "--base-url",
                base,
                "--client-id",
                CLIENT_ID,
                "--redirect-uri",
                f"http://127.0.0.1:{port}/callback",
                "--scope",
                "thermostats",
            ]
        script = {
            "google-auth-oauthlib": "peer_google.py",
            "httpx-auth": "peer_httpx_auth.py",
            "aiohttp by hand": "peer_baseline.py",
        }[tool]
        return [self.python, str(self.work / script), base, str(port), str(out)]

    def saved_file(self, tool: str, out: Path) -> Path:
        return self.work / "config" / "tokens" / "bench.json" if tool == "loopback-login" else out

    def login_once(self, tool: str, base: str, port: int) -> dict[str, float]:
        out = self.work / f"out-{tool}.json"
        saved = self.saved_file(tool, out)
        saved.unlink(missing_ok=True)
        # "&": webbrowser must not wait for the browser command. httpx-auth opens the
        # browser on its receiver's thread, so a browser command that waits (as this
        # one does until the page arrives) deadlocks it until the browser times out.
        browser = f"{self.python} {self.work / 'bench_browser.py'} %s &"
        started, elapsed, rss = run_measured(
            self.command(tool, base, port, out), {**self.env, "BROWSER": browser}
        )
        redirect_at = int((self.work / "redirect-at").read_text())
        return {
            "login_s": elapsed,
            "redirect_to_saved_s": (saved.stat().st_mtime_ns - redirect_at) / 1e9,
            "rss_kib": rss,
        }

    def start_to_browser(self, tool: str, base: str, port: int) -> float:
        mark = self.work / "mark"
        mark.unlink(missing_ok=True)
        env = {**self.env, "BROWSER": str(self.work / "mark.sh"), "BENCH_MARK": str(mark)}
        started = time.time_ns()
        process = subprocess.Popen(
            self.command(tool, base, port, self.work / "unused.json"),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not (mark.exists() and mark.read_text().strip()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{tool} never opened the browser")
            time.sleep(0.0002)
        opened = int(mark.read_text())
        process.kill()
        process.wait()
        return (opened - started) / 1e9


def median(values: list[float]) -> float:
    return statistics.median(values)


def inner(rounds: int) -> None:
    import asyncio
    import ssl
    import threading

    from loopback_login._demo.provider import DemoClient, DemoProvider, RunningDemo

    work = Path(tempfile.mkdtemp(prefix="loopback-bench-"))
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    # Every tool trusts the self-signed certificate the way it is told to.
    os.environ.update({"SSL_CERT_FILE": str(cert), "REQUESTS_CA_BUNDLE": str(cert)})

    tools = ["loopback-login", "google-auth-oauthlib", "httpx-auth", "aiohttp by hand"]
    ports = {tool: free_port() for tool in tools}
    redirects = [f"http://127.0.0.1:{p}/callback" for p in ports.values()]
    redirects.append(f"http://127.0.0.1:{ports['google-auth-oauthlib']}/")
    redirects.append(f"http://localhost:{ports['httpx-auth']}/callback")
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    providers = {}
    for transport, tls in (("http", None), ("https", context)):
        # Any loopback port (RFC 8252 §7.3): each login gets a fresh port, since
        # google-auth-oauthlib cannot bind a port again while it is in TIME_WAIT.
        provider = DemoProvider(
            [DemoClient(CLIENT_ID, SECRET, tuple(redirects), any_loopback_port=True)]
        )
        running = RunningDemo(provider, ssl=tls)
        asyncio.run_coroutine_threadsafe(running.__aenter__(), loop).result(10)
        providers[transport] = (provider, running.base_url)

    bench = Bench(work, rounds)
    logins: dict[str, dict[str, list[dict[str, float]]]] = {
        t: {tool: [] for tool in tools} for t in providers
    }
    starts: dict[str, list[float]] = {tool: [] for tool in tools}
    for round_number in range(rounds):
        for transport, (_provider, base) in providers.items():
            for tool in tools:
                logins[transport][tool].append(bench.login_once(tool, base, free_port()))
        for tool in tools:
            starts[tool].append(bench.start_to_browser(tool, providers["http"][1], free_port()))
        print(f"round {round_number + 1}/{rounds} done", file=sys.stderr)

    # `token` with a valid token, against a bare interpreter, interleaved.
    token_runs: dict[str, list[float]] = {"python -c pass": [], "loopback-login token": []}
    for _ in range(max(30, rounds * 5)):
        token_runs["python -c pass"].append(
            run_measured([bench.python, "-c", "pass"], bench.env)[1]
        )
        token_runs["loopback-login token"].append(
            run_measured([bench.cli, "token", "bench"], bench.env)[1]
        )

    # get_token() in a running process.
    code = (
        "import timeit, loopback_login; loopback_login.get_token_sync('bench');"
        "print(min(timeit.repeat(lambda: loopback_login.get_token_sync('bench'), number=2000, repeat=5)) / 2000)"
    )
    get_token_s = float(
        subprocess.run(
            [bench.python, "-c", code], env=bench.env, check=True, capture_output=True, text=True
        ).stdout
    )

    # 32 processes, a token that has just expired.
    record_path = work / "config" / "tokens" / "bench.json"
    record = json.loads(record_path.read_text())
    record["expires_at"] = time.time() - 1
    record_path.write_text(json.dumps(record))

    def refreshes() -> int:
        return sum(p.requests["refresh_token"] for p, _base in providers.values())

    before = refreshes()
    storm_started = time.monotonic()
    storm = [
        subprocess.Popen(
            [bench.cli, "token", "bench"],
            env=bench.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(32)
    ]
    outputs = [process.communicate(timeout=120) for process in storm]
    storm_s = time.monotonic() - storm_started
    storm_result = {
        "processes": 32,
        "failed": sum(process.returncode != 0 for process in storm),
        "distinct_tokens": len({stdout for stdout, _ in outputs}),
        "refresh_requests": refreshes() - before,
        "wall_s": storm_s,
    }

    report(tools, logins, starts, token_runs, get_token_s, storm_result, rounds)
    warm = warm_bench(rounds)
    api = api_bench(rounds)
    targets(warm, api)
    shutil.rmtree(work, ignore_errors=True)


# --- the warm login flow, in one process ---------------------------------------------

WARM = """
# Both flows in one warm process against the same demo provider (in its own thread), with
# the same played browser: loopback-login's login against a bare aiohttp receiver that does
# one POST and saves the tokens. Also the receiver's answer to the callback: from the
# browser sending the redirect until its page arrives (both answer after the exchange).
import asyncio, base64, html, json, os, secrets, socket, statistics, sys, tempfile, threading, time
import urllib.parse
from aiohttp import ClientSession, web
from loopback_login._demo.browser import _HIDDEN_REQUEST, _fetch
from loopback_login._demo.provider import DemoClient, DemoProvider, RunningDemo
from loopback_login._login.flow import login
from loopback_login._profiles.profile import resolve_profile
from loopback_login._store import Store

client_id, secret, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])

class Played:
    plays_itself = True
    def __init__(self):
        self.answers = []
    def unavailable(self):
        return None
    def open(self, url, say=None):
        threading.Thread(target=self.visit, args=(url,), daemon=True).start()
    def visit(self, url):
        status, body, location = _fetch(url, None, 30)
        for form, action in (({"username": "demo", "password": "demo"}, "/oauth2/login"),
                             ({"decision": "allow"}, "/oauth2/consent")):
            request_id = html.unescape(_HIDDEN_REQUEST.search(body).group(1))
            status, body, location = _fetch(
                urllib.parse.urljoin(url, action), {"request": request_id, **form}, 30)
        started = time.perf_counter()
        _fetch(location, None, 30)
        self.answers.append(time.perf_counter() - started)

class Quiet:
    def say(self, line): pass
    def show_url(self, url): pass
    async def countdown(self, *args): pass
    def ask(self, prompt): raise EOFError

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

async def bare(base, out, browser):
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    state = secrets.token_urlsafe(32)
    done = asyncio.get_running_loop().create_future()
    async def callback(request):
        if request.query.get("state") != state:
            return web.Response(status=400)
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        async with ClientSession() as session:
            async with session.post(base + "/oauth2/token", data={
                "grant_type": "authorization_code", "code": request.query["code"],
                "redirect_uri": redirect}, headers={"Authorization": "Basic " + basic}) as r:
                tokens = await r.json()
        with open(out + ".tmp", "w") as file:
            json.dump(tokens, file)
        os.replace(out + ".tmp", out)
        done.set_result(None)
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_get("/callback", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(redirect.split(":")[2].split("/")[0])).start()
    browser.open(base + "/oauth2/authorize?" + urllib.parse.urlencode({"response_type": "code",
        "client_id": client_id, "redirect_uri": redirect, "state": state}))
    await done
    await runner.cleanup()

def main():
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    provider = DemoProvider([DemoClient(client_id, secret, ("http://127.0.0.1:0/callback",),
                                        any_loopback_port=True)])
    running = RunningDemo(provider)
    asyncio.run_coroutine_threadsafe(running.__aenter__(), loop).result(10)
    base, work = running.base_url, tempfile.mkdtemp()
    store = Store(os.path.join(work, "config"))

    async def ours(browser):
        profile = resolve_profile("warm", None, {
            "provider": "demo", "base_url": base, "client_id": client_id, "client_secret": secret,
            "redirect_uri": f"http://127.0.0.1:{free_port()}/callback", "scope": "thermostats"})
        started = time.perf_counter()
        await login(profile, store=store, browser=browser, reporter=Quiet(), timeout=30)
        return time.perf_counter() - started

    async def theirs(browser):
        started = time.perf_counter()
        await bare(base, os.path.join(work, "bare.json"), browser)
        return time.perf_counter() - started

    async def run():
        mine, plain = Played(), Played()
        await ours(mine)  # warm: imports, caches, the secret kept
        await theirs(plain)
        mine.answers.clear()
        plain.answers.clear()
        times = {"ours": [], "bare": []}
        for _ in range(rounds):  # interleaved
            times["ours"].append(await ours(mine))
            times["bare"].append(await theirs(plain))
        return times, mine.answers, plain.answers

    times, answers, bare_answers = asyncio.run(run())
    median = statistics.median
    print(json.dumps({"flow_s": median(times["ours"]), "bare_flow_s": median(times["bare"]),
                      "answer_s": median(answers), "bare_answer_s": median(bare_answers)}))

main()
"""


def warm_bench(rounds: int) -> dict[str, float]:
    """The warm login flow and the receiver's answer, measured in one process."""
    measured: dict[str, float] = json.loads(
        subprocess.run(
            [sys.executable, "-c", WARM, CLIENT_ID, SECRET, str(max(20, rounds * 4))],
            check=True,
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "LOOPBACK_LOGIN_CLIENT_SECRET"},
        ).stdout
    )
    text = (
        f"warm login flow in one process: {measured['flow_s'] * 1000:.1f} ms vs a bare aiohttp "
        f"receiver {measured['bare_flow_s'] * 1000:.1f} ms "
        f"({measured['flow_s'] / measured['bare_flow_s']:.2f}x)\n"
        f"the receiver's answer to the callback (median): {measured['answer_s'] * 1000:.2f} ms "
        f"(the bare receiver: {measured['bare_answer_s'] * 1000:.2f} ms)"
    )
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench-warm.json").write_text(json.dumps(measured, indent=2) + "\n")
    (RESULTS / "bench-warm.txt").write_text(text + "\n")
    return measured


# --- calling the API -----------------------------------------------------------------

SESSION_VS_PLAIN = """
import asyncio, json, statistics, sys, time
import aiohttp, loopback_login, multidict

base, apikey, token, n, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

async def burst(session, path):
    started = time.perf_counter()
    for _ in range(n):
        async with session.get(path) as response:
            await response.read()
            assert response.status == 200, response.status
    return (time.perf_counter() - started) / n

async def main():
    async def noop(request, handler):
        return await handler(request)

    plain = aiohttp.ClientSession(base_url=base + "/", headers={"Authorization": "Bearer " + token})
    # What aiohttp's middleware dispatch costs by itself.
    dispatch = aiohttp.ClientSession(
        base_url=base + "/", headers={"Authorization": "Bearer " + token}, middlewares=[noop]
    )
    ours = loopback_login.session("api")
    async with plain, dispatch, ours:
        # The same request on the wire: the plain one carries the apikey in its path.
        fixed = "v2/locations?apikey=" + apikey
        cases = {"plain": (plain, fixed), "noop": (dispatch, fixed), "session": (ours, "v2/locations")}
        for session, path in cases.values():
            await burst(session, path)  # warm: connections, caches
        times = {name: [] for name in cases}
        for _ in range(rounds):  # interleaved, so load on the machine hits both alike
            for name, (session, path) in cases.items():
                times[name].append(await burst(session, path))

        # The middleware's own work per request, without the network: a handler that answers at once.
        middleware = loopback_login.middleware("api")
        class Request:
            def __init__(self, url):
                self.url, self.headers = url, {}
        class Response:
            status = 200
            headers = multidict.CIMultiDict()
        async def handler(request):
            return Response()
        url = aiohttp.client.URL(base + "/v2/locations")
        count = 20000
        started = time.perf_counter()
        for _ in range(count):
            await middleware(Request(url), handler)
        work = (time.perf_counter() - started) / count
    print(json.dumps(
        {name: statistics.median(values) for name, values in times.items()}
        | {name + "_min": min(values) for name, values in times.items()}
        | {"middleware_work": work}
    ))

asyncio.run(main())
"""


def api_bench(rounds: int) -> dict[str, object]:
    """The API calls: session() per request vs plain aiohttp, and `api` vs curl + `token --header`."""
    import asyncio
    import threading

    from loopback_login._demo.browser import ScriptedBrowser
    from loopback_login._demo.provider import DemoClient, DemoProvider, RunningDemo
    from loopback_login._login.flow import login
    from loopback_login._profiles.profile import resolve_profile
    from loopback_login._store import Store
    from loopback_login._ui import Terminal

    if shutil.which("curl") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "curl"], check=True, capture_output=True)
    curl = shutil.which("curl")
    work = Path(tempfile.mkdtemp(prefix="loopback-bench-api-"))
    env = {**os.environ, "LOOPBACK_LOGIN_CONFIG_DIR": str(work / "config")}
    env.pop("LOOPBACK_LOGIN_CLIENT_SECRET", None)
    os.environ["LOOPBACK_LOGIN_CONFIG_DIR"] = env["LOOPBACK_LOGIN_CONFIG_DIR"]
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    redirect = "http://127.0.0.1:0/callback"
    running = RunningDemo(
        DemoProvider([DemoClient(CLIENT_ID, SECRET, (redirect,), any_loopback_port=True)])
    )
    asyncio.run_coroutine_threadsafe(running.__aenter__(), loop).result(10)
    base = running.base_url
    profile = resolve_profile(
        "api",
        None,
        {
            "provider": "demo",
            "base_url": base,
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "redirect_uri": redirect,
        },
    )

    # Quiet: what the login says goes nowhere (the scripted browser speaks up later, too).
    token = asyncio.run(
        login(profile, store=Store(), browser=ScriptedBrowser(), reporter=Terminal(io.StringIO()))
    )
    python = sys.executable
    cli = str(Path(python).parent / "loopback-login")

    n = 200
    measured = json.loads(
        subprocess.run(
            [
                python,
                "-c",
                SESSION_VS_PLAIN,
                base,
                CLIENT_ID,
                token.access_token,
                str(n),
                str(max(15, rounds * 3)),
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )

    url = f"{base}/v2/locations?apikey={CLIENT_ID}"
    shell = f'{curl} -sf -H "$({cli} token api --header)" "{url}"'
    one_shot: dict[str, list[float]] = {"loopback-login api": [], "curl + token --header": []}
    for _ in range(max(20, rounds * 3)):
        one_shot["loopback-login api"].append(
            run_measured([cli, "api", "api", "/v2/locations"], env)[1]
        )
        one_shot["curl + token --header"].append(run_measured(["sh", "-c", shell], env)[1])
    asyncio.run_coroutine_threadsafe(running.__aexit__(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)

    plain_us, session_us = measured["plain"] * 1e6, measured["session"] * 1e6
    api_ms = median(one_shot["loopback-login api"]) * 1000
    curl_ms = median(one_shot["curl + token --header"]) * 1000
    lines = [
        f"per request, GET /v2/locations, {n} in a row, median of interleaved bursts:",
        f"  plain aiohttp.ClientSession, fixed header: {plain_us:.0f} us",
        f"  loopback_login.session():                  {session_us:.0f} us "
        f"({(session_us / plain_us - 1) * 100:+.1f}%)",
        f"  the plain one with a no-op middleware:     {measured['noop'] * 1e6:.0f} us "
        f"({(measured['noop'] * 1e6 / plain_us - 1) * 100:+.1f}%): aiohttp's middleware dispatch",
        f"  fastest bursts (least disturbed by load):  plain {measured['plain_min'] * 1e6:.0f} us, "
        f"no-op middleware {measured['noop_min'] * 1e6:.0f} us, "
        f"session() {measured['session_min'] * 1e6:.0f} us "
        f"({(measured['session_min'] / measured['plain_min'] - 1) * 100:+.1f}%)",
        f"  the middleware's own work per request:     {measured['middleware_work'] * 1e6:.1f} us",
        f"one-shot: loopback-login api {api_ms:.0f} ms; "
        f'curl -H "$(loopback-login token --header)" {curl_ms:.0f} ms ({api_ms / curl_ms:.2f}x)',
    ]
    text = "\n".join(lines)
    print(text)
    result = {
        "plain_request_s": measured["plain"],
        "session_request_s": measured["session"],
        "noop_middleware_request_s": measured["noop"],
        "plain_request_min_s": measured["plain_min"],
        "session_request_min_s": measured["session_min"],
        "middleware_work_s": measured["middleware_work"],
        "api_one_shot_s": api_ms / 1000,
        "curl_token_header_s": curl_ms / 1000,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench-api.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "bench-api.txt").write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return result


def report(tools, logins, starts, token_runs, get_token_s, storm, rounds) -> None:  # noqa: ANN001
    ours = "loopback-login"
    summary: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        "rounds": rounds,
        "login_s": {},
        "redirect_to_saved_s": {},
        "rss_mib": {},
        "start_to_browser_s": {},
    }
    lines = [f"machine: {summary['machine']}; medians of {rounds} interleaved rounds", ""]
    lines.append(f"{'metric':34} " + " ".join(f"{tool:>21}" for tool in tools))
    for transport, results in logins.items():
        for metric, scale, unit in (
            ("login_s", 1000, "ms"),
            ("redirect_to_saved_s", 1000, "ms"),
            ("rss_kib", 1 / 1024, "MiB"),
        ):
            values = {tool: median([r[metric] for r in results[tool]]) * scale for tool in tools}
            key = metric if metric != "rss_kib" else "rss_mib"
            summary[key][transport] = values  # type: ignore[index]
            cells = []
            for tool in tools:
                ratio = values[tool] / values[ours]
                cells.append(f"{values[tool]:8.1f} {unit:>3} ({ratio:4.2f}x)")
            label = {
                "login_s": "login",
                "redirect_to_saved_s": "redirect to saved",
                "rss_kib": "peak memory",
            }[metric]
            lines.append(f"{label + ', ' + transport:34} " + " ".join(f"{c:>21}" for c in cells))
    starts_ms = {tool: median(starts[tool]) * 1000 for tool in tools}
    summary["start_to_browser_s"] = {tool: v / 1000 for tool, v in starts_ms.items()}
    bare = median(token_runs["python -c pass"]) * 1000
    token = median(token_runs["loopback-login token"]) * 1000
    lines.append(
        f"{'start to browser':34} "
        + " ".join(
            f"{f'{starts_ms[t]:8.1f} ms ({starts_ms[t] / bare:4.1f}x py)':>21}" for t in tools
        )
    )
    lines += [
        "",
        f"python -c pass: {bare:.1f} ms; loopback-login token (valid): {token:.1f} ms = {token / bare:.2f}x",
        f"loopback-login start to browser: {starts_ms[ours]:.1f} ms = {starts_ms[ours] / bare:.2f}x python -c pass",
        f"redirect to tokens saved, http: {summary['redirect_to_saved_s']['http'][ours]:.1f} ms vs aiohttp by hand "  # type: ignore[index]
        f"{summary['redirect_to_saved_s']['http']['aiohttp by hand']:.1f} ms; https: "  # type: ignore[index]
        f"{summary['redirect_to_saved_s']['https'][ours]:.1f} ms vs "  # type: ignore[index]
        f"{summary['redirect_to_saved_s']['https']['aiohttp by hand']:.1f} ms",  # type: ignore[index]
        f"get_token() in process, valid token: {get_token_s * 1e6:.1f} us",
        f"storm: {storm['processes']} processes, {storm['failed']} failed, "
        f"{storm['distinct_tokens']} distinct token(s), {storm['refresh_requests']} refresh request(s), "
        f"{storm['wall_s'] * 1000:.0f} ms",
    ]
    summary.update(
        {
            "python_c_pass_s": bare / 1000,
            "token_cold_s": token / 1000,
            "get_token_s": get_token_s,
            "storm": storm,
        }
    )
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / "bench.txt").write_text(text + "\n")
    chart(tools, summary, bare, token)


#: DESIGN.md §5: (what, must reach, aim, lower is better)
TARGETS = [
    ("start of login to the browser, vs python -c pass", 3.5, 3.0, "x"),
    ("token NAME (valid), vs python -c pass", 2.2, 2.0, "x"),
    ("warm login flow, vs a bare aiohttp receiver", 1.3, 1.1, "x"),
    ("the receiver's answer to the callback (median)", 1.0, 0.5, "ms"),
    ("memory of a login process (peak RSS)", 46.0, 44.0, "MiB"),
    ("api one-shot, vs curl + token --header", 1.5, 1.2, "x"),
    ("session() request vs a plain one (fastest bursts)", 5.0, 2.0, "%"),
    ("get_token() in a running process, valid token", 50.0, 10.0, "us"),
]


def targets(warm: dict[str, float], api: dict[str, object]) -> None:
    """Each of DESIGN.md §5's rows: this run's figure, the must-reach and the aim."""
    summary = json.loads((RESULTS / "bench.json").read_text())
    bare = summary["python_c_pass_s"]
    values = [
        summary["start_to_browser_s"]["loopback-login"] / bare,
        summary["token_cold_s"] / bare,
        warm["flow_s"] / warm["bare_flow_s"],
        warm["answer_s"] * 1000,
        summary["rss_mib"]["http"]["loopback-login"],
        float(api["api_one_shot_s"]) / float(api["curl_token_header_s"]),  # type: ignore[arg-type]
        (float(api["session_request_min_s"]) / float(api["plain_request_min_s"]) - 1) * 100,  # type: ignore[arg-type]
        summary["get_token_s"] * 1e6,
    ]
    lines = [f"{'target (DESIGN.md §5)':52} {'this run':>10} {'must':>7} {'aim':>7}"]
    for (what, must, aim, unit), value in zip(TARGETS, values, strict=True):
        verdict = "aim" if value <= aim else "ok" if value <= must else "MISSED"
        lines.append(f"{what:52} {value:8.2f}{unit:>3} {must:6g}{unit} {aim:6g}{unit}  {verdict}")
    text = "\n".join(lines)
    print(text)
    (RESULTS / "bench-targets.txt").write_text(text + "\n")


def chart(tools, summary, bare, token) -> None:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    colours = ["#1a7f37", "#8c8c8c", "#b0b0b0", "#d0d0d0"]
    for axis, (title, values) in zip(
        axes,
        (
            ("login, http (ms)", summary["login_s"]["http"]),
            ("login, TLS (ms)", summary["login_s"]["https"]),
            (
                "start to browser (ms)",
                {t: v * 1000 for t, v in summary["start_to_browser_s"].items()},
            ),
        ),
        strict=True,
    ):
        axis.barh(list(values), list(values.values()), color=colours)
        axis.set_title(title)
        axis.invert_yaxis()
    axes[2].axvline(bare, color="black", linestyle=":", label=f"python -c pass {bare:.0f} ms")
    axes[2].legend(loc="lower right", fontsize=8)
    figure.suptitle(
        f"loopback-login vs peers ({summary['machine']}); token cold start {token:.0f} ms"
    )
    figure.tight_layout()
    figure.savefig(RESULTS / "bench.png", dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", choices=("api", "warm"), help="run only these measurements")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        {"api": api_bench, "warm": warm_bench, None: inner}[args.only](args.rounds)
        return
    python = ensure_venv()
    only = ["--only", args.only] if args.only else []
    os.execv(str(python), [str(python), __file__, "--inner", "--rounds", str(args.rounds), *only])


if __name__ == "__main__":
    main()
