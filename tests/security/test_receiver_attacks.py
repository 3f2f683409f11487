"""Attacks on the loopback listener: only this login's answer, from the right place, ends the wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest
from support import ServedLogin, receiving

from loopback_login._errors import AuthorizationError, IssuerMismatch

STATE = "Zm9yLXRoaXMtbG9naW4tb25seS0wMTIzNDU2Nzg5YWJj"
ISSUER = "https://idp.example"


@pytest.fixture
async def harness() -> AsyncIterator[ServedLogin]:
    async with receiving("http://127.0.0.1:0/callback", state=STATE, issuer=ISSUER) as served:
        yield ServedLogin(*served, STATE)


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/favicon.ico",
        "/callback/",
        "/CALLBACK",
        "/callback%2F",
        "/callbackx",
        "/other?code=c&state=" + STATE,
        "/callback/../callback?code=c&state=" + STATE,
    ],
)
async def test_wrong_path(harness: ServedLogin, target: str) -> None:
    status, _ = await harness.get(target)
    assert status in (400, 404)
    await harness.assert_still_waiting()
    await harness.finish_for_real()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"])
async def test_wrong_method(harness: ServedLogin, method: str) -> None:
    request = (
        f"{method} /callback?code=c&state={STATE} HTTP/1.1\r\nHost: 127.0.0.1:{harness.port}\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    status, _ = await harness.raw(request.encode())
    assert status == 405
    await harness.assert_still_waiting()
    await harness.finish_for_real()


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example",
        "attacker.example:{port}",
        "localhost:{port}",
        "127.0.0.1",
        "127.0.0.1:1",
        "127.0.0.2:{port}",
        "[::1]:{port}",
        "",
    ],
)
async def test_wrong_host_or_dns_rebinding(harness: ServedLogin, host: str) -> None:
    status, body = await harness.get(
        f"/callback?code=c&state={STATE}", Host=host.format(port=harness.port)
    )
    assert status == 400
    await harness.assert_still_waiting()
    await harness.finish_for_real()


async def test_missing_host(harness: ServedLogin) -> None:
    status, _ = await harness.raw(f"GET /callback?code=c&state={STATE} HTTP/1.0\r\n\r\n".encode())
    assert status == 400
    await harness.assert_still_waiting()
    await harness.finish_for_real()


@pytest.mark.parametrize(
    "query",
    [
        "code=c",
        "code=c&state=",
        "code=c&state=wrong",
        f"code=c&state={STATE[:-1]}",
        f"code=c&state={STATE}x",
        f"code=c&state={STATE.lower()}",
        # repeated parameters: a second state or code smuggled in
        f"code=c&state={STATE}&state=other",
        f"code=a&code=b&state={STATE}",
        f"state=other&state={STATE}&code=c",
        # error= with the wrong state must not end the login
        "error=access_denied&state=forged",
        "error=access_denied",
        # non-UTF-8 and malformed
        f"code=%ff%fe&state={STATE}",
        f"code=c&state={STATE}%ff",
        f"state={STATE}",
        f"code=&state={STATE}",
    ],
)
async def test_callbacks_that_are_not_this_logins_answer(harness: ServedLogin, query: str) -> None:
    status, body = await harness.get(f"/callback?{query}")
    assert status == 400
    assert b"still waiting" in body or b"Bad Request" in body
    await harness.assert_still_waiting()
    await harness.finish_for_real()


@pytest.mark.parametrize("size", [9_000, 100_000])
async def test_oversized_query(harness: ServedLogin, size: int) -> None:
    status, _ = await harness.get(f"/callback?code={'a' * size}&state={STATE}")
    assert status in (400, 414, 431)
    await harness.assert_still_waiting()
    await harness.finish_for_real()


async def test_replayed_state_after_the_login(harness: ServedLogin) -> None:
    await harness.finish_for_real()
    status, body = await harness.get(f"/callback?code=again&state={STATE}")
    assert status == 400 and b"already over" in body


async def test_flood_of_bogus_callbacks_then_the_real_one(harness: ServedLogin) -> None:
    async def bogus(i: int) -> int:
        status, _ = await harness.get(f"/callback?code=x{i}&state=guess{i}")
        return status

    statuses = await asyncio.gather(*(bogus(i) for i in range(300)))
    assert set(statuses) == {400}
    await harness.assert_still_waiting()
    await harness.finish_for_real()


async def test_slow_client_does_not_block_the_real_callback(harness: ServedLogin) -> None:
    # A request that never finishes (slowloris), held open meanwhile.
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
    writer.write(f"GET /callback?code=slow&state={STATE} HTTP/1.1\r\nHost: 127.0.0.1:".encode())
    await writer.drain()
    try:
        await harness.finish_for_real()
    finally:
        writer.close()


async def test_issuer_mismatch_ends_the_login_with_mix_up_error(harness: ServedLogin) -> None:
    evil = quote("https://evil.example", safe="")
    status, body = await harness.get(f"/callback?code=c&state={STATE}&iss={evil}")
    assert b"Login failed" in body
    with pytest.raises(IssuerMismatch, match=r"evil\.example"):
        await asyncio.wait_for(harness.waiting, 5)


async def test_reflected_text_is_escaped(harness: ServedLogin) -> None:
    description = quote("<script>alert(1)</script>", safe="")
    status, body = await harness.get(
        f"/callback?error=server_error&error_description={description}&state={STATE}"
    )
    assert b"<script>" not in body and b"&lt;script&gt;" in body
    assert harness.waiting.done()  # the right state with error= ends it
    with pytest.raises(AuthorizationError, match="server_error"):
        harness.waiting.result()


async def test_pages_load_nothing_and_leak_nothing(harness: ServedLogin) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{harness.redirect}?code=c&state=wrong") as response,
    ):
        headers = response.headers
        body = await response.text()
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "http" not in body.lower().replace("http-equiv", "")  # no external resource
    await harness.finish_for_real()
