// Instants arrive rendered in UTC, so pages read right without JavaScript. Here they are
// shown in the browser's time zone instead; the UTC value stays in each tooltip and the
// header says which zone the page uses. Only text is written (textContent), never markup.
(function () {
  "use strict";

  function pad(n, width) { return String(n).padStart(width || 2, "0"); }

  function localText(d) {
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":"
      + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
  }

  function zoneLabel(d) {
    var offset = -d.getTimezoneOffset();
    var sign = offset < 0 ? "-" : "+";
    var utc = "UTC" + sign + pad(Math.floor(Math.abs(offset) / 60)) + ":" + pad(Math.abs(offset) % 60);
    var name = "";
    try { name = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { name = ""; }
    if (offset === 0 && (!name || name === "UTC" || name === "Etc/UTC")) return "UTC";
    return name ? name + " (" + utc + ")" : utc;
  }

  // A clock time alone (the timeline's ticks): to the second, or to the millisecond.
  function clockText(d, ms) {
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds())
      + (ms ? "." + pad(d.getMilliseconds(), 3) : "");
  }

  // <time datetime="…Z"> elements (data-format="clock-s" or "clock-ms" for a clock time
  // alone), and <option data-datetime="…Z" data-label="…"> (an option holds text only, so
  // its label comes separately).
  function localize(root) {
    root.querySelectorAll("time[datetime], option[data-datetime]").forEach(function (el) {
      var iso = el.tagName === "TIME" ? el.dateTime : el.dataset.datetime;
      var d = new Date(iso);
      if (isNaN(d.getTime())) return;
      var format = el.dataset.format || "";
      el.textContent = (el.dataset.label || "") + (format.indexOf("clock-") === 0
        ? clockText(d, format === "clock-ms") : localText(d));
      el.classList.add("local");
    });
    root.querySelectorAll(".tl-zone").forEach(function (el) { el.textContent = "time (" + zoneLabel(new Date()) + ")"; });
  }

  window.durascopeLocalize = localize;
  window.durascopeZone = zoneLabel;
  document.addEventListener("DOMContentLoaded", function () {
    localize(document);
    var zone = document.getElementById("tz");
    if (zone) {
      zone.textContent = "Times in " + zoneLabel(new Date());
      zone.title = "your browser's time zone; hover a time for UTC";
    }
  });
})();
