"""The live page in a real headless Chromium, driven over the DevTools protocol, served by a real
`counter serve` over a socket with no internet: it lists a namespace's counters, shows the exact
new value of a counter after increments the test makes (read from the DOM), loads the next page
with its button, copies exact embed snippets, and follows a stream of server-sent events."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.chromium import CHROMIUM, SKIP_REASON, DevTools, devtools
from tests.integration.server_process import Server, running_server

pytestmark = [pytest.mark.integration, pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)]

NAMESPACE = "blog.example"
PAGE_SIZE = 50  # page.js lists the counters 50 at a time
LIVE_STREAMS = 4  # and gives the first 4 a stream each
# Sorted by key: "a-visits" and "big" come first (streamed or polled), then c00..c48; the first
# page ends at c47, c48 is on the second.
FILLER = [f"c{i:02d}" for i in range(PAGE_SIZE - 1)]
BIG = 2**53 + 1  # not exactly a JavaScript number


def value_of(key: str) -> str:
    return f"document.querySelector('tr[data-key=\"{key}\"] td.value')?.textContent ?? null"


def row_of(key: str) -> str:
    return f"document.querySelector('tr[data-key=\"{key}\"]')"


def add(server: Server, key: str, by: int) -> None:
    answer = httpx.post(f"{server.url}/namespaces/{NAMESPACE}/counters/{key}", json={"by": by}, timeout=5)
    assert answer.status_code == 200, answer.text


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server({"COUNTER_BACKEND": "memory"}, tmp_path / "server.log") as running:
        add(running, "a-visits", 5)
        add(running, "big", BIG)
        for key in FILLER:
            add(running, key, 1)
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    with devtools(tmp_path / "profile", tmp_path / "chromium.log") as tools:
        yield tools


def test_the_page_shows_each_new_value_pages_and_loads_nothing_from_elsewhere(
    server: Server, browser: DevTools
) -> None:
    browser.open(f"{server.url}/namespaces/{NAMESPACE}/page")
    assert browser.wait_for(value_of("a-visits"), lambda v: v == "5") == "5"
    # The service serves the events route, so the first rows follow its stream, not a poll.
    assert browser.wait_for(f"{row_of('a-visits')}.dataset.live", lambda v: v == "stream") == "stream"
    assert browser.evaluate("document.querySelectorAll('tbody tr').length") == PAGE_SIZE
    # Exact, beyond 2^53 (a JavaScript number would show 9007199254740992).
    assert browser.evaluate(f"{value_of('big')}") == str(BIG)

    # A counter with a stream: the new values come as events from the running service.
    add(server, "a-visits", 3)
    add(server, "a-visits", 3)
    assert browser.wait_for(value_of("a-visits"), lambda v: v == "11") == "11"
    badge = f"{row_of('a-visits')}.querySelector('img.badge')"
    badge_state = f"[{badge}.getAttribute('src'), {badge}.complete, {badge}.naturalWidth > 0, {badge}.alt]"
    expected_badge = [f"/namespaces/{NAMESPACE}/counters/a-visits/badge.svg?v=11", True, True, "a-visits: 11"]
    assert browser.wait_for(badge_state, lambda v: v == expected_badge) == expected_badge

    # A counter past the streamed ones: refreshed from the listing.
    assert browser.evaluate(f"{row_of('c47')}.dataset.live") == "listing"
    add(server, "c47", 2)
    assert browser.wait_for(value_of("c47"), lambda v: v == "3") == "3"

    # The next page, then a change of a counter on it.
    assert browser.evaluate(value_of("c48")) is None
    assert browser.evaluate("document.getElementById('more').hidden") is False
    browser.evaluate("document.getElementById('more').click()", gesture=True)
    assert browser.wait_for(value_of("c48"), lambda v: v == "1") == "1"
    assert browser.wait_for("document.getElementById('more').hidden", lambda v: v is True) is True
    add(server, "c48", 41)
    assert browser.wait_for(value_of("c48"), lambda v: v == "42") == "42"

    # Everything came from the service itself, and no script failed.
    urls = browser.requested_urls()
    assert urls, "no request was recorded"
    assert [url for url in urls if not url.startswith(f"{server.url}/")] == []
    assert browser.exceptions() == []


def snippets(server: Server, key: str) -> dict[str, str]:
    badge = f"{server.url}/namespaces/{NAMESPACE}/counters/{key}/badge.svg"
    return {"markdown": f"![{key}]({badge})", "html": f'<img alt="{key}" src="{badge}">'}


def test_embed_snippets_are_exact_and_copied_or_selected(server: Server, browser: DevTools) -> None:
    browser.open(f"{server.url}/namespaces/{NAMESPACE}/page")
    browser.wait_for(value_of("a-visits"), lambda v: v is not None)
    inputs = f"[...{row_of('a-visits')}.querySelectorAll('input.snippet')]"
    shown = browser.evaluate(f"Object.fromEntries({inputs}.map(i => [i.dataset.format, i.value]))")
    assert shown == snippets(server, "a-visits")
    labels = browser.evaluate(f"{inputs}.map(i => i.closest('label').textContent.trim())")
    assert labels == ["Markdown", "HTML"]

    buttons = f"{row_of('a-visits')}.querySelectorAll('button')"
    status = "document.getElementById('status').textContent"
    browser.send("Browser.grantPermissions", permissions=["clipboardReadWrite", "clipboardSanitizedWrite"])
    browser.evaluate(f"{buttons}[0].click()", gesture=True)
    copied = "Copied the Markdown of the badge of a-visits."
    assert browser.wait_for(status, lambda v: v == copied) == copied
    assert browser.evaluate("navigator.clipboard.readText()", gesture=True) == shown["markdown"]

    # Where the clipboard refuses, the snippet is selected for the reader to copy.
    browser.evaluate("navigator.clipboard.writeText = () => Promise.reject(new Error('refused'))")
    browser.evaluate(f"{buttons}[1].click()", gesture=True)
    selected = "Selected the HTML of the badge of a-visits: press Ctrl+C (⌘C on a Mac) to copy it."
    assert browser.wait_for(status, lambda v: v == selected) == selected
    focused = "document.activeElement"
    selection = f"[{focused}.value, {focused}.selectionStart, {focused}.selectionEnd]"
    assert browser.evaluate(selection) == [shown["html"], 0, len(shown["html"])]


def event_stream(*events: dict[str, Any]) -> str:
    """A body of `text/event-stream` as the events route sends it (one event per change, the
    first the current value), asking the browser to reconnect soon after it ends."""
    lines = ["retry: 200", ""]
    for event in events:
        lines += [f"id: {event['version']}", f"data: {json.dumps(event)}", ""]
    return "\n".join(lines) + "\n"


def test_a_counter_with_a_stream_shows_its_events(server: Server, browser: DevTools) -> None:
    """The page against the events route's contract. The service has no such route here, so the
    test answers the page's requests for it itself, through the DevTools protocol: once with the
    current value, and, when the browser reconnects, with two changes."""
    answers = [
        event_stream({"namespace": NAMESPACE, "key": "a-visits", "value": 5, "version": 1}),
        event_stream(
            {"namespace": NAMESPACE, "key": "a-visits", "value": 6, "version": 2},
            {"namespace": NAMESPACE, "key": "a-visits", "value": 1234, "version": 3},
        ),
    ]
    asked: list[str] = []

    def answer_streams() -> None:
        for paused in browser.take("Fetch.requestPaused"):
            url = paused["request"]["url"]
            asked.append(url)
            streamed = url.endswith("/a-visits/events")
            if streamed and not answers:
                continue  # its next reconnection waits: the stream stays open as far as the page knows
            body = answers.pop(0) if streamed else ""
            browser.send(
                "Fetch.fulfillRequest",
                requestId=paused["requestId"],
                responseCode=200 if body else 404,
                responseHeaders=[{"name": "Content-Type", "value": "text/event-stream"}],
                body=base64.b64encode(body.encode()).decode(),
            )

    browser.open(f"{server.url}/namespaces/{NAMESPACE}/page", intercept=("*/events",))
    shown = browser.wait_for(value_of("a-visits"), lambda v: v == "1234", between=answer_streams)
    assert shown == "1234"
    assert browser.evaluate(f"{row_of('a-visits')}.dataset.live") == "stream"
    # The other streamed counters got a 404 before any message: they poll their counter.
    assert (
        browser.wait_for(f"{row_of('big')}.dataset.live", lambda v: v == "poll", between=answer_streams)
        == "poll"
    )
    streamed = {url.rsplit("/", 2)[1] for url in asked}
    assert streamed == {"a-visits", "big", "c00", "c01"}, asked
    assert len(streamed) == LIVE_STREAMS
