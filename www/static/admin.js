/* The admin page: live admin_stats (from each push daemon every 5 s), the
 * system_log stream, and the active signals with live fire counts, followed
 * through sortie-client.js. Needs an admin (or service) token: ?token= once
 * (kept for the session), or the sortie_token cookie. */
import { createClient } from "./sortie-client.js";
import { takeToken, storedToken } from "./token.js";

(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var token = takeToken();

  function get(path) {
    var h = token ? { Authorization: "Bearer " + token } : {};
    return fetch(path, { headers: h, credentials: "same-origin" }).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (b) {
        return { status: r.status, body: b };
      });
    });
  }

  function text(id, v) {
    var el = $(id);
    if (el && el.textContent !== String(v)) el.textContent = String(v);
  }

  /* ---- figures: the connections are summed over the daemons that spoke in
   * the last 15 s ---- */
  var daemons = {};

  function showConnections() {
    var now = Date.now(), sse = 0, ws = 0, poll = 0;
    Object.keys(daemons).forEach(function (k) {
      var d = daemons[k];
      if (now - d.at > 15000) { delete daemons[k]; return; }
      sse += d.c.sse || 0; ws += d.c.ws || 0; poll += d.c.poll || 0;
    });
    text("conn-total", sse + ws + poll);
    text("conn-split", ws + " · " + sse + " · " + poll);
  }

  /* the missions most watched now (top_watched: [{signal_id, watching}], most
   * first), from GET /api/admin/stats and each admin_stats event */
  function showTopWatched(top) {
    var list = $("top-watched");
    while (list.firstChild) list.removeChild(list.firstChild);
    top.forEach(function (m) {
      var li = document.createElement("li");
      var id = document.createElement("span");
      id.className = "mono";
      id.textContent = m.signal_id;
      var n = document.createElement("strong");
      n.textContent = String(m.watching);
      li.appendChild(id);
      li.appendChild(document.createTextNode(" · "));
      li.appendChild(n);
      li.appendChild(document.createTextNode(" watching"));
      list.appendChild(li);
    });
    $("top-watched-empty").hidden = top.length > 0;
  }

  function showFigures(s) {
    if (s.fires_last_minute !== undefined) text("fires-per-minute", s.fires_last_minute);
    if (s.active_signals !== undefined) text("active-signals", s.active_signals);
    if (Array.isArray(s.top_watched)) showTopWatched(s.top_watched);
    if (s.daemon && s.connections) {
      daemons[s.daemon] = { c: s.connections, at: Date.now() };
      showConnections();
    }
  }

  /* ---- signals ---- */
  var rows = {};

  function endsIn(unix) {
    try { return new Date(unix * 1000).toLocaleTimeString(); } catch (e) { return String(unix); }
  }

  function addSignal(s) {
    if (s.status !== "ACTIVE" || rows[s.id]) return;
    var tr = document.createElement("tr");
    tr.id = "signal-" + s.id;
    var cells = [s.id, s.symbol, s.direction, s.fire_count, endsIn(s.expires_at)];
    cells.forEach(function (v, i) {
      var td = document.createElement("td");
      if (i === 0) {
        var a = document.createElement("a");
        a.href = "/mission/" + encodeURIComponent(s.id);
        a.textContent = v;
        td.appendChild(a);
      } else {
        td.textContent = v;
      }
      if (i === 3) { td.className = "num"; td.setAttribute("data-count", ""); }
      tr.appendChild(td);
    });
    $("signals").tBodies[0].appendChild(tr);
    rows[s.id] = tr;
    $("signals-empty").hidden = true;
  }

  function setCount(id, n) {
    var tr = rows[id];
    if (tr) tr.querySelector("[data-count]").textContent = n;
  }

  function removeSignal(id) {
    var tr = rows[id];
    if (!tr) return;
    tr.parentNode.removeChild(tr);
    delete rows[id];
    $("signals-empty").hidden = Object.keys(rows).length > 0;
  }

  /* ---- the log ---- */
  function logLine(ts, level, source, message) {
    var li = document.createElement("li");
    li.className = level || "info";
    var t = document.createElement("time");
    t.textContent = new Date(ts).toLocaleTimeString();
    li.appendChild(t);
    li.appendChild(document.createTextNode("[" + (source || "?") + "] " + message));
    var log = $("log");
    log.insertBefore(li, log.firstChild);
    while (log.children.length > 200) log.removeChild(log.lastChild);
  }

  /* ---- start ---- */
  var live = null;

  function load() {
    return Promise.all([get("/api/admin/stats"), get("/api/signals?status=active&limit=60")])
      .then(function (r) {
        var stats = r[0], list = r[1];
        if (stats.status === 401 || stats.status === 403) {
          text("admin-message", stats.status === 401
            ? "Sign in with an admin token (open /admin?token=…)."
            : "This page needs an admin token.");
          return null;
        }
        if (stats.status !== 200 || list.status !== 200) {
          text("admin-message", "Could not load (" + stats.status + "/" + list.status + "). Retrying…");
          setTimeout(load, 3000);
          return null;
        }
        text("admin-message", "");
        showFigures(stats.body);
        list.body.signals.forEach(addSignal);
        $("signals-empty").hidden = list.body.signals.length > 0;
        return list.body.signals;
      })
      .catch(function () {
        text("admin-message", "Network error. Retrying…");
        setTimeout(load, 3000);
        return null;
      });
  }

  load().then(function (signals) {
    if (!signals) return;
    var channels = ["admin", "signals"].concat(signals.slice(0, 60).map(function (s) {
      return "mission:" + s.id;
    }));
    live = createClient({ share: true, getToken: function () { return storedToken() || token; } });
    window.sortieLive = live; // for the browser tests and the curious
    live.on("token", function (t) { token = t; });
    live.on("state", function (s) {
      var st = s.state, tr = s.transport;
      var b = $("badge");
      b.className = "badge badge-" + st;
      b.setAttribute("data-state", st);
      b.setAttribute("data-transport", tr || "");
      text("badge-state", { live: "LIVE", reconnecting: "RECONNECTING", offline: "OFFLINE",
                            expired: "SIGNED OUT" }[st]);
      text("badge-transport", tr || "");
    });
    function onEvent(e) {
      var d = e.data || {};
      if (e.type === "reset") load(); // history lost: the state again
      else if (e.type === "admin_stats") showFigures(d);
      else if (e.type === "system_log") logLine(e.ts, d.level, d.source, d.message);
      else if (e.type === "signal_created") {
        addSignal(d);
        logLine(e.ts, "info", "signals", "new signal " + d.id);
      } else if (e.type === "fire_count_update") setCount(d.signal_id, d.count);
      else if (e.type === "mission_status_update" && d.status !== "ACTIVE") removeSignal(d.signal_id);
    }
    channels.forEach(function (ch) { live.subscribe(ch, onEvent); });
    setInterval(showConnections, 5000);
    // signals created after the page opened are not followed live: their
    // counts (and anything missed) come from a refresh every 15 s
    setInterval(function () {
      get("/api/signals?status=active&limit=60").then(function (r) {
        if (r.status !== 200) return;
        var seen = {};
        r.body.signals.forEach(function (s) {
          seen[s.id] = true;
          addSignal(s);
          setCount(s.id, s.fire_count);
        });
        Object.keys(rows).forEach(function (id) { if (!seen[id]) removeSignal(id); });
      });
    }, 15000);
  });
})();
