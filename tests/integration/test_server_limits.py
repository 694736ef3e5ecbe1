"""Hostile and slow clients against a real `counter serve`, over real sockets on 127.0.0.1: every
connection costs bounded memory and time, shutdown is drained, quiet and bounded, and the exit
code says whether the server started. Every test is bounded in time and in connections."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.server_process import Server, counter_command, free_port, running_server

pytestmark = pytest.mark.integration

KEEP_ALIVE = 1
HEADER_TIMEOUT = 2
BODY_TIMEOUT = 2
LIMITED = {
    "COUNTER_BACKEND": "memory",
    "COUNTER_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE),
    "COUNTER_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    "COUNTER_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
}
MARGIN = 1.0  # seconds a close may come after its bound (the event loop, a loaded machine)

HALF_HEAD = b"GET /counter HTTP/1.1\r\nHost: x\r\n"
HALF_BODY = (  # a JSON body of 9 bytes, but its last
    b"POST /counter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n"
    b'{"by": 1'
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("limits") / "server.log"
    with running_server(LIMITED, log) as running:
        yield running


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port_of(server)), timeout=10)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    return received


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def assert_still_serves(server: Server) -> None:
    assert httpx.post(f"{server.url}/counter", timeout=5).status_code == 200


# --------------------------------------------------------------------------- header size


def test_a_1_mb_header_gets_431_or_a_closed_connection(server: Server) -> None:
    with connect(server) as sock:
        # The server may close while we are still sending: what we want.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(HALF_HEAD + b"X-Big: " + b"a" * 1024 * 1024 + b"\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert_still_serves(server)


def test_a_head_over_the_limit_is_answered_431_with_a_problem(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(HALF_HEAD + b"X-Big: " + b"a" * 20_000 + b"\r\n\r\n")
        answer = read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer[:200]
    assert b"connection: close" in head
    assert b"content-type: application/problem+json" in head
    assert json.loads(body)["status"] == 431


def test_a_head_under_the_limit_is_served(server: Server) -> None:
    response = httpx.get(f"{server.url}/counter", headers={"X-Padding": "a" * 15_000}, timeout=5)
    assert response.status_code == 200


def test_ten_slow_20_mb_heads_leave_the_memory_of_the_server_bounded(server: Server) -> None:
    pid = server.process.pid
    start = rss_kib(pid)
    sent: list[int] = []
    deadline = time.monotonic() + 20

    def send_slowly() -> None:
        chunk = b"a" * 65536
        total = 0
        with connect(server) as sock:
            try:
                sock.sendall(HALF_HEAD + b"X-Big: ")
                while total < 20 * 1024 * 1024 and time.monotonic() < deadline:
                    sock.sendall(chunk)
                    total += len(chunk)
                    time.sleep(0.002)
            except OSError:
                pass  # the server closed the connection: the next send fails
        sent.append(total)

    threads = [threading.Thread(target=send_slowly) for _ in range(10)]
    for thread in threads:
        thread.start()
    peak = start
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, rss_kib(pid))
        time.sleep(0.01)
    for thread in threads:
        thread.join()
    assert len(sent) == 10
    assert max(sent) < 4 * 1024 * 1024, f"bytes sent before the server closed each connection: {sent}"
    assert peak - start < 64 * 1024, f"RSS grew from {start} KiB to {peak} KiB"
    assert_still_serves(server)


# --------------------------------------------------------------------------- slow and idle clients


class Watch:
    """When each socket is closed by the server (seconds from the start) and what it had sent."""

    def __init__(self, kinds: dict[str, list[socket.socket]]) -> None:
        self.started = time.monotonic()
        self.selector = selectors.DefaultSelector()
        self.received: dict[socket.socket, bytes] = {}
        self.kind_of: dict[socket.socket, str] = {}
        self.closed: dict[str, list[tuple[float, bytes]]] = {kind: [] for kind in kinds}
        for kind, sockets in kinds.items():
            for sock in sockets:
                sock.setblocking(False)  # noqa: FBT003 - the socket module's own signature
                self.selector.register(sock, selectors.EVENT_READ, data=sock)
                self.received[sock] = b""
                self.kind_of[sock] = kind

    def _registered(self, sock: socket.socket) -> bool:
        try:
            self.selector.get_key(sock)
        except KeyError:
            return False
        return True

    def read(self, sock: socket.socket) -> None:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BlockingIOError):
            chunk = b""
        if chunk:
            self.received[sock] += chunk
            return
        self.selector.unregister(sock)
        self.closed[self.kind_of[sock]].append((time.monotonic() - self.started, self.received[sock]))

    def run(self, trickled: list[socket.socket], timeout: float) -> dict[str, list[tuple[float, bytes]]]:
        """Read until every socket is closed or `timeout`; a byte goes to each of `trickled`
        every 0.3 s meanwhile."""
        next_trickle = self.started + 0.3
        while self.selector.get_map() and time.monotonic() < self.started + timeout:
            for key, _ in self.selector.select(timeout=0.05):
                self.read(key.data)
            if time.monotonic() >= next_trickle:
                next_trickle += 0.3
                for sock in filter(self._registered, trickled):
                    with contextlib.suppress(OSError):
                        sock.send(b"X")
        self.selector.close()
        for sock in self.received:
            sock.close()
        return self.closed


def test_idle_and_slow_connections_are_closed_within_their_bounds(server: Server) -> None:
    per_kind = 20
    answered = []
    for _ in range(per_kind):
        sock = connect(server)
        sock.sendall(b"POST /counter HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        answered.append(sock)
    for sock in answered:  # read each answer, then the connection is idle
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
    kinds = {
        "never sent a byte": [connect(server) for _ in range(per_kind)],
        "idle after an answer": answered,
        "half-sent head": [connect(server) for _ in range(per_kind)],
        "head trickled a byte at a time": [connect(server) for _ in range(per_kind)],
        "half-sent body": [connect(server) for _ in range(per_kind)],
    }
    for sock in kinds["half-sent head"] + kinds["head trickled a byte at a time"]:
        sock.sendall(HALF_HEAD)
    for sock in kinds["half-sent body"]:
        sock.sendall(HALF_BODY)
    bounds = {
        "never sent a byte": (KEEP_ALIVE, b""),
        "idle after an answer": (KEEP_ALIVE, b""),
        "half-sent head": (HEADER_TIMEOUT, b"HTTP/1.1 408 "),
        "head trickled a byte at a time": (HEADER_TIMEOUT, b"HTTP/1.1 408 "),
        "half-sent body": (BODY_TIMEOUT, b"HTTP/1.1 408 "),
    }
    closed = Watch(kinds).run(kinds["head trickled a byte at a time"], timeout=HEADER_TIMEOUT + 5)
    for kind, (bound, answer) in bounds.items():
        assert len(closed[kind]) == per_kind, f"{kind}: {per_kind - len(closed[kind])} still open"
        for after, received in closed[kind]:
            assert bound - 0.2 <= after <= bound + MARGIN, (
                f"{kind}: closed after {after:.2f}s, bound {bound}s"
            )
            assert received.startswith(answer), f"{kind}: {received[:100]!r}"
    assert_still_serves(server)


# --------------------------------------------------------------------------- shutdown


def test_shutdown_with_half_sent_bodies_is_quick_and_logs_no_traceback(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    # The default body timeout (10 s) and shutdown timeout (10 s): what the slow bodies used to cost.
    with running_server({"COUNTER_BACKEND": "memory"}, log) as running:
        sockets = []
        for _ in range(100):
            sock = connect(running)
            sock.sendall(HALF_BODY)
            sockets.append(sock)
        time.sleep(0.5)  # the server has read every head and waits for the bodies
        started = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(timeout=15)
        took = time.monotonic() - started
        answers = [read_until_closed(sock) for sock in sockets]
        for sock in sockets:
            sock.close()
    assert took < 5, f"shutdown took {took:.1f}s"  # 1 s of grace for the bodies, not their 10 s
    assert all(answer == b"" or answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "CancelledError" not in text, text[-3000:]
    assert "Finished server process" in text, "the last lines are written before the process ends"
    assert running.process.returncode == 0


def listener_closes(server: Server, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port_of(server)), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.02)
    return False


def test_requests_in_flight_at_sigterm_get_their_answers(tmp_path: Path) -> None:
    with running_server({"COUNTER_BACKEND": "memory"}, tmp_path / "server.log") as running:
        sockets = []
        for _ in range(20):
            sock = connect(running)
            sock.sendall(HALF_BODY)  # all of the request but its last byte
            sockets.append(sock)
        time.sleep(0.3)
        running.process.send_signal(signal.SIGTERM)
        assert listener_closes(running, within=3), "new connections must be refused at once..."
        for sock in sockets:  # ...but the requests it holds are finished
            sock.sendall(b"}")
        answers = [read_until_closed(sock) for sock in sockets]
        for sock in sockets:
            sock.close()
        running.process.wait(timeout=15)
        assert running.process.returncode == 0
    counts = []
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK"), answer[:200]
        assert b"connection: close" in head
        counts.append(json.loads(body)["count"])
    assert sorted(counts) == list(range(1, 21)), "every request counted once"


# --------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("cause", ["a store that cannot open", "a port in use"])
def test_a_server_that_cannot_start_exits_3(cause: str, workers: int, tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = free_port() if cause == "a store that cannot open" else taken.getsockname()[1]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("COUNTER_")},
            "COUNTER_HOST": "127.0.0.1",
            "COUNTER_PORT": str(port),
            "COUNTER_WORKERS": str(workers),
            "COUNTER_BACKEND": "sqlite",
            "COUNTER_SQLITE_PATH": str(
                not_a_directory / "data" / "counter.db"
                if cause == "a store that cannot open"
                else tmp_path / "counter.db"
            ),
        }
        result = subprocess.run(
            [*counter_command(), "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
    assert result.returncode == 3, result.stderr[-3000:]
    if cause == "a store that cannot open":
        assert "cannot open the store" in result.stderr
    assert "the server did not start" in result.stderr


def test_two_workers_that_started_exit_0_after_sigterm(tmp_path: Path) -> None:
    env = {"COUNTER_BACKEND": "sqlite", "COUNTER_SQLITE_PATH": str(tmp_path / "counter.db")}
    with running_server(env, tmp_path / "server.log", workers=2) as running:
        assert_still_serves(running)
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(timeout=30)
        assert running.process.returncode == 0, running.log()[-3000:]
