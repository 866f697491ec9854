// Live countdowns for <time data-countdown="ISO instant">, copy buttons, auto-submitting selects, and keyboard access to tables that
// scroll sideways (a phone). No inline scripts (CSP).
(function () {
  "use strict";
  function fmt(ms) {
    var past = ms < 0, s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var text = d > 0 ? d + "d " + h + "h" : h > 0 ? h + "h " + m + "m" : m + "m " + (sec < 10 ? "0" : "") + sec + "s";
    return (past ? "−" : "") + text;
  }
  var serverNow = Date.parse(document.body ? document.body.getAttribute("data-server-now") : "");
  var offset = 0;  // the server's clock may be a manual one: count down against it, not the browser's
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-countdown"));
      if (isNaN(due)) return;
      var left = due - (now + offset);
      el.textContent = fmt(left);
      el.classList.toggle("overdue", left < 0);
      el.classList.toggle("soon", left >= 0 && left < 4 * 3600 * 1000);
    });
  }
  // A table wider than its box scrolls inside it: such a box takes the keyboard focus (tabindex 0, then the arrow keys
  // scroll it), a box that does not scroll stays out of the tab order.
  function scrollables() {
    document.querySelectorAll(".table-wrap").forEach(function (el) {
      if (el.scrollWidth > el.clientWidth + 1) el.setAttribute("tabindex", "0");
      else if (el.getAttribute("tabindex") === "0") el.removeAttribute("tabindex");
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    scrollables();
    window.addEventListener("resize", scrollables);
    serverNow = Date.parse(document.body.getAttribute("data-server-now") || "");
    offset = isNaN(serverNow) ? 0 : serverNow - Date.now();
    tick();
    setInterval(tick, 1000);
    // M5: a "copy" button next to a text to paste elsewhere (the return address); shown only where the browser can.
    document.querySelectorAll("button[data-copy]").forEach(function (btn) {
      if (!navigator.clipboard) return;
      btn.hidden = false;
      btn.addEventListener("click", function () {
        var el = document.getElementById(btn.getAttribute("data-copy"));
        if (!el) return;
        navigator.clipboard.writeText(el.textContent.trim()).then(function () {
          btn.textContent = btn.getAttribute("data-copied");
        });
      });
    });
    document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () { el.form.submit(); });
    });
  });
  document.addEventListener("htmx:afterSwap", function () { tick(); scrollables(); });
})();
