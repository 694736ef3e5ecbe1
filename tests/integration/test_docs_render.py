"""The Swagger UI really renders in a browser with no internet: every asset comes from the app."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.chromium import CHROMIUM, SKIP_REASON, dump_dom
from tests.integration.server_process import running_server

pytestmark = pytest.mark.integration


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
def test_swagger_ui_renders_every_operation(tmp_path: Path) -> None:
    env = {"COUNTER_BACKEND": "memory"}
    with running_server(env, tmp_path / "server.log") as server:
        dom = dump_dom(f"{server.url}/docs", tmp_path / "profile")
    # Swagger UI writes the operations into the DOM only when its JavaScript loaded and ran and
    # the OpenAPI document was fetched and parsed.
    assert 'class="swagger-ui' in dom, dom[:2000]
    for path in ("/counters/{name}", "/health/ready", "/counter"):
        assert path in dom, path
    assert "Counter Web Server" in dom
    assert "Failed to load API definition" not in dom
