// The executions list follows status changes live (the status-change feed, SSE) while
// anything on it can change: on the newest-first first page new executions appear at the
// top; elsewhere the rows shown follow their own changes. A change sets a row's badge at
// once (text only); then this page is fetched again, at most once per 300 ms, and its rows
// and status counts replace the ones shown, so everything comes from the same server-side
// rendering (escaped) as at page load, not from a second formatter here.
(function () {
  "use strict";
  const table = document.querySelector("table.executions");
  if (!table || !table.dataset.follow || !window.EventSource) return;
  const followNew = table.dataset.follow === "new";
  let timer = null, asked = 0, shown = 0;

  function rows() {
    const out = new Map();
    table.querySelectorAll("tr[data-arn]").forEach(function (tr) { out.set(tr.dataset.arn, tr); });
    return out;
  }

  function refresh() {
    timer = null;
    const mine = ++asked;
    fetch(window.location.href, {headers: {"Accept": "text/html"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        if (mine < shown) return;  // a later refresh already answered
        shown = mine;
        const fresh = new DOMParser().parseFromString(html, "text/html");
        if (followNew) {
          const body = fresh.querySelector("table.executions tbody");
          if (body) table.querySelector("tbody").replaceWith(document.importNode(body, true));
        } else {
          const current = rows();
          fresh.querySelectorAll("tr[data-arn]").forEach(function (row) {
            const tr = current.get(row.dataset.arn);
            if (tr) tr.replaceChildren(...Array.from(row.children).map(function (td) { return document.importNode(td, true); }));
          });
        }
        if (window.durascopeLocalize) window.durascopeLocalize(table);
        const pager = fresh.querySelector("nav.pager");
        if (followNew && pager) document.querySelector("nav.pager").replaceWith(document.importNode(pager, true));
        const chips = fresh.querySelector("nav.chips"), count = fresh.querySelector("h1 .muted");
        if (chips) document.querySelector("nav.chips").replaceWith(document.importNode(chips, true));
        if (count) document.querySelector("h1 .muted").replaceWith(document.importNode(count, true));
      })
      .catch(function () { /* the badge already shows the change; the next one retries */ });
  }

  const source = new EventSource("/api/v1/feed");
  source.addEventListener("open", function () { table.dataset.live = "open"; });
  source.addEventListener("status-change", function (message) {
    const change = JSON.parse(message.data).detail || {};
    const tr = rows().get(change.durableExecutionArn);
    if (tr) {
      const badge = tr.querySelector("td.status .badge");
      badge.textContent = change.status;
      badge.className = "badge s-" + String(change.status).toLowerCase();
      tr.classList.add("changed");
    } else if (!followNew) {
      return;  // not on this page, and no new ones belong here
    }
    if (timer === null) timer = setTimeout(refresh, 300);
  });
})();
