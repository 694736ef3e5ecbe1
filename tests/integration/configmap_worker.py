"""One process of the multi-process ConfigMap tests: increments one counter, reports what happened.

    python -m tests.integration.configmap_worker --kubeconfig K --namespace NS --name CM \
        --counter hot --increments 200 --concurrency 32

It opens its own repository (so its own coalescer), prints `ready`, waits for a line on stdin (so
that all processes start together), runs the increments with at most `--concurrency` in flight,
and prints one JSON line: the values its successful increments returned, its failures, the store's
statistics.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
import time
from typing import Any

from adapters.configmap import ConfigMapCounterRepository, open_configmap_repository
from domain.errors import DomainError
from domain.model import CounterId

UNKNOWN_MARK = "outcome is unknown"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--name", required=True, help="the ConfigMap")
    parser.add_argument("--counter", default="hot")
    parser.add_argument("--increments", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-coalesce", action="store_true")
    parser.add_argument("--request-timeout", type=float, default=5.0)
    parser.add_argument("--max-retry-seconds", type=float, default=10.0)
    parser.add_argument("--max-attempts", type=int, default=10)
    return parser.parse_args(argv)


async def increments(repository: ConfigMapCounterRepository, args: argparse.Namespace) -> dict[str, Any]:
    values: list[int] = []
    not_counted: list[str] = []
    unknown: list[str] = []
    gate = asyncio.Semaphore(args.concurrency)

    async def one() -> None:
        async with gate:
            try:
                result = await repository.increment(CounterId.default(args.counter), 1)
            except DomainError as error:
                (unknown if UNKNOWN_MARK in str(error) else not_counted).append(
                    f"{type(error).__name__}: {error}"
                )
            else:
                values.append(result.counter.count)

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(args.increments)))
    return {
        "values": values,
        "not_counted": not_counted,
        "unknown": unknown,
        "seconds": time.monotonic() - started,
        "stats": dataclasses.asdict(repository.stats),
    }


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    opened = contextlib.asynccontextmanager(open_configmap_repository)(
        args.name,
        args.namespace,
        args.kubeconfig,
        coalesce=not args.no_coalesce,
        request_timeout=args.request_timeout,
        max_retry_seconds=args.max_retry_seconds,
        max_attempts=args.max_attempts,
        threads=max(4, min(args.concurrency, 32)) if args.no_coalesce else 4,
    )
    async with opened as repository:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        report = await increments(repository, args)
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
