/* sortie-client.js: a browser client of Sortie's push side (docs/CLIENT.md).
 * One connection carries every channel subscribed: WebSocket first, then
 * Server-Sent Events, then long-poll (all through sortie-pushd), then plain
 * REST polling of GET /api/events (through the API: works with the daemon
 * down). Each reconnect resumes from the cursor (the id of the last event
 * handed over), so nothing is lost or handed over twice. ES module, no
 * dependencies, no build step.
 *
 *   import { createClient } from '/static/sortie-client.js';
 *   const client = createClient({ getToken: () => myToken });
 *   const stop = client.subscribe('mission:sig_1', (event) => { ... });
 *   client.on('state', ({ state, transport }) => { ... });
 *   stop(); client.close();
 *
 * The state machine touches the world only through `env` (timers, the clock,
 * random, WebSocket, EventSource, fetch, online/offline): node tests drive it
 * with scripted fakes (tests/browser/client.test.mjs). */

import { createShared } from './sortie-share.js';

export const LIVE = 'live';
export const RECONNECTING = 'reconnecting';
export const OFFLINE = 'offline';
export const EXPIRED = 'expired'; // a token that cannot be renewed: see refresh()
export const TRANSPORTS = ['websocket', 'sse', 'longpoll', 'polling'];

/* Event types a Server-Sent Events stream is listened to for (EventSource
 * hands a named event only to a listener of that name): every type of
 * docs/API.md's channel table, plus options.types. */
export const EVENT_TYPES = ['fire_count_update', 'mission_status_update', 'presence_update',
  'trade_executed', 'user_stats_update', 'trade_closed', 'equity_updated', 'risk_alert',
  'notification', 'market_update', 'trading_signal', 'sentiment_update', 'signal_created',
  'admin_stats', 'system_log'];

const DEFAULTS = {
  pushUrl: '/push',          // sortie-pushd: /ws, /events, /poll under it
  apiUrl: '',                // the REST API: /api/events under it
  cursor: null,              // follow from this event id (else from now)
  transports: TRANSPORTS,    // the ones to try, in this order
  types: [],                 // more SSE event names to listen for
  backoffMin: 500,           // push transports: 500 ms doubling ...
  backoffMax: 15000,         // ... to 15 s
  pollBackoffMin: 1000,      // REST polling after a failed read: 1 s doubling to backoffMax
  pollInterval: 1000,        // REST polling: the wait after an answer
  longPollTimeout: 25,       // seconds a long-poll waits on the daemon
  upgradeAfter: 20000,       // on a fallback: try WebSocket again after half to all of this
  connectTimeout: 8000,      // a transport not up by then has failed
  refreshBefore: 30000,      // ask getToken for a new token this long before exp
};

/* Event ids are "<ms>-<seq>", global and increasing: compared as numbers. */
export function idCmp(a, b) {
  const [ma, sa] = String(a).split('-').map(Number);
  const [mb, sb] = String(b).split('-').map(Number);
  if (ma !== mb) return ma < mb ? -1 : 1;
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/* The wait before retry number `attempt` (0, 1, ...): the step min * 2^attempt,
 * capped at max, drawn between half and all of it. */
export function backoff(attempt, min, max, random) {
  const step = Math.min(max, min * 2 ** attempt);
  return Math.round(step / 2 + random() * step / 2);
}

/* The exp (ms) of a JWT, or null: read, not verified (the server verifies). */
export function tokenExp(token) {
  try {
    const p = String(token).split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(p + '==='.slice((p.length + 3) % 4))).exp;
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch (e) {
    return null;
  }
}

function defaultEnv() {
  const g = globalThis;
  return {
    WebSocket: g.WebSocket,
    EventSource: g.EventSource,
    fetch: g.fetch && g.fetch.bind(g),
    AbortController: g.AbortController,
    setTimeout: g.setTimeout.bind(g),
    clearTimeout: g.clearTimeout.bind(g),
    now: () => Date.now(),
    random: Math.random,
    location: g.location,
    online: () => !(g.navigator && g.navigator.onLine === false),
    listen: g.addEventListener ? (type, fn) => g.addEventListener(type, fn) : () => {},
    unlisten: g.removeEventListener ? (type, fn) => g.removeEventListener(type, fn) : () => {},
  };
}

/* What both kinds of client (createDirect, and a tab of sortie-share.js)
 * say to their listeners: gives client on(kind, fn) for 'state', 'error'
 * and 'token', which returns the function that removes fn, and returns
 * emit(kind, value), which calls each listener of kind. */
export function listenable(client) {
  const listeners = { state: new Set(), error: new Set(), token: new Set() };
  client.on = (kind, fn) => {
    if (!listeners[kind]) throw new Error('sortie-client: no such event: ' + kind);
    listeners[kind].add(fn);
    return () => listeners[kind].delete(fn);
  };
  return (kind, value) => { for (const fn of [...listeners[kind]]) fn(value); };
}

/* Creates a client; it connects once something is subscribed.
 * options: getToken() → a token, null (the sortie_token cookie travels by
 * itself) or a Promise of either; DEFAULTS' keys; env: see defaultEnv;
 * share: true to share one connection with the other tabs of this origin
 * and user (sortie-share.js), where the browser allows it. */
export function createClient(options = {}) {
  return (options.share && createShared(options)) || createDirect(options);
}

/* A client with a connection of its own. */
export function createDirect(options = {}) {
  const opts = { ...DEFAULTS, ...options };
  const env = { ...defaultEnv(), ...(options.env || {}) };
  const order = TRANSPORTS.filter((t) => opts.transports.includes(t));
  if (!order.length) order.push('polling');
  const types = [...new Set(EVENT_TYPES.concat(opts.types))];

  const subs = new Map();        // channel -> Set of handlers
  let token = null;
  let asked = 0;                 // getToken before the first connect: 0 not yet, 1 asking, 2 done
  let level = 0;                 // index in order of the transport tried
  let failures = 0;              // failures in a row at this level, never up
  let attempt = 0;               // the backoff step
  let current = null;            // the running transport: {name, stop(), refresh?(t), channels?(add, remove)}
  let timer = null, upgradeTimer = null, refreshTimer = null;
  let pending = false;           // a channel change is waiting for the end of the turn
  let closed = false;

  const client = {
    state: RECONNECTING,
    transport: null,
    cursor: opts.cursor || null,
    get token() { return token; },
  };

  const clear = (t) => { if (t !== null) env.clearTimeout(t); return null; };
  const later = (fn, ms) => env.setTimeout(fn, ms);
  const emit = listenable(client);
  const channels = () => [...subs.keys()];

  function setState(state, transport) {
    if (client.state === state && client.transport === transport) return;
    client.state = state;
    client.transport = transport;
    emit('state', { state, transport });
  }

  /* ---- tokens ---- */

  function ask() {
    return Promise.resolve().then(() => (opts.getToken ? opts.getToken() : null))
      .catch(() => null)
      .then((t) => (typeof t === 'string' && t ? t : null));
  }

  /* A token newer than the one in use, adopted, or null. */
  function freshToken() {
    return ask().then((t) => {
      if (!t || t === token) return null;
      adopt(t);
      return t;
    });
  }

  function adopt(t) {
    token = t;
    emit('token', t);
    scheduleRefresh();
  }

  /* Before the token's exp: a new one, handed to the running transport (a
   * WebSocket takes it in place, the others on their next request; an SSE
   * stream is opened again from the cursor). */
  function scheduleRefresh() {
    refreshTimer = clear(refreshTimer);
    const exp = token && tokenExp(token);
    if (!exp || closed) return;
    refreshTimer = later(() => {
      refreshTimer = null;
      const old = token;
      freshToken().then((t) => {
        if (!t || closed || !current) return;
        if (current.refresh) current.refresh(t, old);
      });
    }, Math.max(0, exp - opts.refreshBefore - env.now()));
  }

  /* The daemon ended the stream at the exp of the token `used`. */
  function tokenEnded(name, used) {
    current = null;
    freshToken().then((t) => {
      if (closed) return;
      if (t || (token && token !== used)) { // again at once: the resume covers the gap
        timer = clear(timer);
        attempt = 0;
        start();
      } else if (!token) {
        down(name, true);      // the cookie: after the backoff, with the cookie set then
      } else {
        timer = clear(timer);
        upgradeTimer = clear(upgradeTimer);
        setState(EXPIRED, name);
      }
    });
  }

  const tokenQuery = (sep) => (token ? sep + 'token=' + encodeURIComponent(token) : '');
  const authHeaders = () => (token ? { Authorization: 'Bearer ' + token } : {});

  /* ---- events ---- */

  /* An envelope from any transport: once, in order, to the channel's handlers. */
  function handle(env_) {
    if (!env_ || typeof env_ !== 'object') return;
    if (env_.type === 'reset') {       // history lost: the handler refetches
      deliver(env_);
      return;
    }
    if (!env_.id) return;
    if (client.cursor && idCmp(env_.id, client.cursor) <= 0) return; // seen
    client.cursor = env_.id;
    deliver(env_);
  }

  function deliver(e) {
    const hs = subs.get(e.channel);
    if (!hs) return;
    for (const h of [...hs]) {
      try { h(e); } catch (x) { Promise.reject(x); } // a handler's error is reported, not ours
    }
  }

  function moveCursor(c) {
    if (c && (!client.cursor || idCmp(c, client.cursor) > 0)) client.cursor = c;
  }

  /* ---- the state machine ---- */

  /* The transport `name` is up. */
  function up(name) {
    failures = 0;
    attempt = 0;
    setState(name === 'polling' ? RECONNECTING : LIVE, name);
    if (name !== order[0]) scheduleUpgrade();
  }

  /* The transport `name` ended (wasUp) or could not start; retryAfter: the
   * server's Retry-After, in ms. */
  function down(name, wasUp, retryAfter) {
    if (closed) return;
    current = null;
    if (!wasUp) failures++;
    // two failures in a row without being up: the next transport
    if (failures >= 2 && level < order.length - 1) {
      failures = 0;
      attempt = 0; // a new transport starts with a short wait
      level++;
    }
    const next = order[level];
    setState(env.online() ? RECONNECTING : OFFLINE, next === 'polling' ? 'polling' : name);
    const wait = Math.max(retryAfter || 0, backoff(attempt++, opts.backoffMin, opts.backoffMax, env.random));
    timer = clear(timer);
    timer = later(start, wait);
  }

  /* While on a fallback, try the first transport again from time to time. */
  function scheduleUpgrade() {
    upgradeTimer = clear(upgradeTimer);
    if (order[0] !== 'websocket') return;
    upgradeTimer = later(() => {
      upgradeTimer = null;
      if (closed || level === 0) return;
      probeWebSocket();
    }, backoff(0, opts.upgradeAfter, opts.upgradeAfter, env.random));
  }

  function probeWebSocket() {
    let ws;
    try { ws = new env.WebSocket(wsUrl() + tokenQuery('?')); } catch (e) { scheduleUpgrade(); return; }
    let ok = false;
    const t = later(() => { try { ws.close(); } catch (e) { /* gone */ } }, opts.connectTimeout);
    ws.onmessage = () => {
      if (ok) return;
      ok = true;
      env.clearTimeout(t);
      ws.onclose = null;
      ws.close();
      // the daemon is back: switch over (the resume covers the switch)
      if (current) current.stop();
      current = null;
      level = 0;
      failures = 0;
      attempt = 0;
      start();
    };
    ws.onclose = () => { env.clearTimeout(t); scheduleUpgrade(); };
  }

  function start() {
    timer = clear(timer);
    if (closed || current) return;
    if (!subs.size) return; // nothing to follow: no connection
    if (asked < 2) {        // the first token, before the first connect
      if (asked === 0) {
        asked = 1;
        ask().then((t) => { asked = 2; if (t) adopt(t); start(); });
      }
      return;
    }
    const name = order[level];
    setState(client.state === LIVE ? RECONNECTING : client.state, name);
    current = transports[name]();
    current.name = name;
  }

  /* The set of channels changed (at the end of the turn: several subscribe
   * calls make one change). A WebSocket changes its subscriptions in place;
   * the other transports open again, from the cursor. */
  let following = [];
  function channelsChanged() {
    pending = false;
    if (closed) return;
    const now = channels();
    const add = now.filter((c) => !following.includes(c));
    const remove = following.filter((c) => !now.includes(c));
    following = now;
    if (!add.length && !remove.length) return;
    if (!current) { if (!timer && client.state !== EXPIRED) start(); return; }
    if (!now.length) { current.stop(); current = null; return; }
    if (current.channels && current.channels(add, remove)) return;
    current.stop();
    current = null;
    start();
  }

  /* ---- the transports: each start() returns {stop, refresh?, channels?} ---- */

  function wsUrl() {
    const u = new URL(opts.pushUrl.replace(/\/$/, '') + '/ws', env.location && env.location.href);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.href;
  }
  const pushPath = (p) => opts.pushUrl.replace(/\/$/, '') + p;
  const chanQuery = () => 'channels=' + encodeURIComponent(channels().join(','));
  const cursorQuery = () => (client.cursor ? '&cursor=' + encodeURIComponent(client.cursor) : '');

  const transports = {
    websocket() {
      let ws, live = false, greeted = false, stopped = false, used = token;
      try { ws = new env.WebSocket(wsUrl() + tokenQuery('?')); } catch (e) {
        later(() => down('websocket', false), 0);
        return { stop() {} };
      }
      const guard = later(() => { if (!live) ws.close(); }, opts.connectTimeout);
      const send = (m) => { try { ws.send(JSON.stringify(m)); } catch (e) { /* closing */ } };
      const subscribe = (chs) => {
        const m = { action: 'subscribe', channels: chs };
        if (client.cursor) m.since = client.cursor;
        send(m);
      };
      const refresh = (t) => { used = t; send({ action: 'refresh', token: t }); };
      ws.onmessage = (m) => {
        let msg;
        try { msg = JSON.parse(m.data); } catch (e) { return; }
        switch (msg.type) {
          case 'connection_status': greeted = true; subscribe(channels()); return;
          case 'subscribed':
            if (!live) { live = true; env.clearTimeout(guard); up('websocket'); }
            return;
          case 'token_expiring': // warned: a fresh token in place, before the close
            if (token) freshToken().then((t) => { if (t && !stopped) refresh(t); });
            return;
          case 'pong': case 'unsubscribed': case 'refreshed': return;
          case 'error': emit('error', msg); return;
          default: handle(msg);
        }
      };
      ws.onclose = (ev) => {
        env.clearTimeout(guard);
        if (stopped) return;
        if (ev && ev.code === 4001) tokenEnded('websocket', used);
        else down('websocket', live);
      };
      return {
        stop() { stopped = true; env.clearTimeout(guard); ws.onclose = null; ws.close(); },
        refresh,
        channels(add, remove) {
          if (!greeted) return true; // the subscribe after the greeting takes the set then
          if (add.length) subscribe(add);
          if (remove.length) send({ action: 'unsubscribe', channels: remove });
          return true;
        },
      };
    },

    sse() {
      const url = pushPath('/events?') + chanQuery() + tokenQuery('&') + cursorQuery();
      let es, live = false, stopped = false;
      const used = token;
      try { es = new env.EventSource(url); } catch (e) {
        later(() => down('sse', false), 0);
        return { stop() {} };
      }
      const end = () => { stopped = true; env.clearTimeout(guard); es.close(); };
      const guard = later(() => { if (!live) { end(); down('sse', false); } }, opts.connectTimeout);
      const isUp = () => { if (!live) { live = true; env.clearTimeout(guard); up('sse'); } };
      const onAny = (e) => {
        isUp();
        if (!e || !e.data) return;
        let env_;
        try { env_ = JSON.parse(e.data); } catch (x) { return; }
        handle(env_);
      };
      es.onopen = isUp;
      es.onmessage = onAny;
      for (const t of types.concat(['reset'])) es.addEventListener(t, onAny);
      // the stream ended at the token's exp (no id: the cursor stays)
      es.addEventListener('token_expired', () => {
        if (stopped) return;
        end();
        tokenEnded('sse', used);
      });
      // EventSource would reconnect by itself: we do, with our backoff and fallback
      es.onerror = () => {
        if (stopped) return;
        end();
        down('sse', live);
      };
      return {
        stop: end,
        // a new token before exp: the stream again on it, from the cursor
        refresh() { if (stopped) return; end(); current = null; start(); },
      };
    },

    longpoll() {
      return fetchLoop('longpoll', (live) => pushPath('/poll?') + chanQuery() +
        '&timeout=' + (live ? opts.longPollTimeout : 0) + cursorQuery(), () => 0);
    },

    polling() {
      return fetchLoop('polling', () => opts.apiUrl.replace(/\/$/, '') + '/api/events?' + chanQuery() +
        cursorQuery(), (body) => ((body.events || []).length >= 100 ? 0 : opts.pollInterval));
    },
  };

  /* Long-poll and REST polling: a request, its events, the next request.
   * The first long-poll answers at once (timeout=0): the daemon is there,
   * and what was missed comes with it. REST polling failing retries itself
   * (OFFLINE: not even the API answers) with its own backoff. */
  function fetchLoop(name, url, pause) {
    let stopped = false, live = false, t = null, ctrl = null, fails = 0, used = token;
    const failed = (retryAfter) => {
      if (stopped) return;
      if (name !== 'polling') { stopped = true; down(name, live, retryAfter); return; }
      setState(OFFLINE, 'polling');
      const wait = Math.max(retryAfter || 0, backoff(fails++, opts.pollBackoffMin, opts.backoffMax, env.random));
      t = later(once, wait);
    };
    function once() {
      t = null;
      if (stopped) return;
      ctrl = env.AbortController ? new env.AbortController() : null;
      used = token;
      env.fetch(url(live), { headers: authHeaders(), signal: ctrl && ctrl.signal, credentials: 'same-origin' })
        .then((r) => {
          if (r.ok) return r.json();
          const ra = Number(r.headers && r.headers.get && r.headers.get('Retry-After'));
          const e = new Error(name + ' ' + r.status);
          e.retryAfter = r.status === 429 && ra > 0 ? ra * 1000 : 0;
          throw e;
        })
        .then((body) => {
          if (stopped) return;
          if (!live) { live = true; up(name); }
          if (fails) { fails = 0; setState(RECONNECTING, 'polling'); }
          (body.events || []).forEach(handle);
          moveCursor(body.cursor);
          if (body.token_expired) { stopped = true; tokenEnded(name, used); return; }
          const p = pause(body);
          if (p) t = later(once, p); else once();
        })
        .catch((e) => failed(e && e.retryAfter));
    }
    once();
    return {
      stop() { stopped = true; t = clear(t); if (ctrl) ctrl.abort(); },
      refresh() {}, // the next request carries the new token
    };
  }

  /* ---- the API ---- */

  /* Follows `channel`: onEvent(envelope) for each of its events, once, in
   * order, and ({type:"reset", channel}) when its history was lost (fetch
   * its state again). Returns the function that stops it. */
  client.subscribe = (channel, onEvent) => {
    if (closed) throw new Error('sortie-client: closed');
    let hs = subs.get(channel);
    if (!hs) subs.set(channel, (hs = new Set()));
    const h = (e) => onEvent(e); // one entry per call, even for the same function
    hs.add(h);
    changed();
    return () => {
      const set = subs.get(channel);
      if (!set || !set.delete(h)) return;
      if (!set.size) { subs.delete(channel); changed(); }
    };
  };

  function changed() {
    if (pending) return;
    pending = true;
    Promise.resolve().then(channelsChanged);
  }

  /* client.on (listenable): on('state', fn({state, transport})),
   * on('error', fn(message)): a WebSocket error message; on('token',
   * fn(token)): a new token in use. */

  /* Asks getToken again now: a new token is used from now on (a live
   * WebSocket takes it in place); after EXPIRED, connects again. */
  client.refresh = () => freshToken().then((t) => {
    if (!t || closed) return;
    if (client.state === EXPIRED) { attempt = 0; failures = 0; start(); return; }
    if (current && current.refresh) current.refresh(t);
  });

  client.close = () => {
    closed = true;
    timer = clear(timer);
    upgradeTimer = clear(upgradeTimer);
    refreshTimer = clear(refreshTimer);
    if (current) current.stop();
    current = null;
    env.unlisten('offline', onOffline);
    env.unlisten('online', onOnline);
  };

  // the network is gone: nothing can arrive; say so, stop, and start again
  // (from the cursor) when it is back
  function onOffline() {
    if (closed) return;
    timer = clear(timer);
    if (current) { current.stop(); current = null; }
    setState(OFFLINE, client.transport);
  }
  function onOnline() {
    if (closed || client.state === LIVE || client.state === EXPIRED) return;
    attempt = 0;
    if (current) return;
    start();
  }
  env.listen('offline', onOffline);
  env.listen('online', onOnline);
  return client;
}
