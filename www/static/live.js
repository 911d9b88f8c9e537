/* Sortie live connection: WebSocket first, then Server-Sent Events, then
 * long-poll (all through sortie-pushd under /push/), then plain REST polling
 * (GET /api/events through Apache) — with exponential backoff and jitter, and
 * a resume from the last event id on every reconnect, so nothing is missed or
 * counted twice. Plain JavaScript, no framework, no build step; loaded from
 * the page (the Content-Security-Policy allows no inline script).
 *
 *   const live = SortieLive.connect({
 *     channels: ["mission:sig_1", "user:alice"],
 *     token,                       // or null: the sortie_token cookie is used
 *     refreshToken() {},           // optional: a fresh token (or a Promise of one)
 *     onToken(token) {},           // optional: the token changed (for REST calls)
 *     onEvent(envelope) {},        // each event, once, in order
 *     onReset(channel) {},         // history lost: refetch state over REST
 *     onStatus(state, transport) {}// "live" | "reconnecting" | "offline" | "expired"
 *   });
 *   live.setToken(token);          // a new token from elsewhere
 *   live.close();
 *
 * Token lifetime (docs/PUSHD.md): the daemon ends a stream at its token's
 * exp. A WebSocket is warned first (token_expiring) and gets a fresh token in
 * place ({"action":"refresh"}); SSE ends with a token_expired event and a
 * long-poll with "token_expired":true, and both start again at once, from the
 * cursor, on a fresh token. A fresh token comes from refreshToken(), else from
 * sessionStorage "sortie_token" when something (the site's sign-in, another
 * script) put a newer one there. With the cookie, the reconnect carries the
 * cookie the browser has then. With a token and no fresh one, every request
 * would be refused: the status becomes "expired" and nothing is retried until
 * setToken() gives one.
 */
(function (global) {
  "use strict";

  var ORDER = ["websocket", "sse", "longpoll", "polling"];
  var BACKOFF_MIN = 500, BACKOFF_MAX = 15000;

  /* Event ids are "<ms>-<seq>", global and increasing: compare as numbers. */
  function idCmp(a, b) {
    var pa = a.split("-"), pb = b.split("-");
    var ma = Number(pa[0]), mb = Number(pb[0]);
    if (ma !== mb) return ma < mb ? -1 : 1;
    var sa = Number(pa[1]), sb = Number(pb[1]);
    return sa < sb ? -1 : sa > sb ? 1 : 0;
  }

  function jitter(ms) {
    return Math.round(ms / 2 + Math.random() * ms / 2);
  }

  function wsUrl(path) {
    var l = global.location;
    return (l.protocol === "https:" ? "wss://" : "ws://") + l.host + path;
  }

  function connect(opts) {
    var self = {
      cursor: opts.cursor || null, // the id of the last event handed over
      transport: null,
      state: "reconnecting",
      closed: false
    };
    var level = 0;          // index in ORDER currently tried
    var failures = 0;       // consecutive failures at this level
    var attempt = 0;        // for the backoff
    var current = null;     // {stop()} of the running transport
    var timer = null, upgradeTimer = null;
    var blocked = opts.blocked || {}; // transports to skip (tests, settings)

    function storedToken() {
      try { return global.sessionStorage.getItem("sortie_token"); } catch (e) { return null; }
    }

    /* A token newer than the one in use, or null (none to be had, or the
     * cookie is in use and cannot be read). Adopts it. */
    function freshToken() {
      var get = opts.refreshToken || storedToken;
      return Promise.resolve().then(get).catch(function () { return null; }).then(function (t) {
        if (!t || typeof t !== "string" || t === opts.token) return null;
        opts.token = t;
        if (opts.onToken) opts.onToken(t);
        return t;
      });
    }

    /* The daemon ended the stream for its token's exp (SSE token_expired, a
     * poll answered with token_expired, WebSocket close 4001). */
    function tokenEnded(name) {
      current = null;
      freshToken().then(function (t) {
        if (self.closed) return;
        if (t) {            // start again at once: the resume covers the gap
          clearTimeout(timer);
          attempt = 0;
          start();
        } else if (!opts.token) {
          down(name, true); // the cookie: after the backoff, with whatever cookie is set then
        } else {
          clearTimeout(timer);
          clearTimeout(upgradeTimer);
          setStatus("expired", name);
        }
      });
    }

    function tokenQuery(sep) {
      return opts.token ? sep + "token=" + encodeURIComponent(opts.token) : "";
    }

    function setStatus(state, transport) {
      if (self.state === state && self.transport === transport) return;
      self.state = state;
      self.transport = transport;
      if (opts.onStatus) opts.onStatus(state, transport);
    }

    /* An envelope from any transport: once, in order. */
    function handle(env) {
      if (!env || typeof env !== "object") return;
      if (env.type === "reset") {
        if (opts.onReset) opts.onReset(env.channel);
        return;
      }
      if (!env.id) return;
      if (self.cursor && idCmp(env.id, self.cursor) <= 0) return; // seen
      self.cursor = env.id;
      if (opts.onEvent) opts.onEvent(env);
    }

    function moveCursor(c) {
      if (c && (!self.cursor || idCmp(c, self.cursor) > 0)) self.cursor = c;
    }

    /* A transport reached the live state. */
    function up(name) {
      failures = 0;
      attempt = 0;
      setStatus(name === "polling" ? "reconnecting" : "live", name);
      if (name !== "websocket") scheduleUpgrade();
    }

    /* A transport ended or could not start. */
    function down(name, wasUp) {
      if (self.closed) return;
      current = null;
      if (!wasUp) failures++;
      // two failures in a row before ever being live: try the next transport
      if (failures >= 2) {
        failures = 0;
        attempt = 0; // a new transport starts with a short wait
        level = nextLevel(level);
      }
      var polling = ORDER[level] === "polling";
      setStatus(navigator.onLine === false ? "offline" : "reconnecting", polling ? "polling" : name);
      var delay = Math.min(BACKOFF_MAX, BACKOFF_MIN * Math.pow(2, attempt++));
      clearTimeout(timer);
      timer = setTimeout(start, jitter(delay));
    }

    function nextLevel(l) {
      for (var i = l + 1; i < ORDER.length; i++)
        if (!blocked[ORDER[i]]) return i;
      return ORDER.length - 1;
    }

    /* While on a fallback, try WebSocket again from time to time. */
    function scheduleUpgrade() {
      clearTimeout(upgradeTimer);
      upgradeTimer = setTimeout(function () {
        if (self.closed || ORDER[level] === "websocket" || blocked.websocket) return;
        probeWebSocket();
      }, jitter(20000));
    }

    function probeWebSocket() {
      var ws;
      try { ws = new WebSocket(wsUrl("/push/ws" + tokenQuery("?"))); } catch (e) { scheduleUpgrade(); return; }
      var ok = false;
      var t = setTimeout(function () { try { ws.close(); } catch (e) {} }, 5000);
      ws.onmessage = function () {
        if (ok) return;
        ok = true;
        clearTimeout(t);
        ws.onclose = null;
        ws.close();
        // the daemon is back: switch over (the resume covers the switch)
        if (current) current.stop();
        level = 0;
        failures = 0;
        attempt = 0;
        start();
      };
      ws.onclose = function () { clearTimeout(t); scheduleUpgrade(); };
    }

    function start() {
      if (self.closed) return;
      while (blocked[ORDER[level]] && level < ORDER.length - 1) level++;
      var name = ORDER[level];
      setStatus(self.state === "live" ? "reconnecting" : self.state, name);
      current = ({ websocket: startWs, sse: startSse, longpoll: startLongPoll, polling: startPolling })[name]();
    }

    /* ---- WebSocket ---- */
    function startWs() {
      var ws, live = false, stopped = false;
      try { ws = new WebSocket(wsUrl("/push/ws" + tokenQuery("?"))); } catch (e) {
        setTimeout(function () { down("websocket", false); }, 0);
        return { stop: function () {} };
      }
      var guard = setTimeout(function () { if (!live) ws.close(); }, 8000);
      ws.onmessage = function (m) {
        var msg;
        try { msg = JSON.parse(m.data); } catch (e) { return; }
        if (msg.type === "connection_status") {
          var sub = { action: "subscribe", channels: opts.channels };
          if (self.cursor) sub.since = self.cursor;
          ws.send(JSON.stringify(sub));
          return;
        }
        if (msg.type === "subscribed") {
          if (!live) { live = true; clearTimeout(guard); up("websocket"); }
          return;
        }
        if (msg.type === "token_expiring") {
          // with a token of our own: a fresh one in place, before the close
          if (opts.token) freshToken().then(function (t) { if (t && !stopped) refresh(t); });
          return;
        }
        if (msg.type === "pong" || msg.type === "unsubscribed" || msg.type === "refreshed") return;
        if (msg.type === "error") {
          if (opts.onError) opts.onError(msg);
          return;
        }
        handle(msg);
      };
      function refresh(t) {
        try { ws.send(JSON.stringify({ action: "refresh", token: t })); } catch (e) { /* closing */ }
      }
      ws.onclose = function (ev) {
        clearTimeout(guard);
        if (stopped) return;
        if (ev && ev.code === 4001) tokenEnded("websocket");
        else down("websocket", live);
      };
      return { stop: function () { stopped = true; clearTimeout(guard); ws.close(); }, refresh: refresh };
    }

    /* ---- Server-Sent Events ---- */
    function startSse() {
      var url = "/push/events?channels=" + encodeURIComponent(opts.channels.join(",")) +
        tokenQuery("&") + (self.cursor ? "&cursor=" + encodeURIComponent(self.cursor) : "");
      var es, live = false, stopped = false;
      try { es = new EventSource(url); } catch (e) {
        setTimeout(function () { down("sse", false); }, 0);
        return { stop: function () {} };
      }
      var guard = setTimeout(function () { if (!live) { es.close(); down("sse", false); } }, 8000);
      function onAny(e) {
        if (!live) { live = true; clearTimeout(guard); up("sse"); }
        if (!e || !e.data) return;
        var env;
        try { env = JSON.parse(e.data); } catch (x) { return; }
        handle(env);
      }
      es.onopen = function () { if (!live) { live = true; clearTimeout(guard); up("sse"); } };
      es.onmessage = onAny;
      // named events: every type the page may get
      (opts.types || []).concat(["reset"]).forEach(function (t) { es.addEventListener(t, onAny); });
      // the stream ended at the token's exp: again at once on a fresh token
      // (no id: the cursor stays on the last event)
      es.addEventListener("token_expired", function () {
        if (stopped) return;
        stopped = true;
        es.close();
        clearTimeout(guard);
        tokenEnded("sse");
      });
      es.onerror = function () {
        // EventSource reconnects by itself with Last-Event-ID; we take over
        // instead, to apply our own backoff and fallback
        if (stopped) return;
        es.close();
        clearTimeout(guard);
        down("sse", live);
      };
      return { stop: function () { stopped = true; clearTimeout(guard); es.close(); } };
    }

    /* ---- long-poll ---- */
    function startLongPoll() {
      var stopped = false, live = false, ctrl = null;
      function once() {
        if (stopped) return;
        ctrl = new AbortController();
        // the first request answers at once (timeout=0): the daemon is there,
        // and what was missed comes with it; then each one waits up to 25 s
        var url = "/push/poll?channels=" + encodeURIComponent(opts.channels.join(",")) +
          "&timeout=" + (live ? 25 : 0) +
          (self.cursor ? "&cursor=" + encodeURIComponent(self.cursor) : "");
        fetch(url, { headers: authHeaders(), signal: ctrl.signal, credentials: "same-origin" })
          .then(function (r) { if (!r.ok) throw new Error("poll " + r.status); return r.json(); })
          .then(function (body) {
            if (!live) { live = true; up("longpoll"); }
            (body.events || []).forEach(handle);
            moveCursor(body.cursor);
            if (body.token_expired) { stopped = true; tokenEnded("longpoll"); return; }
            once();
          })
          .catch(function () { if (!stopped) down("longpoll", live); });
      }
      once();
      return { stop: function () { stopped = true; if (ctrl) ctrl.abort(); } };
    }

    /* ---- REST polling (through Apache: works with the daemon down) ---- */
    function startPolling() {
      var stopped = false, live = false, t = null, ctrl = null, fails = 0;
      function once() {
        if (stopped) return;
        ctrl = new AbortController();
        var url = "/api/events?channels=" + encodeURIComponent(opts.channels.join(",")) +
          (self.cursor ? "&cursor=" + encodeURIComponent(self.cursor) : "");
        fetch(url, { headers: authHeaders(), signal: ctrl.signal, credentials: "same-origin" })
          .then(function (r) { if (!r.ok) throw new Error("events " + r.status); return r.json(); })
          .then(function (body) {
            if (!live) { live = true; up("polling"); }
            if (fails) { fails = 0; setStatus("reconnecting", "polling"); }
            (body.events || []).forEach(handle);
            moveCursor(body.cursor);
            t = setTimeout(once, (body.events || []).length >= 100 ? 0 : 1000);
          })
          .catch(function () {
            if (stopped) return;
            setStatus("offline", "polling"); // not even the REST API answers
            t = setTimeout(once, jitter(Math.min(BACKOFF_MAX, 1000 * Math.pow(2, fails++))));
          });
      }
      once();
      return { stop: function () { stopped = true; clearTimeout(t); if (ctrl) ctrl.abort(); } };
    }

    function authHeaders() {
      return opts.token ? { Authorization: "Bearer " + opts.token } : {};
    }

    /* A new token from the page: used from now on (a live WebSocket takes it
     * in place); after "expired", connects again. */
    self.setToken = function (t) {
      if (!t || t === opts.token) return;
      opts.token = t;
      if (self.closed) return;
      if (self.state === "expired") { attempt = 0; failures = 0; start(); return; }
      if (current && current.refresh) current.refresh(t);
    };

    self.close = function () {
      self.closed = true;
      clearTimeout(timer);
      clearTimeout(upgradeTimer);
      if (current) current.stop();
    };

    // the browser says the network is gone: nothing can arrive; say so, stop,
    // and start again (from the cursor) when it is back
    global.addEventListener("offline", function () {
      if (self.closed) return;
      clearTimeout(timer);
      if (current) { current.stop(); current = null; }
      setStatus("offline", self.transport);
    });
    global.addEventListener("online", function () {
      if (self.state !== "live" && !self.closed) { clearTimeout(timer); attempt = 0; start(); }
    });
    start();
    return self;
  }

  /* The page's token: a ?token= given once is kept for the browser session
   * and taken out of the address bar (other parameters stay); else the one kept
   * earlier; else null (the sortie_token cookie, if any, travels by itself). */
  function takeToken() {
    try {
      var q = new URLSearchParams(global.location.search);
      var t = q.get("token");
      if (t) {
        global.sessionStorage.setItem("sortie_token", t);
        q.delete("token");
        var rest = q.toString();
        global.history.replaceState(null, "", global.location.pathname + (rest ? "?" + rest : "") +
          global.location.hash);
        return t;
      }
      return global.sessionStorage.getItem("sortie_token");
    } catch (e) {
      return null; /* storage disabled: the cookie, if any, still works */
    }
  }

  global.SortieLive = { connect: connect, idCmp: idCmp, takeToken: takeToken };
})(window);
