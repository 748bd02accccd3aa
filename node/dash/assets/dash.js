// Keeps the page live: on every update the server announces (server-sent
// events), and every 5 s regardless so that "seen" ages and stale miners
// show, it fetches the page's sections and swaps them in.
"use strict";
(function () {
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch("parts", { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (parts) {
        Object.keys(parts).forEach(function (id) {
          var el = document.getElementById(id);
          if (el) el.innerHTML = parts[id];
        });
      })
      .catch(function () {})
      .finally(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var conn = document.getElementById("conn");
  var es = new EventSource("api/stream");
  es.addEventListener("update", refresh);
  es.onopen = function () { conn.textContent = "live"; };
  es.onerror = function () { conn.textContent = "reconnecting…"; };
  setInterval(refresh, 5000);
})();
