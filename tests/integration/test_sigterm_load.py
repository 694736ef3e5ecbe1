"""SIGTERM to a real `counter serve` (1 and 2 workers) under load: a request either gets its 2xx and
is counted, or its connection is refused or closed before the request was read, and then it is
not counted: the stored count equals the 2xx answers. The server exits 0 and logs no traceback.
Each run is about 2 s of load and stops by itself."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import pytest

from adapters.redis import open_redis_repository
from domain.model import CounterId
from tests.integration.fault_load import Load
from tests.integration.server_process import running_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# No HTTP answer: refused (the listener is closed), or closed or reset before an answer.
NO_ANSWER = {"ConnectError", "RemoteProtocolError", "ReadError", "WriteError"}


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_under_load_answers_or_refuses_and_counts_every_2xx_once(
    workers: int, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    env = {"COUNTER_BACKEND": "redis", "COUNTER_REDIS_URL": redis_url, "COUNTER_REDIS_PREFIX": redis_prefix}
    with running_server(env, log, workers=workers) as server:
        load = Load(server.url, "/counter", clients=8)
        load.start()
        await asyncio.sleep(1.5)
        signalled_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.process.wait, 30)
        exited_after = time.monotonic() - signalled_at
        await asyncio.sleep(0.3)  # the clients see the listener gone
        await load.stop()
    kinds = load.kinds()
    assert set(kinds) <= {"200", *NO_ANSWER}, f"answers other than 200 or no answer: {kinds}"
    after_sigterm = [a for a in load.answers if a.sent_at >= signalled_at]
    assert any(a.status is None for a in after_sigterm), "the server stopped taking requests"
    async with contextlib.asynccontextmanager(open_redis_repository)(redis_url, redis_prefix) as repository:
        stored = (await repository.get(CounterId.default("default"))).count
    ok = kinds["200"]
    assert stored == ok, f"stored {stored} != 2xx {ok}: {kinds}"
    assert code == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "CancelledError" not in text, text[-3000:]
    late_2xx = sum(1 for a in after_sigterm if a.status == 200)
    print(
        f"\nSIGTERM under load, {workers} worker(s): sent {len(load.answers)}, {dict(kinds)};"
        f" 2xx sent after SIGTERM: {late_2xx}; stored {stored} = 2xx; exit code {code}"
        f" after {exited_after:.2f} s; no traceback in {len(text.splitlines())} log lines"
    )
