// jobctl's dashboard: live parts of the page fetched again when the event stream says
// something happened, relative times kept current, buttons that call the API.
// Data is only ever put into the page as text (textContent) or as HTML the server rendered
// with escaping; never as markup built here from data.
"use strict";

(function () {
  const EVENT_TYPES = [
    "run.started", "run.output", "run.finished", "run.skipped", "run.missed", "run.waiting",
    "job.added", "job.changed", "job.removed", "daemon.started", "daemon.stopped",
  ];
  const live = document.getElementById("live");
  const connection = document.getElementById("connection");
  const notice = document.getElementById("notice");
  // At most one fetch of the live part a second: pages are rendered in the daemon's loop.
  const MIN_GAP_MS = 1000;
  let refreshing = false;
  let pending = false;
  let lastRefresh = 0;
  let pollTimer = null;

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function setConnection(text) {
    if (connection) connection.textContent = text;
  }

  function showNotice(text, good, link) {
    notice.hidden = false;
    notice.className = "notice " + (good ? "notice-good" : "notice-bad");
    notice.textContent = (good ? "✓ " : "✗ ") + text;
    if (link) {
      const anchor = document.createElement("a");
      anchor.href = link.href;
      anchor.textContent = link.text;
      notice.append(" ", anchor);
    }
  }

  function fragmentUrl() {
    const url = new URL(live.dataset.live, window.location.origin);
    url.searchParams.set("fragment", "1");
    return url;
  }

  async function refresh() {
    if (!live) return;
    if (refreshing) {
      pending = true;
      return;
    }
    const wait = lastRefresh + MIN_GAP_MS - Date.now();
    if (wait > 0) {
      refreshing = true;
      setTimeout(function () { refreshing = false; pending = false; refresh(); }, wait);
      return;
    }
    refreshing = true;
    lastRefresh = Date.now();
    try {
      const response = await fetch(fragmentUrl(), { credentials: "same-origin" });
      if (response.status === 401) {
        setConnection("signed out: run `jobctl dashboard` again");
        return;
      }
      if (response.ok) replaceLive(await response.text());
    } catch (error) {
      setConnection("offline");
    } finally {
      refreshing = false;
      if (pending) {
        pending = false;
        refresh();
      }
    }
  }

  // What identifies the focused element across a refresh: its id, else what it leads to
  // (a link's href, a button's API URL), so that keyboard focus stays where it was.
  function focusKey(element) {
    if (!element || !live.contains(element) || element === live) return null;
    return {
      id: element.id,
      name: element.localName,
      href: element.getAttribute("href"),
      url: element.getAttribute("data-url"),
    };
  }

  function refocus(key) {
    if (!key) return;
    let again = key.id ? document.getElementById(key.id) : null;
    if (!again) {
      again = Array.from(live.querySelectorAll(key.name)).find(function (candidate) {
        return candidate.getAttribute("href") === key.href &&
          candidate.getAttribute("data-url") === key.url;
      });
    }
    if (again) again.focus({ preventScroll: true });
  }

  function replaceLive(html) {
    const focused = focusKey(document.activeElement);
    const output = document.getElementById("output");
    const atBottom = output && output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
    const parsed = new DOMParser().parseFromString(html, "text/html");
    live.replaceChildren(...parsed.body.childNodes);
    const newOutput = document.getElementById("output");
    if (newOutput && atBottom) newOutput.scrollTop = newOutput.scrollHeight;
    refocus(focused);
    tick();
  }

  function listen() {
    if (!window.EventSource) {
      poll();
      return;
    }
    const source = new EventSource("/api/v1/events");
    source.onopen = function () {
      setConnection("live");
      stopPolling();
    };
    source.onerror = function () {
      setConnection("reconnecting…");
      poll();
    };
    source.onmessage = refresh;
    EVENT_TYPES.forEach(function (type) { source.addEventListener(type, refresh); });
  }

  function poll() {
    if (pollTimer === null) pollTimer = setInterval(refresh, 3000);
  }

  function stopPolling() {
    if (pollTimer !== null) {
      clearInterval(pollTimer);
      pollTimer = null;
    }
  }

  function relative(seconds) {
    const future = seconds > 0;
    let value = Math.abs(seconds);
    let text;
    if (value < 1) return "now";
    if (value < 60) text = Math.round(value) + "s";
    else if (value < 3600) text = Math.floor(value / 60) + "m" + (value < 600 ? (Math.round(value) % 60) + "s" : "");
    else if (value < 86400) text = Math.floor(value / 3600) + "h" + Math.floor((value % 3600) / 60) + "m";
    else text = Math.floor(value / 86400) + "d" + Math.floor((value % 86400) / 3600) + "h";
    return future ? "in " + text : text + " ago";
  }

  function tick() {
    const now = Date.now();
    document.querySelectorAll("time[data-relative]").forEach(function (element) {
      const at = Date.parse(element.getAttribute("datetime"));
      if (!Number.isNaN(at)) element.textContent = relative((at - now) / 1000);
    });
    document.querySelectorAll("time[data-elapsed]").forEach(function (element) {
      const at = Date.parse(element.getAttribute("datetime"));
      if (!Number.isNaN(at)) element.textContent = relative((now - at) / 1000).replace(" ago", "");
    });
  }

  async function act(button) {
    const question = button.dataset.confirm;
    if (question && !window.confirm(question)) return;
    button.disabled = true;
    try {
      const response = await fetch(button.dataset.url, {
        method: button.dataset.method,
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrfToken(), "Accept": "application/json" },
      });
      let body = null;
      if (response.status !== 204) {
        try { body = await response.json(); } catch (error) { body = null; }
      }
      if (!response.ok) {
        showNotice((body && body.error) || ("failed: HTTP " + response.status), false);
      } else if (body && body.run !== undefined && body.job !== undefined) {
        showNotice("queued run " + body.run + " of " + body.job, true,
          { href: "/runs/" + encodeURIComponent(body.run), text: "see run " + body.run });
      } else if (body && body.deleted !== undefined) {
        showNotice("deleted " + body.deleted + " runs", true);
      } else if (body && body.status !== undefined && body.run !== undefined) {
        showNotice("run " + body.run + ": " + body.status, true);
      } else {
        showNotice(button.textContent.trim() + ": done", true);
      }
    } catch (error) {
      showNotice("the daemon did not answer", false);
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button.action");
    if (button) act(button);
  });
  setInterval(tick, 1000);
  setInterval(refresh, 30000);  // what no event tells: time passing (next fires, missed slots)
  tick();
  if (live) listen();
})();
