// Click a .copyable (a callback id, a webhook secret) to copy its text; it says so for a moment.
document.addEventListener("click", function (ev) {
  "use strict";
  var el = ev.target.closest ? ev.target.closest(".copyable") : null;
  if (!el) return;
  var text = el.textContent.trim();
  var done = function () {
    el.classList.add("copied");
    el.dataset.copied = "copied";
    setTimeout(function () { el.classList.remove("copied"); delete el.dataset.copied; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () { selectText(el); });
  } else {
    selectText(el);  // plain http on another host: no clipboard API; select it for Ctrl+C
    try { if (document.execCommand("copy")) done(); } catch (e) { /* selected is enough */ }
  }
  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
});
