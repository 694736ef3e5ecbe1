"""What a connection may cost: the settings, what `counter serve` hands to uvicorn, and the
bounded protocol itself, driven in-process through a fake transport (no socket).

The last test fingerprints the pieces of uvicorn that entrypoints/uvicorn_server.py relies on
beyond its documented API: an upgrade that changes one of them fails here, and whoever upgrades
re-reads that piece against the module before updating its fingerprint.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from uvicorn.server import ServerState

from entrypoints import cli, uvicorn_server
from entrypoints.settings import DECLARED, Settings, SettingsError
from entrypoints.uvicorn_server import (
    READ_GRACE_AT_SHUTDOWN_SECONDS,
    BoundedHttpToolsProtocol,
    ConnectionLimits,
    CounterConfig,
)

LIMIT_SETTINGS = {
    "COUNTER_MAX_HEADER_BYTES": ("16384", "1024-1048576"),
    "COUNTER_KEEP_ALIVE_SECONDS": ("5", "1-600"),
    "COUNTER_HEADER_TIMEOUT_SECONDS": ("10", "1-600"),
    "COUNTER_BODY_TIMEOUT_SECONDS": ("10", "1-600"),
    "COUNTER_SEND_TIMEOUT_SECONDS": ("30", "1-600"),
    "COUNTER_SHUTDOWN_TIMEOUT_SECONDS": ("10", "1-600"),
}

# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(("variable", "default_and_bounds"), sorted(LIMIT_SETTINGS.items()))
def test_each_limit_has_a_default_and_bounds_shown_in_its_help(
    variable: str, default_and_bounds: tuple[str, str]
) -> None:
    default, bounds = default_and_bounds
    declared = next(declared for declared in DECLARED if declared.variable == variable)
    assert declared.default_text == default
    assert declared.help.endswith(f"({bounds})")
    low, high = bounds.split("-")
    assert declared.parse(low) == int(low)
    assert declared.parse(high) == int(high)
    for wrong in (str(int(low) - 1), str(int(high) + 1), "1.5", "soon"):
        with pytest.raises(SettingsError) as raised:
            Settings.from_env({variable: wrong})
        assert raised.value.variable == variable


def test_limits_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "COUNTER_MAX_HEADER_BYTES": "8192",
            "COUNTER_KEEP_ALIVE_SECONDS": "75",
            "COUNTER_HEADER_TIMEOUT_SECONDS": "3",
            "COUNTER_BODY_TIMEOUT_SECONDS": "4",
            "COUNTER_SEND_TIMEOUT_SECONDS": "6",
            "COUNTER_SHUTDOWN_TIMEOUT_SECONDS": "20",
        }
    )
    assert settings.max_header_bytes == 8192
    assert settings.keep_alive_seconds == 75
    assert (settings.header_timeout_seconds, settings.body_timeout_seconds) == (3, 4)
    assert (settings.send_timeout_seconds, settings.shutdown_timeout_seconds) == (6, 20)


@pytest.fixture
def captured_run(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`counter serve` up to uvicorn: what it would run, without serving or touching logging."""
    captured: dict[str, Any] = {"exit_code": 0}

    def fake_run(app: str, **options: Any) -> int:
        captured.update(options, app=app)
        code: int = captured["exit_code"]
        return code

    monkeypatch.setattr(uvicorn_server, "run", fake_run)
    monkeypatch.setattr("entrypoints.logs.configure_logging", lambda *_args: None)
    # main() writes the options into the environment for the workers; keep that in this test.
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if not k.startswith("COUNTER_")})
    return captured


def test_serve_hands_the_limits_to_the_server(captured_run: dict[str, Any]) -> None:
    code = cli.main(
        [
            "serve",
            "--backend=memory",
            "--max-header-bytes=2048",
            "--keep-alive-seconds=7",
            "--header-timeout-seconds=3",
            "--body-timeout-seconds=4",
            "--send-timeout-seconds=9",
            "--shutdown-timeout-seconds=12",
        ]
    )
    assert code == 0
    assert captured_run["app"] == cli.APP_FACTORY
    assert captured_run["limits"] == ConnectionLimits(
        max_header_bytes=2048,
        keep_alive_seconds=7,
        header_timeout_seconds=3,
        body_timeout_seconds=4,
        send_timeout_seconds=9,
    )
    assert captured_run["shutdown_timeout_seconds"] == 12
    assert os.environ["COUNTER_MAX_HEADER_BYTES"] == "2048", "workers read their settings from here"


def test_serve_exits_with_the_servers_code(captured_run: dict[str, Any]) -> None:
    captured_run["exit_code"] = 3
    assert cli.main(["serve", "--backend=memory"]) == 3


def test_the_config_carries_its_limits_to_worker_processes() -> None:
    # Workers are spawned: the config reaches them pickled, limits and protocol class included.
    import pickle

    limits = ConnectionLimits(2048, 1, 0.5, 0.5, 0.5)
    config = CounterConfig(cli.APP_FACTORY, limits=limits, http=BoundedHttpToolsProtocol, workers=2)
    copy = pickle.loads(pickle.dumps(config))
    assert copy.limits == limits
    assert copy.http is BoundedHttpToolsProtocol
    assert copy.timeout_keep_alive == 1


# --------------------------------------------------------------------------- the protocol

LIMITS = ConnectionLimits(
    max_header_bytes=4096,
    keep_alive_seconds=1,
    header_timeout_seconds=0.05,
    body_timeout_seconds=0.05,
    send_timeout_seconds=0.05,
)


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.protocol: asyncio.BaseProtocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.written += data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            assert self.protocol is not None
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def status(self) -> bytes:
        return bytes(self.written).split(b"\r\n", 1)[0]


class EchoApp:
    """Reads the whole body, answers it back; records what it saw."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.events.append("disconnect")
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.events.append("answered")
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class Connection:
    def __init__(self, limits: ConnectionLimits = LIMITS) -> None:
        self.app = EchoApp()
        config = CounterConfig(self.app, limits=limits, lifespan="off", log_config=None, proxy_headers=False)
        config.load()
        self.protocol = BoundedHttpToolsProtocol(config, ServerState(), {}, asyncio.get_running_loop())
        self.transport = FakeTransport()
        self.transport.set_protocol(self.protocol)
        self.protocol.connection_made(self.transport)

    def send(self, data: bytes) -> None:
        if not self.transport.closed:
            self.protocol.data_received(data)


@pytest.fixture
async def connection() -> AsyncIterator[Connection]:
    connection = Connection()
    yield connection
    connection.transport.close()
    await asyncio.sleep(0)


def head(size: int = 0) -> bytes:
    padding = b"X-Padding: " + b"a" * size + b"\r\n" if size else b""
    return b"POST /counter HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n" + padding + b"\r\n"


async def test_a_request_in_one_read_is_answered_and_arms_no_timer(connection: Connection) -> None:
    connection.send(head(3000) + b"ok")
    assert connection.protocol._read_timer is None
    await asyncio.sleep(0.01)
    assert connection.transport.status() == b"HTTP/1.1 200 OK"
    assert connection.transport.written.endswith(b"ok")
    assert not connection.transport.closed


async def test_a_head_over_the_limit_in_one_read_gets_431(connection: Connection) -> None:
    connection.send(head(5000) + b"ok")
    assert connection.transport.status() == b"HTTP/1.1 431 Request Header Fields Too Large"
    problem = json.loads(bytes(connection.transport.written).split(b"\r\n\r\n", 1)[1])
    assert problem["status"] == 431
    assert "4096 bytes" in problem["detail"]
    assert connection.transport.closed
    await asyncio.sleep(0.01)
    assert connection.app.events == [], "the app never saw the request"


async def test_an_unfinished_head_is_refused_once_it_passes_the_limit(connection: Connection) -> None:
    # httptools keeps an unfinished header whole: the bytes must be counted as they arrive.
    connection.send(b"GET / HTTP/1.1\r\nX-Big: ")
    sent = 0
    while not connection.transport.closed:
        connection.send(b"a" * 1000)
        sent += 1000
        assert sent < 10_000, "never refused"
    assert sent <= LIMITS.max_header_bytes + 1000
    assert connection.transport.status() == b"HTTP/1.1 431 Request Header Fields Too Large"


async def test_a_head_under_the_limit_in_many_reads_is_served(connection: Connection) -> None:
    request = head(3500) + b"ok"
    for start in range(0, len(request), 100):
        connection.send(request[start : start + 100])
    await asyncio.sleep(0.01)
    assert connection.transport.status() == b"HTTP/1.1 200 OK"


async def test_pipelined_requests_in_one_read_are_all_answered(connection: Connection) -> None:
    connection.send(head(3000) + b"ok" + head(3000) + b"ok" + head(3000) + b"ok")
    await asyncio.sleep(0.05)
    assert bytes(connection.transport.written).count(b"HTTP/1.1 200 OK") == 3
    assert not connection.transport.closed


async def test_a_pipelined_head_over_the_limit_closes_after_the_answer_before_it(
    connection: Connection,
) -> None:
    connection.send(head() + b"ok" + head(5000) + b"ok")
    await asyncio.sleep(0.05)
    written = bytes(connection.transport.written)
    assert written.startswith(b"HTTP/1.1 200 OK")
    assert written.endswith(b"ok"), "the first answer is whole"
    assert b"431" not in written, "nothing written in the middle of another answer"
    assert connection.transport.closed


async def test_a_pipelined_head_that_never_ends_is_refused_too(connection: Connection) -> None:
    # It begins in the middle of a read, after a whole request: counted from its next read.
    connection.send(head() + b"ok" + b"GET / HTTP/1.1\r\nX-Big: ")
    await asyncio.sleep(0.01)
    assert connection.transport.status() == b"HTTP/1.1 200 OK"
    sent = 0
    while not connection.transport.closed:
        connection.send(b"a" * 1000)
        sent += 1000
        assert sent < 10_000, "never refused"
    assert sent <= LIMITS.max_header_bytes + 1000
    assert connection.transport.written.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 431 " in connection.transport.written


async def test_an_unfinished_head_gets_408_after_its_timeout_however_it_trickles(
    connection: Connection,
) -> None:
    connection.send(b"GET / HTTP/1.1\r\n")
    for _ in range(10):
        await asyncio.sleep(0.01)
        connection.send(b"X")  # more bytes do not buy more time
    await asyncio.sleep(0.05)
    assert connection.transport.status() == b"HTTP/1.1 408 Request Timeout"
    assert connection.transport.closed


async def test_an_unfinished_body_gets_408_and_the_app_sees_a_disconnect(connection: Connection) -> None:
    connection.send(head() + b"o")
    await asyncio.sleep(0.1)
    assert connection.transport.status() == b"HTTP/1.1 408 Request Timeout"
    assert connection.transport.closed
    assert connection.app.events == ["disconnect"]


async def test_an_idle_connection_is_timed_before_its_first_request(connection: Connection) -> None:
    timer = connection.protocol.timeout_keep_alive_task
    assert timer is not None, "uvicorn alone arms it only after a response"
    assert timer.when() == pytest.approx(asyncio.get_running_loop().time() + 1, abs=0.1)
    connection.send(b"\r\n\r\n")  # bytes that begin no request are not activity
    assert connection.protocol.timeout_keep_alive_task is timer
    assert not timer.cancelled()
    connection.protocol.timeout_keep_alive_handler()
    assert connection.transport.closed
    assert connection.transport.written == b"", "an idle connection is closed without a word"


async def test_the_idle_timer_does_not_cut_a_request_short(connection: Connection) -> None:
    timer = connection.protocol.timeout_keep_alive_task
    assert timer is not None
    connection.send(b"GET / HTTP/1.1\r\n")
    assert timer.cancelled(), "a request has begun: its head timeout applies"
    connection.protocol.timeout_keep_alive_handler()  # as if it had fired in the same tick
    assert not connection.transport.closed


async def test_at_shutdown_an_unfinished_body_gets_a_short_grace() -> None:
    connection = Connection(
        ConnectionLimits(4096, 1, header_timeout_seconds=60, body_timeout_seconds=60, send_timeout_seconds=60)
    )
    connection.send(head() + b"o")
    timer = connection.protocol._read_timer
    assert timer is not None
    loop = asyncio.get_running_loop()
    assert timer.when() > loop.time() + 50
    connection.protocol.shutdown()
    timer = connection.protocol._read_timer
    assert timer is not None
    assert timer.when() <= loop.time() + READ_GRACE_AT_SHUTDOWN_SECONDS
    assert not connection.transport.closed, "it may still finish its request"
    connection.send(b"k")
    await asyncio.sleep(0.01)
    assert connection.transport.status() == b"HTTP/1.1 200 OK"
    assert b"connection: close" in connection.transport.written
    assert connection.transport.closed


async def test_a_client_that_stops_reading_is_dropped(connection: Connection) -> None:
    connection.protocol.pause_writing()
    await asyncio.sleep(0.1)
    assert connection.transport.aborted


async def test_a_client_that_reads_again_is_kept(connection: Connection) -> None:
    connection.protocol.pause_writing()
    connection.protocol.resume_writing()
    await asyncio.sleep(0.1)
    assert not connection.transport.closed


def test_the_protocol_refuses_a_config_without_limits() -> None:
    from uvicorn import Config

    with pytest.raises(TypeError, match="CounterConfig"):
        BoundedHttpToolsProtocol(Config(EchoApp()), ServerState(), {})


def test_cancelled_requests_at_the_shutdown_timeout_log_no_traceback() -> None:
    config = CounterConfig(EchoApp(), limits=LIMITS, lifespan="off", log_config=None)
    config.load()
    uvicorn_logger = logging.getLogger("uvicorn.error")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    uvicorn_logger.addHandler(handler)
    try:
        for error in (asyncio.CancelledError("timeout graceful shutdown exceeded"), RuntimeError("a bug")):
            record = uvicorn_logger.makeRecord(
                uvicorn_logger.name,
                logging.ERROR,
                __file__,
                0,
                "Exception in ASGI application\n",
                (),
                (type(error), error, None),
            )
            uvicorn_logger.handle(record)
    finally:
        uvicorn_logger.removeHandler(handler)
    assert [record.exc_info[1].__class__ for record in records if record.exc_info] == [RuntimeError]


# --------------------------------------------------------------------------- uvicorn's internals

# sha256 (first 16 hex digits) of the source of each piece of uvicorn the module relies on.
_HTTPTOOLS = "uvicorn.protocols.http.httptools_impl:"
UVICORN_FINGERPRINTS = {
    f"{_HTTPTOOLS}HttpToolsProtocol.__init__": "4f08999410347141",
    f"{_HTTPTOOLS}HttpToolsProtocol.connection_made": "6efb565ff3d36b91",
    f"{_HTTPTOOLS}HttpToolsProtocol.connection_lost": "c91a4c9bf2e29c55",
    f"{_HTTPTOOLS}HttpToolsProtocol.data_received": "010a7ae59a5d3b1a",
    f"{_HTTPTOOLS}HttpToolsProtocol.on_message_begin": "96d377fdc7c2baef",
    f"{_HTTPTOOLS}HttpToolsProtocol.on_headers_complete": "1ea8589acfad92d8",
    f"{_HTTPTOOLS}HttpToolsProtocol.on_body": "dba9c32aeba35b6a",
    f"{_HTTPTOOLS}HttpToolsProtocol.on_message_complete": "1fbad42dc31fc01f",
    f"{_HTTPTOOLS}HttpToolsProtocol.on_response_complete": "64e254f28e389e76",
    f"{_HTTPTOOLS}HttpToolsProtocol.shutdown": "d7351fa33f00d430",
    f"{_HTTPTOOLS}HttpToolsProtocol.timeout_keep_alive_handler": "8b53bf5f2e202970",
    f"{_HTTPTOOLS}HttpToolsProtocol._unset_keepalive_if_required": "00a6a4e47214e68e",
    f"{_HTTPTOOLS}HttpToolsProtocol.pause_writing": "17a8fd215d96a13c",
    f"{_HTTPTOOLS}HttpToolsProtocol.resume_writing": "7844bbaa8cceb1ef",
    f"{_HTTPTOOLS}RequestResponseCycle.run_asgi": "0f33f2449a444bc2",
    f"{_HTTPTOOLS}RequestResponseCycle.send": "abdd8601b326a8da",
    f"{_HTTPTOOLS}RequestResponseCycle.receive": "8124ae006be71184",
    "uvicorn.server:Server.shutdown": "9b33c50562992b1e",
    "uvicorn.server:Server.capture_signals": "e1bbcd4770d1c887",
    "uvicorn.supervisors.multiprocess:Multiprocess.run": "306814569fbd547b",
    "uvicorn.supervisors.multiprocess:Multiprocess.keep_subprocess_alive": "3ba4980aa33bcecd",
    "uvicorn.supervisors.multiprocess:Process.exitcode": "8d73f4e8abcc48c2",
    # Where workers are replaced or retired (uvicorn_server.Supervisor tells the metrics of each).
    "uvicorn.supervisors.multiprocess:Multiprocess.handle_signals": "69be08d4fd9bc0b4",
    "uvicorn.supervisors.multiprocess:Multiprocess.restart_all": "438dec6d95be9fcd",
    "uvicorn.supervisors.multiprocess:Multiprocess.handle_ttou": "7801be71de722e96",
    "uvicorn.supervisors.multiprocess:Process.pid": "90398572c79efa31",
    # What `run` replaces: a new option there may be one that `run` should pass too.
    "uvicorn.main:run": "68c3e6c9039f072f",
}


def _source_of(path: str) -> str:
    module_name, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if isinstance(target, property):
        target = target.fget
    return inspect.getsource(target)


def test_the_uvicorn_internals_relied_on_have_not_changed() -> None:
    changed = [
        path
        for path, fingerprint in UVICORN_FINGERPRINTS.items()
        if hashlib.sha256(_source_of(path).encode()).hexdigest()[:16] != fingerprint
    ]
    assert not changed, (
        "uvicorn changed code that entrypoints/uvicorn_server.py relies on; re-read each against"
        " the module (and its tests), then update the fingerprints here:\n" + "\n".join(changed)
    )


def test_the_uvicorn_constants_relied_on_have_not_changed() -> None:
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE

    assert STARTUP_FAILURE == 3
    assert STATUS_LINE[431] == b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    assert STATUS_LINE[408] == b"HTTP/1.1 408 Request Timeout\r\n"
