"""CountAPI's own clients against `counter serve` over a socket, on SQLite and on Redis: the
countapi-js 1.0.2 mocha suite (from the npm registry) and the PyPI `countapi` 1.0 client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.server_process import Server, running_server, store_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SHIM = Path(__file__).with_name("countapi_base_shim.js")
JS_CLIENT = "countapi-js@1.0.2"
JS_CACHE = ROOT / ".tools" / "countapi-js-1.0.2"
NPM_TIMEOUT = 180
MOCHA_TIMEOUT = 120
# What the mocha suite assumes exists (its header says so): (namespace, key, create query or None
# for a key made by a hit).
JS_SEED = [
    ("default", "test", None),
    ("test", "test", None),
    ("default", "d7b97e5f-69a4-4933-8928-b9ee92f6b6ca", "enable_reset=0"),
    ("default", "c23ce4fa-4b78-4cbb-b53a-da3c2c38bb18", "enable_reset=1"),
    ("default", "ce420ebf-369c-4a19-92b1-8b02fb6e72ba", "update_upperbound=100"),
]


@pytest.fixture(params=["sqlite", "redis"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    env = store_env(request, tmp_path, request.param, "countapi")
    with running_server(env, tmp_path / "server.log") as running:
        yield running


def _js_package() -> Path:
    """countapi-js 1.0.2 with its test dependencies, fetched once into .tools/."""
    if (JS_CACHE / "package" / "node_modules" / ".bin" / "mocha").exists():
        return JS_CACHE / "package"
    work = JS_CACHE.with_name(JS_CACHE.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    npm = ["npm", "--no-audit", "--no-fund", "--loglevel=error"]
    packed = subprocess.run(
        [*npm, "pack", JS_CLIENT], cwd=work, capture_output=True, text=True, timeout=NPM_TIMEOUT, check=True
    )
    subprocess.run(["tar", "xzf", packed.stdout.strip().splitlines()[-1]], cwd=work, check=True, timeout=60)
    subprocess.run(
        [*npm, "install"], cwd=work / "package", capture_output=True, timeout=NPM_TIMEOUT, check=True
    )
    shutil.rmtree(JS_CACHE, ignore_errors=True)
    work.rename(JS_CACHE)
    return JS_CACHE / "package"


def test_countapi_js_mocha_suite_passes(server: Server) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run the countapi-js suite (.ci/run installs npm)")
    package = _js_package()
    with httpx.Client(base_url=f"{server.url}/countapi", timeout=10) as client:
        for namespace, key, query in JS_SEED:
            if query is None:
                response = client.get(f"/hit/{namespace}/{key}")
            else:
                response = client.get(f"/create?namespace={namespace}&key={key}&{query}")
            assert response.status_code == 200, response.text
    result = subprocess.run(
        ["node_modules/.bin/mocha", "--require", str(SHIM), "--reporter", "json"],
        cwd=package,
        env={**os.environ, "COUNTAPI_BASE": f"{server.url}/countapi"},
        capture_output=True,
        text=True,
        timeout=MOCHA_TIMEOUT,
        check=False,
    )
    report = json.loads(result.stdout)
    failures = [(test["fullTitle"], test["err"].get("message")) for test in report["failures"]]
    assert failures == []
    assert result.returncode == 0, result.stderr
    assert report["stats"]["passes"] == 30, report["stats"]


def _point_python_client_at(monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    # Every module of the client imported API_BASE by name: each holds its own copy.
    for module in ("common", "create", "info", "set", "stats", "value"):
        monkeypatch.setattr(f"countapi.{module}.API_BASE", base)


def test_python_client_every_function(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import countapi  # type: ignore[import-untyped]
    from countapi.common import NotOKError  # type: ignore[import-untyped]

    _point_python_client_at(monkeypatch, f"{server.url}/countapi")
    created = countapi.create_counter(
        namespace="py-client", enable_reset=True, update_lower_bound=-27, update_upper_bound=30
    )
    assert (created.namespace, created.value) == ("py-client", 0)
    key = created.key
    info = countapi.get_info(key, namespace="py-client")
    assert (info.namespace, info.key, info.value) == ("py-client", key, 0)
    assert (info.enable_reset, info.update_lower_bound, info.update_upper_bound) == (True, -27, 30)
    assert info.ttl > 15_000_000_000  # milliseconds: about six months
    assert info.created_at.year >= 2024
    for expected in range(1, 8):
        assert countapi.hit_counter(key, namespace="py-client").value == expected
    value = 7
    for amount in (8, 3, -4, -1, 6, 25):
        value += amount
        assert countapi.update_counter(amount, key, namespace="py-client").value == value
    assert countapi.get_value(key, namespace="py-client").value == value == 44
    replaced = countapi.set_value(302, key, namespace="py-client")
    assert (replaced.old_value, replaced.value) == (44, 302)
    assert countapi.get_info(key, namespace="py-client").value == 302

    plain = countapi.create_counter(key="py-plain", value=5)
    assert (plain.namespace, plain.key, plain.value) == ("default", "py-plain", 5)
    assert countapi.hit_counter("py-plain").value == 6
    assert countapi.get_value("py-plain").value == 6

    stats = countapi.get_stats()
    assert stats.keys_created == 2
    assert stats.keys_updated == 7 + 6 + 1 + 1
    assert stats.requests >= 20
    assert isinstance(stats.version, str)

    failing = [
        (countapi.get_value, ("no-such-key",), 404),
        (countapi.hit_counter, ("ab",), 400),
        (countapi.update_counter, (31, key, "py-client"), 403),
        (countapi.update_counter, (1, "no-such-key"), 404),
        (countapi.set_value, (1, "no-such-key"), 404),
        (countapi.set_value, (1, "py-plain"), 403),
        (countapi.get_info, ("no-such-key",), 404),
    ]
    for function, args, status in failing:
        with pytest.raises(NotOKError, match=rf"\[status {status}\]"):
            function(*args)
    with pytest.raises(NotOKError, match=r"\[status 409\]"):
        countapi.create_counter(key=key, namespace="py-client")
    with pytest.raises(NotOKError, match=r"\[status 400\]"):
        countapi.create_counter(update_upper_bound=-1)
    assert countapi.get_value(key, namespace="py-client").value == 302
    assert countapi.get_value("py-plain").value == 6
