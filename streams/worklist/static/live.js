// Live parts of the pages: every element with data-live="URL" is replaced by the
// server-rendered fragment at URL every few seconds (the server escapes all text).
// Keyboard on the worklist: j/k move between rows, Enter opens, / focuses the search.
"use strict";
(function () {
  const PERIOD_MS = 2000;

  async function refresh(el) {
    if (document.hidden) return;
    let response;
    try {
      response = await fetch(el.dataset.live, {credentials: "same-origin", headers: {"Accept": "text/html"}});
    } catch (e) {
      return; // offline for a moment: try again next period
    }
    if (response.status === 401 || response.redirected) { location.reload(); return; }
    if (!response.ok) return;
    const html = await response.text();
    const focused = document.activeElement && document.activeElement.closest("[data-customer]");
    const key = focused ? focused.dataset.customer : null;
    el.innerHTML = html;
    if (key !== null) {
      const again = Array.from(el.querySelectorAll("[data-customer]")).find((row) => row.dataset.customer === key);
      if (again) again.querySelector("a").focus();
    }
  }

  function rowLinks() {
    return Array.from(document.querySelectorAll("#rows a.cid"));
  }

  function onKey(event) {
    const tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "/") {
      const q = document.getElementById("q");
      if (q) { event.preventDefault(); q.focus(); }
      return;
    }
    if (event.key !== "j" && event.key !== "k") return;
    const links = rowLinks();
    if (!links.length) return;
    const at = links.indexOf(document.activeElement);
    const next = event.key === "j" ? Math.min(links.length - 1, at + 1) : Math.max(0, at - 1);
    links[at === -1 ? 0 : next].focus();
    event.preventDefault();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      setInterval(function () { refresh(el); }, PERIOD_MS);
    });
    document.addEventListener("keydown", onKey);
  });
})();
