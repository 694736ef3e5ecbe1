"""Headless Chromium for the tests of pages the service serves: a page's DOM once its scripts
ran (`dump_dom`), or a page driven over the DevTools protocol while it lives (`DevTools`).

Networking the page does not need is switched off: these machines have no internet, and the
pages must not need it."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BASH = shutil.which("bash") or "/bin/bash"
SKIP_REASON = "chromium is not installed (.ci/run installs it)"


def chromium_args(profile: Path) -> list[str]:
    return [
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
    ]


def dump_dom(url: str, profile: Path) -> str:
    """The DOM after the page's scripts ran (in virtual time, up to 15 s of it)."""
    result = subprocess.run(
        [*chromium_args(profile), "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class DevToolsError(RuntimeError):
    pass


class DevTools:
    """One page in a headless Chromium, driven over the DevTools protocol on a pipe
    (`--remote-debugging-pipe`: the browser reads commands from its fd 3 and writes answers and
    events to its fd 4, each message JSON ended by a NUL byte)."""

    def __init__(self, process: subprocess.Popen[bytes], commands: int, answers: int) -> None:
        self.process = process
        self._commands = commands
        self._answers = answers
        self._buffer = b""
        self._last_id = 0
        self._session: str | None = None
        self.events: list[dict[str, Any]] = []  # every event received, in order

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """The result of a command, to the page once `open` attached it, else to the browser."""
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params}
        if self._session is not None and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self._last_id:
                if "error" in answer:
                    raise DevToolsError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer["result"]
                return result
            if "method" in answer:
                self.events.append(answer)

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DevToolsError("no answer from the browser in time")
            ready, _, _ = select.select([self._answers], [], [], left)
            if ready:
                chunk = os.read(self._answers, 1 << 16)
                if not chunk:
                    raise DevToolsError(f"the browser closed its pipe (exit code {self.process.poll()})")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        received: dict[str, Any] = json.loads(message)
        return received

    def open(self, url: str, *, intercept: tuple[str, ...] = ()) -> None:
        """Open `url` in a new page, attached to it, and wait until it has loaded; the network
        requests and the exceptions of its scripts are recorded from the start. Requests whose
        URL matches a pattern of `intercept` wait for the test to answer them (`take` their
        `Fetch.requestPaused` events, then `Fetch.fulfillRequest`)."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Network.enable")
        self.send("Runtime.enable")
        if intercept:
            self.send("Fetch.enable", patterns=[{"urlPattern": pattern} for pattern in intercept])
        self.send("Page.navigate", url=url)
        loaded = self.wait_for(
            "[location.href, document.readyState]", lambda v: v == [url, "complete"], timeout=60
        )
        if loaded != [url, "complete"]:
            raise DevToolsError(f"{url} did not load: {loaded}")

    def evaluate(self, expression: str, *, gesture: bool = False) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited); `gesture`:
        as if the user had just clicked (what the clipboard asks for)."""
        result = self.send(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
            userGesture=gesture,
        )
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(
        self,
        expression: str,
        until: Callable[[Any], bool],
        timeout: float = 20.0,
        between: Callable[[], None] | None = None,
    ) -> Any:
        """The expression's value once `until` holds for it, read again every 0.1 s (calling
        `between` before each read); the last value read if it never does within `timeout` (the
        caller's assertion then shows it)."""
        deadline = time.monotonic() + timeout
        while True:
            if between is not None:
                between()
            value = self.evaluate(expression)
            if until(value) or time.monotonic() > deadline:
                return value
            time.sleep(0.1)

    def take(self, method: str) -> list[dict[str, Any]]:
        """The parameters of the events of `method` received so far, removed from `events`."""
        taken = [e["params"] for e in self.events if e["method"] == method]
        self.events = [e for e in self.events if e["method"] != method]
        return taken

    def requested_urls(self) -> list[str]:
        # Drain what arrived since the last command first.
        self.send("Runtime.evaluate", expression="0")
        return [
            e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"
        ]

    def exceptions(self) -> list[dict[str, Any]]:
        return [e["params"] for e in self.events if e["method"] == "Runtime.exceptionThrown"]


def _above_four(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


@contextmanager
def devtools(profile: Path, log_path: Path) -> Iterator[DevTools]:
    """A headless Chromium started for the test, stopped by its PID at the end."""
    commands_read, commands_write = os.pipe()
    answers_read, answers_write = os.pipe()
    # The browser's ends moved above 4, so that giving them numbers 3 and 4 overwrites neither.
    commands_read, answers_write = (_above_four(fd) for fd in (commands_read, answers_write))
    # bash (its redirections take fd numbers above 9) gives the browser the two pipe ends as
    # its fds 3 and 4, then becomes it.
    wrapper = f'exec "$@" 3<&{commands_read} 4>&{answers_write} {commands_read}<&- {answers_write}>&-'
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [BASH, "-c", wrapper, "chromium", *chromium_args(profile), "--remote-debugging-pipe"],
            pass_fds=(commands_read, answers_write),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    os.close(commands_read)
    os.close(answers_write)
    try:
        yield DevTools(process, commands_write, answers_read)
    finally:
        os.close(commands_write)  # the browser exits when its command pipe closes
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        os.close(answers_read)
