"""`/abacus` on a real `counter serve` over a socket, on SQLite and on Redis: Abacus 1.6.0's
HTTP shapes as an HTTP client (httpx) receives them, byte for byte, and as a page's script
(Node's fetch, a JSONP callback, CORS) parses them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.server_process import Server, running_server, store_env

pytestmark = [pytest.mark.integration]

JS_CLIENT = Path(__file__).with_name("abacus_client.mjs")
NODE_TIMEOUT = 60
GENUINE = (
    b'{"error":"This entry is genuine and does not have an admin key. You cannot delete it. If you'
    b' wanted to delete it, you should have created it with the /create endpoint."}'
)


@pytest.fixture(params=["sqlite", "redis"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    env = store_env(request, tmp_path, request.param, "abacus")
    with running_server(env, tmp_path / "server.log") as running:
        yield running


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/abacus", timeout=10.0) as client:
        yield client


def test_create_hit_get_info_and_the_admin_routes(http: httpx.Client) -> None:
    created = http.post("/create/site/visits?initializer=5")
    assert created.status_code == 201
    assert created.headers["content-type"] == "application/json; charset=utf-8"
    body = created.json()
    assert list(body) == ["admin_key", "key", "namespace", "value"]
    assert (body["namespace"], body["key"], body["value"]) == ("site", "visits", 5)
    token = body["admin_key"]
    assert http.post("/create/site/visits").status_code == 409
    random = http.post("/create/")
    assert random.status_code == 201
    assert re.fullmatch(r"[A-Za-z0-9_-]{16}", random.json()["namespace"])
    assert http.get("/hit/site/visits").content == b'{"value":6}'
    assert http.get("/get/site/visits").content == b'{"value":6}'
    info = http.get("/info/site/visits")
    assert re.fullmatch(
        rb'\{"exists":true,"expires_in":145152\d\d,"expires_str":"403\dh\d+m\d+s",'
        rb'"full_key":"K:site:visits","is_genuine":false,"value":6\}',
        info.content,
    ), info.content
    bearer = {"Authorization": f"Bearer {token}"}
    assert http.post("/set/site/visits?value=100", headers=bearer).content == b'{"value":100}'
    assert http.post(f"/update/site/visits?value=-1&token={token}").content == b'{"value":99}'
    wrong = http.post("/reset/site/visits", headers={"Authorization": "Bearer not-it"})
    assert (wrong.status_code, wrong.content) == (401, b'{"error":"token is invalid"}')
    assert http.post("/reset/site/visits", headers=bearer).content == b'{"value":0}'
    deleted = http.post("/delete/site/visits", headers=bearer)
    assert deleted.content == b'{"message":"Deleted key: K:site:visits","status":"ok"}'
    missing = http.get("/get/site/visits")
    assert (missing.status_code, missing.content) == (404, b'{"error":"Key not found"}')
    gone = http.get("/info/site/visits")
    assert gone.content == (
        b'{"exists":false,"expires_in":-2e-9,"expires_str":"-2ns","full_key":"K:site:visits",'
        b'"is_genuine":true,"value":-1}'
    )


def test_a_hit_made_counter_has_no_admin_key_and_keeps_its_value(http: httpx.Client) -> None:
    assert http.get("/hit/site/hits").content == b'{"value":1}'
    for path in (
        "/set/site/hits?value=9",
        "/reset/site/hits",
        "/update/site/hits?value=3",
        "/delete/site/hits",
    ):
        refused = http.post(path, headers={"Authorization": "Bearer whatever"})
        assert (refused.status_code, refused.content) == (400, GENUINE), path
    assert http.get("/get/site/hits").json() == {"value": 1}


def test_shields_jsonp_names_and_redirects(http: httpx.Client, server: Server) -> None:
    shield = http.get("/hit/site/badge/shield?text=views&bgcolor=ff5500")
    assert shield.status_code == 200
    assert shield.headers["content-type"].startswith("image/svg+xml")
    ET.fromstring(shield.text)
    assert re.findall(r"<text[^>]*>(\d+)</text>", shield.text)[-1] == "1"
    assert http.get("/get/site/badge/shield").status_code == 200
    assert http.get("/get/site/badge").json() == {"value": 1}
    assert http.get("/hit/site/badge?callback=show").content == b'show({"value":2});'
    bad = http.get("/hit/ab/badge")
    assert (
        bad.content == b'{"error":"Invalid namespace: length must be between 3 and 64 characters inclusive"}'
    )
    to_docs = http.get("/hit/badge", follow_redirects=False)
    assert (to_docs.status_code, to_docs.headers["location"]) == (308, "/schema/swagger")
    # the same counter on the native API
    assert httpx.get(f"{server.url}/namespaces/site/counters/badge").json()["count"] == 2


def test_stats_and_healthcheck(http: httpx.Client) -> None:
    http.get("/hit/site/counted")
    http.get("/get/site/counted")
    stats = http.get("/stats").json()
    assert list(stats) == sorted(stats)
    assert stats["commands"] == {"create": 0, "get": 1, "hit": 1, "total": 2}
    assert (stats["version"], stats["total_keys"]) == ("1.6.0", 1)
    health = http.get("/healthcheck").json()
    assert health["status"] == "ok"
    assert re.fullmatch(r"[0-9hm.]+(s|ms|µs)", health["uptime"])


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js for the page's script")
def test_what_a_page_script_parses(server: Server) -> None:
    result = subprocess.run(
        ["node", str(JS_CLIENT)],
        env={**os.environ, "ABACUS_BASE": f"{server.url}/abacus"},
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["created"]["status"] == 201
    assert seen["created"]["body"]["value"] == 10
    assert seen["hit"] == {"status": 200, "cors": "*", "body": {"value": 11}}
    assert seen["set"] == {"status": 200, "cors": "*", "body": {"value": 40}}
    assert seen["update"] == {"status": 200, "cors": "*", "body": {"value": 42}}
    assert seen["wrong"] == {"status": 401, "cors": "*", "body": {"error": "token is invalid"}}
    assert seen["info"]["body"]["value"] == 42
    assert seen["info"]["body"]["is_genuine"] is False
    assert seen["missing"] == {"status": 404, "cors": "*", "body": {"error": "Key not found"}}
    assert seen["jsonp"] == [{"value": 42}]
    assert seen["preflight"] == {
        "status": 204,
        "methods": "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS",
        "headers": "Origin,Content-Length,Content-Type,Authorization",
    }
