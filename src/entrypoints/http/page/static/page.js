// The live page of a namespace's counters: lists them a page at a time, keeps their values
// current and offers each badge's embed snippets. Everything it reads comes from this origin.
//
// How a value stays current:
// - the first LIVE_STREAMS counters listed get a stream of server-sent events each
//   (`<counter>/events`); a browser opens at most 6 connections to one origin over HTTP/1.1 and
//   every open stream holds one, so more streams would stall the page's other requests;
// - a counter whose stream fails before its first message (no such route yet, an error), or
//   whose stream the browser gives up on, reads its counter every POLL_MS instead;
// - every other counter is refreshed from the listing every REFRESH_MS: one request reads up to
//   1000 counters, where one request per counter would not scale to a large namespace.
// Nothing is read while the page is hidden.
"use strict";

(() => {
  const PAGE_SIZE = 50;
  const LIVE_STREAMS = 4;
  const POLL_MS = 3000;
  const REFRESH_MS = 5000;
  const REFRESH_PAGE = 1000; // the listing's largest page

  const main = document.getElementById("page");
  const counters = main.dataset.counters; // "/counters" or "/namespaces/{namespace}/counters"
  const tbody = document.querySelector("#counters tbody");
  const more = document.getElementById("more");
  const status = document.getElementById("status");

  const rows = new Map(); // key -> {key, value, live, valueCell, badge}
  let nextCursor = null;
  let streams = 0;
  let lastKey = null; // the last key listed: refreshes read the listing up to it
  let refreshing = false;

  const counterPath = (key) => `${counters}/${encodeURIComponent(key)}`;
  const badgePath = (key) => `${counterPath(key)}/badge.svg`;
  const listPath = (limit, cursor) =>
    `${counters}?limit=${limit}` + (cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function say(text) {
    status.textContent = text;
  }

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  // Values are signed 64-bit integers, beyond what a JavaScript number holds exactly: they are
  // kept as the decimal text the server sent (where the browser gives a reviver that text).
  function parseJson(text) {
    return JSON.parse(text, (name, value, context) =>
      (name === "count" || name === "value") && context && context.source !== undefined
        ? context.source
        : value,
    );
  }

  async function getJson(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    const text = await response.text();
    if (!response.ok) {
      let detail = `${response.status} ${response.statusText}`;
      try {
        detail = JSON.parse(text).detail || detail;
      } catch {
        // not a problem-details answer: the status says it
      }
      throw new Error(detail);
    }
    return parseJson(text);
  }

  // Absolute URLs, from the page's own origin: a snippet is pasted elsewhere.
  function snippets(key) {
    const url = location.origin + badgePath(key);
    return {
      Markdown: `![${key}](${url})`,
      HTML: `<img alt="${escapeHtml(key)}" src="${escapeHtml(url)}">`,
    };
  }

  function show(row, value) {
    const text = String(value);
    if (text === row.value) return;
    row.value = text;
    row.valueCell.textContent = text;
    // A badge shows nothing but the value, so the value is the right cache key.
    row.badge.src = `${badgePath(row.key)}?v=${encodeURIComponent(text)}`;
    row.badge.alt = `${row.key}: ${text}`;
  }

  async function copy(input, what) {
    try {
      await navigator.clipboard.writeText(input.value);
      say(`Copied the ${what}.`);
    } catch {
      // No clipboard here (a page served over plain HTTP from another host, or refused): the
      // text is selected for the reader to copy.
      input.focus();
      input.select();
      say(`Selected the ${what}: press Ctrl+C (⌘C on a Mac) to copy it.`);
    }
  }

  function element(tag, properties = {}, children = []) {
    const node = document.createElement(tag);
    Object.assign(node, properties);
    node.append(...children);
    return node;
  }

  function embedCell(key) {
    const cell = element("td", { className: "embed" });
    for (const [format, text] of Object.entries(snippets(key))) {
      const what = `${format} of the badge of ${key}`;
      const input = element("input", { type: "text", readOnly: true, value: text, className: "snippet" });
      input.dataset.format = format.toLowerCase();
      const button = element("button", { type: "button", textContent: "Copy" });
      button.setAttribute("aria-label", `Copy the ${what}`);
      button.addEventListener("click", () => copy(input, what));
      const name = element("span", { className: "format", textContent: format });
      cell.append(element("div", {}, [element("label", {}, [name, input]), button]));
    }
    return cell;
  }

  function addRow(counter) {
    const key = counter.name;
    if (rows.has(key)) return;
    const valueCell = element("td", { className: "value" });
    const badge = element("img", { className: "badge", decoding: "async" });
    const tr = element("tr", {}, [
      element("th", { scope: "row" }, [element("code", { textContent: key })]),
      valueCell,
      element("td", {}, [badge]),
      embedCell(key),
    ]);
    tr.dataset.key = key;
    tbody.append(tr);
    const row = { key, value: null, live: "listing", tr, valueCell, badge };
    rows.set(key, row);
    show(row, counter.count);
    if (streams < LIVE_STREAMS) {
      streams += 1;
      stream(row);
    } else {
      setLive(row, "listing");
      refreshLoop();
    }
  }

  function setLive(row, live) {
    row.live = live;
    row.tr.dataset.live = live;
  }

  function stream(row) {
    setLive(row, "stream");
    const source = new EventSource(`${counterPath(row.key)}/events`);
    let heard = false;
    source.addEventListener("message", (event) => {
      heard = true;
      let value;
      try {
        value = parseJson(event.data).value;
      } catch {
        // not the contract's JSON: the event is left out
      }
      if (typeof value === "string" || typeof value === "number") show(row, value);
    });
    source.addEventListener("error", () => {
      // After a message the browser reconnects by itself (sending the last event's id); before
      // one, or once it has given up, the counter is polled instead.
      if (!heard || source.readyState === EventSource.CLOSED) {
        source.close();
        poll(row);
      }
    });
  }

  async function poll(row) {
    setLive(row, "poll");
    for (;;) {
      if (!document.hidden) {
        try {
          show(row, (await getJson(counterPath(row.key))).count);
        } catch {
          // keep the last value shown; the next read may succeed
        }
      }
      await sleep(POLL_MS);
    }
  }

  // Re-reads the listing from its start up to the last key listed, a large page at a time,
  // and updates the counters that have neither a stream nor a poll of their own.
  async function refreshLoop() {
    if (refreshing) return;
    refreshing = true;
    for (;;) {
      await sleep(REFRESH_MS);
      if (document.hidden) continue;
      try {
        let cursor = null;
        do {
          const page = await getJson(listPath(REFRESH_PAGE, cursor));
          for (const counter of page.counters) {
            const row = rows.get(counter.name);
            if (row && row.live === "listing") show(row, counter.count);
          }
          const last = page.counters.at(-1);
          cursor = last && last.name >= lastKey ? null : page.next_cursor;
        } while (cursor !== null);
      } catch {
        // keep the values shown; the next refresh may succeed
      }
    }
  }

  function summary() {
    if (rows.size === 0) return "No counters in this namespace yet.";
    const live = Math.min(rows.size, LIVE_STREAMS);
    const rest = rows.size - live;
    return (
      `${rows.size} counter${rows.size === 1 ? "" : "s"} shown` +
      (nextCursor === null ? "" : ", more to load") +
      `. The first ${live} follow the server as it changes them` +
      (rest > 0 ? `; the other ${rest} are read again every ${REFRESH_MS / 1000} seconds.` : ".")
    );
  }

  async function loadMore() {
    more.disabled = true;
    try {
      const page = await getJson(listPath(PAGE_SIZE, nextCursor));
      for (const counter of page.counters) addRow(counter);
      if (page.counters.length > 0) lastKey = page.counters.at(-1).name;
      nextCursor = page.next_cursor;
      more.textContent = "More counters";
      more.hidden = nextCursor === null;
      say(summary());
    } catch (error) {
      say(`Could not load the counters: ${error.message}`);
      more.textContent = "Try again";
      more.hidden = false;
    } finally {
      more.disabled = false;
    }
  }

  more.addEventListener("click", loadMore);
  loadMore();
})();
