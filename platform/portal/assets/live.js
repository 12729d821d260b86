// slipway portal: small progressive enhancement. Every page works without it.
"use strict";
(function () {
  // Live countdowns: <time data-expires="RFC 3339">.
  function left(at) {
    var s = Math.floor((Date.parse(at) - Date.now()) / 1000);
    if (isNaN(s)) return null;
    if (s <= 0) return "expired";
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    if (h === 0) return m === 0 ? s + "s" : m + "m";
    return h < 48 ? h + "h " + m + "m" : Math.floor(h / 24) + "d " + (h % 24) + "h";
  }
  function tick() {
    document.querySelectorAll("time[data-expires]").forEach(function (t) {
      var text = left(t.getAttribute("data-expires"));
      if (text !== null) t.textContent = text;
    });
  }
  tick();
  setInterval(tick, 1000);

  // Log follow: a checkbox [data-follow="URL"] polls the plain-text tail into its <pre>.
  document.querySelectorAll("input[data-follow]").forEach(function (box) {
    var pre = document.getElementById(box.getAttribute("aria-controls"));
    var timer = null;
    function poll() {
      fetch(box.getAttribute("data-follow"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (text) {
          var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.textContent = text;
          if (atEnd) pre.scrollTop = pre.scrollHeight;
        })
        .catch(function () { box.checked = false; stop(); });
    }
    function stop() { if (timer) { clearInterval(timer); timer = null; } }
    box.hidden = false;
    if (box.labels) box.labels.forEach(function (l) { l.hidden = false; });
    box.addEventListener("change", function () {
      stop();
      if (box.checked) { poll(); timer = setInterval(poll, 2000); }
    });
  });
})();
