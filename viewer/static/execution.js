// The execution page: reveal the operation a link points at, the timeline's hover text, the
// graph's panel, and following the execution live while it can still change.
// Everything shown comes from the server's rendering (escaped there); this file only moves
// it into place, and writes text with textContent.
(function () {
  "use strict";

  function page() { return document.querySelector("[data-execution]"); }
  if (!page()) return;

  // A notice ("Callback success sent.") is for the action just done: a reload, a bookmark or
  // a shared link must not say it again, so it leaves the address once shown.
  var address = new URL(location.href);
  if (address.searchParams.has("notice")) {
    address.searchParams.delete("notice");
    history.replaceState(history.state, "", address.pathname + address.search + address.hash);
  }

  // --- open (and scroll to) the operation a link points at: its tree entry, its timeline group
  function reveal(id) {
    var el = document.getElementById(id);
    if (!el) return;
    for (var p = el; p; p = p.parentElement) if (p.tagName === "DETAILS") p.open = true;
    el.scrollIntoView({block: "center"});
    el.classList.add("flash");
    setTimeout(function () { el.classList.remove("flash"); }, 1600);
  }
  window.durascopeReveal = reveal;
  window.addEventListener("hashchange", function () { reveal(location.hash.slice(1)); });
  if (location.hash) reveal(location.hash.slice(1));

  // --- the timeline's hover text, at once and beside the pointer (a title waits a second)
  var tip = document.createElement("div");
  tip.className = "tl-tooltip";
  tip.hidden = true;
  document.body.appendChild(tip);
  document.addEventListener("mouseover", function (ev) {
    var bar = ev.target.closest ? ev.target.closest(".tl .bar") : null;
    if (!bar) { tip.hidden = true; return; }
    if (bar.title) { bar.dataset.tip = bar.title; bar.removeAttribute("title"); }
    tip.textContent = bar.dataset.tip || "";
    tip.hidden = !tip.textContent;
  });
  document.addEventListener("mousemove", function (ev) {
    if (tip.hidden) return;
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8) + "px";
    tip.style.top = (ev.clientY + 16) + "px";
  });

  // --- a box of the graph opens its operation in the panel beside it
  function imported(html, selector) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var found = selector ? doc.querySelector(selector) : null;
    var nodes = found ? [found] : Array.from(doc.body.childNodes);
    return nodes.map(function (n) { return document.importNode(n, true); });
  }

  function selected() {
    var el = document.querySelector("#node-panel .operation-panel");
    return el ? el.dataset.op : null;
  }

  function select(id) {
    document.querySelectorAll("svg.graph .selected").forEach(function (el) { el.classList.remove("selected"); });
    if (!id) return;
    document.querySelectorAll('svg.graph [data-op="' + CSS.escape(id) + '"]').forEach(function (el) {
      el.classList.add("selected");
    });
  }

  function openPanel(id) {
    var panel = document.getElementById("node-panel");
    if (!panel) return;
    select(id);
    panel.classList.add("loading");
    fetch(page().dataset.operations + "/" + encodeURIComponent(id) + "?partial=1",
          {headers: {"Accept": "text/html"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var now = document.getElementById("node-panel");
        now.replaceChildren.apply(now, imported(html));
        if (window.durascopeLocalize) window.durascopeLocalize(now);
        now.classList.remove("loading");
      })
      .catch(function () { panel.classList.remove("loading"); location.hash = "op-" + id; });
  }

  document.addEventListener("click", function (ev) {
    var link = ev.target.closest ? ev.target.closest("svg.graph a[data-op], #node-panel a[data-op-link]") : null;
    if (!link || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    ev.preventDefault();
    openPanel(link.dataset.op || link.dataset.opLink);
  });
  select(selected());

  // --- an entry of the operations list that was left out of a large page loads when opened
  document.addEventListener("toggle", function (ev) {
    var details = ev.target;
    if (!details.open || !details.classList || !details.classList.contains("op")) return;
    var body = details.querySelector(":scope > .op-body[data-load]");
    if (!body || body.dataset.loading) return;
    body.dataset.loading = "1";
    fetch(body.dataset.load, {headers: {"Accept": "text/html"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var fresh = imported(html, ".op-body")[0];
        if (!fresh) return;
        body.replaceWith(fresh);
        if (window.durascopeLocalize) window.durascopeLocalize(fresh);
      })
      .catch(function () { delete body.dataset.loading; });
  }, true);

  // --- live: while the execution can change, watch its last event; on a new one, show the
  // page as the server renders it now, keeping what the reader opened, selected and typed.
  function editing() {
    var active = document.activeElement;
    if (active && active.closest && active.closest("[data-execution] form")) return true;
    return Array.from(document.querySelectorAll("[data-execution] form textarea, [data-execution] form input[type=text]"))
      .some(function (el) { return el.value.trim() !== ""; });
  }

  function openIds() {
    return Array.from(document.querySelectorAll("[data-execution] details[id][open], [data-execution] details[data-op]"))
      .map(function (el) { return [el.id ? "#" + el.id : '[data-op="' + el.dataset.op + '"]', el.open]; });
  }

  function refresh() {
    var url = location.pathname + location.search;
    return fetch(url, {headers: {"Accept": "text/html"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var fresh = imported(html, "[data-execution]")[0];
        if (!fresh) return;
        var opened = openIds(), keep = selected(), scroll = window.scrollY;
        page().replaceWith(fresh);
        opened.forEach(function (pair) {
          var el = fresh.querySelector("details" + (pair[0][0] === "#" ? pair[0] : pair[0]));
          if (el) el.open = pair[1];
        });
        if (window.durascopeLocalize) window.durascopeLocalize(fresh);
        window.scrollTo(0, scroll);
        if (keep && keep !== selected()) openPanel(keep); else select(selected());
      });
  }

  function watch() {
    var p = page();
    if (!p || p.dataset.done === "1") return;
    fetch(p.dataset.head, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (head) {
        var now = page();
        if (String(head.last_event_id) === now.dataset.lastEvent && head.status === now.dataset.status) return null;
        if (editing() && !head.done) return null;  // not while someone types a callback answer
        return refresh();
      })
      .catch(function () { /* the next look retries */ })
      .then(function () { setTimeout(watch, document.hidden ? 5000 : 1000); });
  }
  setTimeout(watch, 1000);
})();
