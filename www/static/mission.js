/* The mission page: makes the server-rendered briefing live. Reads the signal
 * from the page (<script type="application/json" id="mission-data">), the
 * user's state over REST, then follows mission:{id}, user:{me} and
 * market:{SYMBOL} through sortie-client.js. No framework, no build step, no
 * inline script. Money and prices are shown exactly as the API sends them. */
import { createClient, TRANSPORTS } from "./sortie-client.js";
import { takeToken, storedToken } from "./token.js";

(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var mission = JSON.parse($("mission-data").textContent);
  var sid = mission.id;

  /* the token: ?token= once, or the sortie_token cookie (token.js) */
  var token = takeToken();

  function headers(extra) {
    var h = extra || {};
    if (token) h.Authorization = "Bearer " + token;
    return h;
  }

  function api(method, path, body, extraHeaders) {
    var init = { method: method, headers: headers(extraHeaders), credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (r) {
      return r.text().then(function (t) {
        var j = null;
        try { j = t ? JSON.parse(t) : null; } catch (e) { /* not JSON */ }
        return { status: r.status, body: j, headers: r.headers };
      });
    });
  }

  /* ---- rendering ---- */

  var state = {
    status: mission.status,
    expiresAt: mission.expires_at,
    clockOffset: 0,          // server time - local time, seconds
    fired: false,
    firing: false,
    user: null,
    count: mission.fire_count
  };

  function text(id, v) {
    var el = $(id);
    if (el && el.textContent !== String(v)) el.textContent = String(v);
  }

  function showCount(n) {
    state.count = n;
    text("fire-count", n);
    text("fire-count-label", Number(n) === 1 ? "fire" : "fires");
  }

  /* the distinct users watching this mission (GET /api/missions and
   * presence_update); absent when the daemons count no presence */
  function showWatching(n) {
    if (typeof n !== "number") return;
    $("watching-line").hidden = false;
    text("watching", n);
    text("watching-label", n === 1 ? "trader" : "traders");
  }

  function showStats(s) {
    if (!s) return;
    text("stat-trades-today", s.trades_today);
    text("stat-pnl-7d", s.last_7d_pnl);
    text("stat-win-rate", s.win_rate + " %");
    text("stat-rank", s.rank === null || s.rank === undefined ? "—" : "#" + s.rank);
    var pnl = $("stat-pnl-7d");
    if (pnl) pnl.className = s.last_7d_pnl.charAt(0) === "-" ? "neg" : "pos";
    $("stats").setAttribute("aria-busy", "false");
  }

  function localTime(unix) {
    try {
      return new Date(unix * 1000).toLocaleString(undefined, {
        dateStyle: "medium", timeStyle: "short"
      });
    } catch (e) {
      return new Date(unix * 1000).toLocaleString();
    }
  }

  var badgeLabels = { live: "LIVE", reconnecting: "RECONNECTING", offline: "OFFLINE",
                      expired: "SIGNED OUT" };
  var transportLabels = {
    websocket: "WebSocket", sse: "Server-Sent Events", longpoll: "long-poll", polling: "polling"
  };

  function showBadge(st, transport) {
    var b = $("badge");
    b.className = "badge badge-" + st;
    text("badge-state", badgeLabels[st] || st);
    text("badge-transport", transportLabels[transport] || transport || "");
    b.setAttribute("data-state", st);
    b.setAttribute("data-transport", transport || "");
  }

  /* FIRE button: idle, loading, fired, expired, error */
  function showFire(kind, message) {
    var btn = $("fire");
    var msg = $("fire-message");
    btn.setAttribute("data-state", kind);
    btn.disabled = kind === "loading" || kind === "fired" || kind === "expired" || kind === "signin";
    btn.setAttribute("aria-busy", kind === "loading" ? "true" : "false");
    var labels = { idle: "FIRE", loading: "Firing…", fired: "FIRED", expired: "EXPIRED",
                   error: "FIRE", wait: "FIRE", signin: "FIRE" };
    text("fire-label", labels[kind] || "FIRE");
    msg.className = "fire-message fire-message-" + kind;
    text("fire-message", message || "");
  }

  function expire() {
    state.status = state.status === "ACTIVE" ? "EXPIRED" : state.status;
    text("status", state.status);
    document.body.setAttribute("data-status", state.status);
    text("countdown", state.status === "EXPIRED" ? "expired" : state.status.toLowerCase());
    if (!state.fired) showFire("expired", "This mission is " + state.status.toLowerCase() + ".");
  }

  function tick() {
    if (state.status !== "ACTIVE") return;
    var left = Math.floor(state.expiresAt - (Date.now() / 1000 + state.clockOffset));
    if (left <= 0) {
      expire();
      return;
    }
    var h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), s = left % 60;
    text("countdown", (h ? h + "h " : "") + (h || m ? String(m).padStart(2, "0") + "m " : "") +
      String(s).padStart(2, "0") + "s");
  }

  /* ---- state over REST ---- */

  function loadMission() {
    $("stats").setAttribute("aria-busy", "true");
    return api("GET", "/api/missions/" + encodeURIComponent(sid)).then(function (r) {
      if (r.status === 401) {
        showFire("signin", "Sign in to fire: your session is missing or has expired.");
        text("stats-message", "Sign in to see your stats.");
        $("stats").setAttribute("aria-busy", "false");
        return null;
      }
      if (r.status !== 200 || !r.body) {
        text("stats-message", "Could not load your state (" + r.status + "). Retrying…");
        setTimeout(loadMission, 3000);
        return null;
      }
      var b = r.body;
      text("stats-message", "");
      state.clockOffset = b.server_time - Date.now() / 1000;
      state.user = b.user_id;
      state.status = b.status;
      showCount(b.fire_count);
      showWatching(b.watching);
      showStats(b.stats);
      text("status", b.status);
      if (b.fired) {
        state.fired = true;
        showFire("fired", "You fired this mission (trade " + b.trade_id + ").");
      } else if (b.status !== "ACTIVE") {
        expire();
      } else if (!state.firing) {
        showFire("idle", "");
      }
      follow(b);
      return b;
    }).catch(function () {
      text("stats-message", "Network error while loading your state. Retrying…");
      setTimeout(loadMission, 3000);
      return null;
    });
  }

  /* ---- FIRE: one Idempotency-Key per press, so a retry after a network
   * error can never fire twice ---- */

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var a = new Uint8Array(16);
    crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }

  var waitTimer = null;

  function fire() {
    if (state.firing || state.fired || state.status !== "ACTIVE") return;
    state.firing = true;
    showFire("loading", "Sending your order…");
    var key = newKey();
    var tries = 0;
    function send() {
      tries++;
      var body = { signal_id: sid, timestamp: Math.floor(Date.now() / 1000 + state.clockOffset) };
      api("POST", "/api/fire", body, { "Idempotency-Key": key }).then(function (r) {
        state.firing = false;
        var b = r.body || {};
        if (r.status === 201) {
          state.fired = true;
          showCount(b.fire_count);
          showStats(b.stats);
          showFire("fired", "Fired. Trade " + b.trade_id + " is open.");
        } else if (r.status === 409) {
          state.fired = true;
          showFire("fired", "You already fired this mission" +
            (b.trade_id ? " (trade " + b.trade_id + ")." : "."));
        } else if (r.status === 410) {
          state.status = b.signal_status || "EXPIRED";
          expire();
        } else if (r.status === 429) {
          var wait = Number(b.retry_after || r.headers.get("Retry-After") || 5);
          countdownWait(wait);
        } else if (r.status === 401) {
          showFire("signin", "Your session has expired: sign in again to fire.");
        } else {
          showFire("error", (b.detail || "The order failed") + " (" + r.status + "). Try again.");
        }
      }).catch(function () {
        // the network failed: the same key again cannot fire twice
        if (tries < 4) {
          setTimeout(send, 500 * Math.pow(2, tries - 1));
        } else {
          state.firing = false;
          showFire("error", "Network error: the order may not have reached us. Press FIRE to try again safely.");
        }
      });
    }
    send();
  }

  function countdownWait(seconds) {
    clearInterval(waitTimer);
    var left = Math.max(1, Math.ceil(seconds));
    showFire("wait", "Too many orders: wait " + left + " s.");
    $("fire").disabled = true;
    waitTimer = setInterval(function () {
      left--;
      if (left <= 0) {
        clearInterval(waitTimer);
        showFire("idle", "");
        return;
      }
      showFire("wait", "Too many orders: wait " + left + " s.");
      $("fire").disabled = true;
    }, 1000);
  }

  /* ---- live events ---- */

  function onEvent(e) {
    var d = e.data || {};
    switch (e.type) {
      case "fire_count_update":
        if (d.signal_id === sid) showCount(d.count);
        break;
      case "presence_update":
        if (d.signal_id === sid) showWatching(d.watching);
        break;
      case "mission_status_update":
        if (d.signal_id === sid) {
          state.status = d.status;
          expire();
        }
        break;
      case "user_stats_update":
        showStats(d.stats);
        break;
      case "market_update":
        if (d.price !== undefined) {
          text("price", d.price);
          var p = $("price");
          if (d.change !== undefined) p.className = String(d.change).charAt(0) === "-" ? "neg" : "pos";
          text("price-time", new Date(e.ts).toLocaleTimeString());
        }
        break;
      case "trade_executed":
        if (d.signal_id === sid && !state.fired) {
          state.fired = true;
          showFire("fired", "You fired this mission (trade " + d.trade_id + ").");
        }
        break;
      case "risk_alert":
      case "notification":
        note(d.message || d.text || e.type);
        break;
    }
  }

  function note(message) {
    var list = $("notes");
    var li = document.createElement("li");
    li.textContent = message;
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 5) list.removeChild(list.lastChild);
  }

  /* ---- start ---- */

  text("expires", localTime(mission.expires_at));
  showCount(mission.fire_count);
  $("expires").setAttribute("datetime", new Date(mission.expires_at * 1000).toISOString());
  $("fire").addEventListener("click", fire);
  setInterval(tick, 1000);
  tick();

  var blocked = {};
  // for tests and for users behind proxies that break one transport:
  // /mission/x?no=websocket,sse
  try {
    (new URLSearchParams(location.search).get("no") || "").split(",").forEach(function (t) {
      if (t) blocked[t] = true;
    });
  } catch (e) { /* old browser: nothing blocked */ }

  /* connects once, after the first load that succeeds (loadMission retries by
   * itself and calls this) */
  var live = null;
  function follow(b) {
    if (live || !b) return;
    live = createClient({
      cursor: b.cursor, // the state above is as of this event: follow from here
      share: true,      // one connection for all this user's tabs (docs/CLIENT.md)
      transports: TRANSPORTS.filter(function (t) { return !blocked[t]; }),
      // a newer token the sign-in side left in sessionStorage, else ours
      getToken: function () { return storedToken() || token; }
    });
    window.sortieLive = live; // for the browser tests and the curious
    live.on("state", function (s) { showBadge(s.state, s.transport); });
    live.on("token", function (t) { token = t; }); // the client's token serves REST calls too
    function onLive(e) {
      if (e.type === "reset") loadMission(); // history lost: the state again
      else onEvent(e);
    }
    ["mission:" + sid, "user:" + b.user_id, "market:" + mission.symbol].forEach(function (ch) {
      live.subscribe(ch, onLive);
    });
  }

  showWatching(mission.watching); // as rendered; GET /api/missions and the events keep it current
  loadMission();
})();
