"""`python -m kube_emulator` / `counter-kube-emulator`: serve until SIGTERM or SIGINT.

The first line on stdout is the server URL, so that a parent process can wait for it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from kube_emulator.emulator import DEFAULT_TOKEN, KubeApiEmulator

logger = logging.getLogger("kube_emulator")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="counter-kube-emulator",
        description="An emulated Kubernetes API server for ConfigMaps. Prints its URL on stdout, "
        "serves until SIGTERM or SIGINT. Faults and counters: /_emulator/faults, /_emulator/stats.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for this server to this path")
    parser.add_argument("--namespace", default="default", help="the kubeconfig context's namespace")
    parser.add_argument(
        "--write-delay", type=float, default=0.0, help="seconds each write holds the store lock (etcd fsync)"
    )
    parser.add_argument(
        "--token",
        default=DEFAULT_TOKEN,
        help="the bearer token put in the kubeconfig; another token gets 401, none is fine (kubectl sends "
        "none over http)",
    )
    parser.add_argument("--no-auth", action="store_true", help="accept any bearer token")
    parser.add_argument("--log-level", default="INFO", help="logging level on stderr (default INFO)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    token = None if args.no_auth else args.token
    with KubeApiEmulator(args.host, args.port, write_delay=args.write_delay, token=token) as api:
        if args.kubeconfig:
            path = api.write_kubeconfig(args.kubeconfig, namespace=args.namespace)
            logger.info("kubeconfig written to %s", path)
        sys.stdout.write(api.url + "\n")
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
