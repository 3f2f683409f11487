"""The token endpoint client against hand-made servers: bodies that arrive in pieces, and a
refresh whose id_token fails its checks."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer
from support import token_record

from loopback_login._errors import InvalidIdToken
from loopback_login._http.client import send
from loopback_login._protocol import ClientAuth, refresh_grant, token_request
from loopback_login._store import Store
from loopback_login._tokens.refresh import refresh_stored


def _jwt(**claims: object) -> str:
    def part(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


async def test_a_body_in_pieces_is_read_whole(aiohttp_server: AiohttpServer) -> None:
    body = json.dumps({"access_token": "a" * 5000, "token_type": "Bearer"}).encode()

    async def token(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(body[:100])
        await asyncio.sleep(0.05)
        await response.write(body[100:])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/token", token)
    server = await aiohttp_server(app)
    request = token_request(
        str(server.make_url("/token")),
        refresh_grant("r"),
        client_id="c",
        client_secret=None,
        client_auth=ClientAuth.NONE,
    )
    response = await send(request)
    assert response.body == body
    assert "aaaa" not in repr(response)  # the body holds tokens


async def test_refresh_keeps_the_rotated_token_even_when_its_id_token_fails(
    aiohttp_server: AiohttpServer,
) -> None:
    async def token(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "access_token": "new-access",
                "token_type": "Bearer",
                "expires_in": 600,
                "refresh_token": "new-refresh",
                "id_token": _jwt(
                    iss="https://idp.example", aud="someone-else", exp=time.time() + 60
                ),
            }
        )

    app = web.Application()
    app.router.add_post("/token", token)
    server = await aiohttp_server(app)
    store = Store()
    store.write_record(
        "home",
        token_record(
            access_token="old",
            expires_at=0,
            refresh_token="old-refresh",
            token_url=str(server.make_url("/token")),
            client_id="c",
            client_auth="none",
            issuer="https://idp.example",
        ),
    )
    with pytest.raises(InvalidIdToken, match="aud"):
        await refresh_stored(store, "home")
    record = store.read_record("home")
    assert record is not None and record["refresh_token"] == "new-refresh"
