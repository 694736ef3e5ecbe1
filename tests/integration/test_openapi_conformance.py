"""Schemathesis against the live OpenAPI document of a real `counter serve`, over a socket.

Every check Schemathesis has (`--checks all`) on every operation, in all its phases (examples,
coverage, fuzzing, stateful), must find nothing: the document states the rules the server
enforces (names, Idempotency-Key, 64-bit bounds, strict bodies, the problem answers and their
headers, auth on the admin routes, Abacus's routes under `/abacus` with its own bodies) and the
server keeps to them. Bounded: a fixed number of examples per operation, a fixed seed, one
worker. What a schema cannot express (answers that depend on what the server holds, such as an
Abacus admin key no generated token is) is set out, with the reasons, in schemathesis.toml and
schemathesis_hooks.py beside this file; the
one check left out is `use_after_free` (a deleted counter reads 0 by design, not 404).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.server_process import running_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).parent
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
TOKEN = "conformance-admin-token"
MAX_EXAMPLES = 30
SEED = 20261201


@pytest.mark.parametrize(
    ("backend", "fast_path"), [("sqlite", "true"), ("sqlite", "false"), ("memory", "true")]
)
def test_schemathesis_finds_nothing(tmp_path: Path, backend: str, fast_path: str) -> None:
    env = {
        "COUNTER_BACKEND": backend,
        "COUNTER_SQLITE_PATH": str(tmp_path / "counter.db"),
        "COUNTER_ADMIN_TOKEN": TOKEN,
        "COUNTER_FAST_PATH": fast_path,
        "COUNTER_EVENTS_IDLE_TIMEOUT_SECONDS": "1",  # a stream's answer ends, so it can be checked
    }
    with running_server(env, tmp_path / "server.log") as server:
        result = subprocess.run(
            [
                str(SCHEMATHESIS),
                "--config-file",
                str(HERE / "schemathesis.toml"),
                "--no-color",
                "run",
                f"{server.url}/schema/openapi.json",
                "--checks",
                "all",
                "--exclude-checks",
                "use_after_free",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                str(SEED),
                "--workers",
                "1",
                "--request-timeout",
                "10",
                "--header",
                f"Authorization: Bearer {TOKEN}",
            ],
            env={**os.environ, "SCHEMATHESIS_HOOKS": str(HERE / "schemathesis_hooks.py")},
            cwd=tmp_path,  # its .hypothesis folder and reports stay there
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    summary = result.stdout[result.stdout.rfind("SUMMARY") :]
    print(summary)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "No issues found" in summary
    # every operation: 15 of the API, 9 of the badges, 3 of live updates, 23 of /abacus
    assert "Tested: 50" in summary
