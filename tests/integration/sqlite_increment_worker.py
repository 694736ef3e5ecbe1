"""A second process for the SQLite multi-process tests.

    python sqlite_increment_worker.py DB_PATH COUNTER TOTAL WAVE [KEY_PREFIX]

Opens the store, writes "ready" and waits for a line on stdin, so that the test can start all
processes at the same moment; then increments COUNTER by 1 TOTAL times, WAVE increments at a time
(each wave is one or a few group commits), with the Idempotency-Keys KEY_PREFIX0, KEY_PREFIX1, ...
when a prefix is given. It writes one JSON list of [count, replayed] pairs, in order.
"""

from __future__ import annotations

import asyncio
import json
import sys

from adapters.sqlite import SqliteCounterRepository
from domain.idempotency import Idempotency
from domain.model import CounterId, Incremented


async def main(path: str, counter: str, total: int, wave: int, key_prefix: str | None) -> None:
    async with SqliteCounterRepository(path) as repository:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.readline)
        results: list[Incremented] = []
        for start in range(0, total, wave):
            results += await asyncio.gather(
                *(
                    repository.increment(
                        CounterId.default(counter),
                        1,
                        None
                        if key_prefix is None
                        else Idempotency.for_increment(
                            f"{key_prefix}{i}", CounterId.default(counter), 1, 3600.0
                        ),
                    )
                    for i in range(start, min(start + wave, total))
                )
            )
    sys.stdout.write(json.dumps([[r.counter.count, r.replayed] for r in results]) + "\n")


if __name__ == "__main__":
    db_path, name, total, wave, *prefix = sys.argv[1:]
    asyncio.run(main(db_path, name, int(total), int(wave), prefix[0] if prefix else None))
