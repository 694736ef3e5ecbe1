"""The Swagger UI really renders in a browser with no internet: every asset comes from the app."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.server_process import running_server

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render(url: str, profile: Path) -> str:
    """The DOM after the page's scripts ran, from headless Chromium with networking it does not
    need switched off (this machine has no internet; the page must not need it)."""
    result = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_swagger_ui_renders_every_operation(tmp_path: Path) -> None:
    env = {"COUNTER_BACKEND": "memory"}
    with running_server(env, tmp_path / "server.log") as server:
        dom = render(f"{server.url}/docs", tmp_path / "profile")
    # Swagger UI writes the operations into the DOM only when its JavaScript loaded and ran and
    # the OpenAPI document was fetched and parsed.
    assert 'class="swagger-ui' in dom, dom[:2000]
    for path in ("/counters/{name}", "/health/ready", "/counter"):
        assert path in dom, path
    assert "Counter Web Server" in dom
    assert "Failed to load API definition" not in dom
