// computepool dashboard: refresh the live panels of this page without reloading it.
// The server renders every panel; this asks the same URL for {panel id: html} (X-Fragment)
// every data-poll seconds and swaps the bodies that changed. Pauses while the tab is hidden.
(function () {
  "use strict";
  var every = parseFloat(document.body.getAttribute("data-poll") || "0");
  var badge = document.getElementById("live");
  var failures = 0;

  function mark(ok) {
    if (!badge) return;
    var t = new Date();
    badge.textContent = ok ? "live · " + t.toTimeString().slice(0, 8) : "reconnecting…";
    badge.className = ok ? "live" : "live stale";
  }

  function apply(panels) {
    Object.keys(panels).forEach(function (id) {
      var el = document.getElementById(id);
      var body = el && el.querySelector(".body");
      if (body && body.getAttribute("data-html") !== panels[id]) {
        body.innerHTML = panels[id];
        body.setAttribute("data-html", panels[id]);
      }
    });
    document.body.setAttribute("data-refreshed", String(Date.now()));
  }

  function poll() {
    if (document.hidden) return schedule();
    fetch(location.pathname + location.search, {
      headers: { "X-Fragment": "1", "Accept": "application/json" },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (r) {
      if (r.status === 401) {
        location.href = "/ui/login?next=" + encodeURIComponent(location.pathname + location.search);
        return null;
      }
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (panels) {
      if (panels) { apply(panels); failures = 0; mark(true); }
      schedule();
    }).catch(function () {
      failures += 1; mark(false); schedule();
    });
  }

  function schedule() {
    setTimeout(poll, every * 1000 * Math.min(1 + failures, 5));
  }

  if (every > 0) { mark(true); schedule(); } else if (badge) { badge.textContent = ""; }
})();
