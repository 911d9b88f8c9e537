/* sortie-share.js: one push connection for all the tabs of one origin and
 * one user (docs/CLIENT.md, "One connection per browser"). createClient
 * ({share: true}) comes here. The connection lives in a hub: in a
 * SharedWorker (sortie-worker.js) where the browser has one, else in one
 * tab elected with Web Locks, which feeds the others over a BroadcastChannel
 * and hands the hub over, with its position, when it closes. A tab that has
 * neither gets a connection of its own (createDirect).
 *
 * Each tab is a member of the hub: it says which channels it follows, from
 * which cursor, and gets their events once, in order. The hub keeps its
 * last events, so a tab that joins late gets what it missed since its cursor,
 * or a reset for a channel when they are gone. */

import { createDirect, idCmp, listenable, RECONNECTING } from './sortie-client.js';

const BUFFER = 256;        // events the hub keeps for members that join late
const TOKEN_WAIT = 5000;   // ms a member has to answer a token request
const GATHER_WAIT = 250;   // ms a new leader waits for the other tabs to say where they are

/* The hub: one direct client for all the members. send(member, message)
 * reaches one member; getToken(): a token (asked of a member). */
export function createHub(options, send, getToken) {
  const members = new Map();  // member id -> Set of channels
  const followed = new Map(); // channel -> {since: the cursor it was followed from, off}
  const buffer = [];
  let evicted = null;         // the newest event dropped from the buffer
  const direct = createDirect({ ...options, share: false, getToken });
  const toAll = (m) => { for (const id of members.keys()) send(id, m); };
  direct.on('state', (s) => toAll({ t: 'state', state: s.state, transport: s.transport }));
  direct.on('token', (token) => toAll({ t: 'token', token }));
  direct.on('error', (message) => toAll({ t: 'error', message }));

  function onEvent(env) {
    if (env.id) {
      buffer.push(env);
      if (buffer.length > BUFFER) evicted = buffer.shift().id;
    }
    for (const [id, chs] of members) if (chs.has(env.channel)) send(id, { t: 'event', env });
  }

  /* Member `id` follows `ch` from `cursor` (or from now): what it missed
   * from the buffer, or a reset when the buffer cannot cover it; then
   * 'joined', after which the live events are its. */
  function join(id, ch, cursor) {
    let f = followed.get(ch);
    if (!f) {
      f = { since: direct.cursor, off: direct.subscribe(ch, onEvent) };
      followed.set(ch, f);
    }
    members.get(id).add(ch);
    if (cursor) {
      const covered = f.since && idCmp(cursor, f.since) >= 0 && !(evicted && idCmp(evicted, cursor) > 0);
      if (!covered) send(id, { t: 'event', env: { type: 'reset', channel: ch } });
      else for (const e of buffer) if (e.channel === ch && idCmp(e.id, cursor) > 0) send(id, { t: 'event', env: e });
    }
    send(id, { t: 'joined', channel: ch });
  }

  function leave(id, ch) {
    const chs = members.get(id);
    if (chs) chs.delete(ch);
    for (const other of members.values()) if (other.has(ch)) return;
    const f = followed.get(ch);
    if (f) { f.off(); followed.delete(ch); }
  }

  const hub = {
    direct,
    /* a member known without asking (a tab that followed the hub before
     * it was handed over): its channels, no replay */
    adopt(id, channels) {
      if (!members.has(id)) members.set(id, new Set());
      for (const ch of channels) join(id, ch, null);
    },
    receive(m) {
      const id = m.from;
      if (m.t === 'hello') {
        if (!members.has(id)) members.set(id, new Set());
        send(id, { t: 'state', state: direct.state, transport: direct.transport });
        if (direct.token) send(id, { t: 'token', token: direct.token });
        for (const ch of m.channels) join(id, ch, m.cursor);
      } else if (!members.has(id)) {
        // a member the hub does not know (it came before it): it says hello again
        if (m.t !== 'bye') send(id, { t: 'who' });
      } else if (m.t === 'sub') {
        join(id, m.channel, m.cursor);
      } else if (m.t === 'unsub') {
        leave(id, m.channel);
      } else if (m.t === 'bye') {
        for (const ch of [...members.get(id)]) leave(id, ch);
        members.delete(id);
      } else if (m.t === 'refresh') {
        direct.refresh();
      }
    },
    members: () => members.size,
    close() { direct.close(); members.clear(); },
  };
  return hub;
}

/* The options a hub can be given from a member: the ones that are data. */
function hubOptions(o) {
  const out = {};
  for (const [k, v] of Object.entries(o)) {
    if (k !== 'env' && k !== 'getToken' && k !== 'share' && typeof v !== 'function') out[k] = v;
  }
  return out;
}

const newId = () => Math.random().toString(36).slice(2) + Date.now().toString(36);

/* The key of the shared connection: the push URL and the token's user
 * (read, not verified; the cookie's user cannot be read: "cookie"). */
function shareKey(pushUrl, token, base) {
  let user = 'cookie';
  if (token) {
    try {
      const p = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const c = JSON.parse(atob(p + '==='.slice((p.length + 3) % 4)));
      user = `${c.role || ''}:${c.sub || ''}`;
    } catch (e) { user = 'token'; }
  }
  return `sortie:${new URL(pushUrl, base).href}:${user}`;
}

/* A client that shares its connection, or null when this browser cannot
 * share (no SharedWorker and no Web Locks with BroadcastChannel). */
export function createShared(options) {
  const g = globalThis;
  const env = options.env || {};
  const SW = 'SharedWorker' in env ? env.SharedWorker : g.SharedWorker;
  const locks = 'locks' in env ? env.locks : (g.navigator && g.navigator.locks);
  const BC = 'BroadcastChannel' in env ? env.BroadcastChannel : g.BroadcastChannel;
  const mode = SW ? 'worker' : locks && BC ? 'locks' : null;
  if (!mode) return null;

  const id = newId();
  const subs = new Map();     // channel -> Set of handlers
  const joined = new Set();   // channels the hub has said 'joined' for
  const last = new Map();     // channel -> id of the last event handed over
  let toHub = null;           // sends a message to the hub, once linked
  let linking = false;
  let closed = false;
  let hub = null;             // the hub, while this tab holds it (locks)
  let release = null;         // lets the lock go (locks)
  let bc = null;
  const registry = new Map(); // locks: other member id -> Set of channels
  let leaderId = null;        // locks: the tab that last said it holds the hub
  let gathering = null;       // locks: this tab is taking the hub over (lead)
  const cleanup = [];

  const client = {
    state: RECONNECTING,
    transport: null,
    cursor: options.cursor || null, // the newest event this tab got, any channel
    token: null,
    sharing: mode,                  // 'worker' or 'locks'
    get leader() { return hub !== null; },
  };
  const emit = listenable(client);

  function ask() {
    return Promise.resolve().then(() => (options.getToken ? options.getToken() : null))
      .catch(() => null).then((t) => (typeof t === 'string' && t ? t : null));
  }

  /* a message from the hub (for this tab) */
  function fromHub(m) {
    if (closed) return;
    switch (m.t) {
      case 'state':
        if (client.state === m.state && client.transport === m.transport) return;
        client.state = m.state;
        client.transport = m.transport;
        emit('state', { state: m.state, transport: m.transport });
        return;
      case 'event': {
        const e = m.env;
        if (e.id && (!client.cursor || idCmp(e.id, client.cursor) > 0)) client.cursor = e.id;
        const hs = subs.get(e.channel);
        if (!hs) return;
        if (e.id) {
          const l = last.get(e.channel);
          if (l && idCmp(e.id, l) <= 0) return; // had it
          last.set(e.channel, e.id);
        }
        for (const h of [...hs]) {
          try { h(e); } catch (x) { Promise.reject(x); }
        }
        return;
      }
      case 'joined': joined.add(m.channel); return;
      case 'token':
        if (m.token !== client.token) { client.token = m.token; emit('token', m.token); }
        return;
      case 'token?':
        ask().then((token) => toHub({ t: 'token!', req: m.req, token }));
        return;
      case 'error': emit('error', m.message); return;
      case 'who': hello(); return;
    }
  }

  function hello() {
    toHub({ t: 'hello', channels: [...subs.keys()], cursor: client.cursor, options: hubOptions(options) });
  }

  /* ---- the link: a SharedWorker's port, or Web Locks and a BroadcastChannel ---- */

  function link() {
    if (linking || closed) return;
    linking = true;
    ask().then((token) => {
      if (closed) return;
      client.token = token;
      const key = shareKey(options.pushUrl || '/push', token, g.location && g.location.href);
      if (mode === 'worker') linkWorker(key);
      else linkLocks(key);
      hello();
    });
  }

  function linkWorker(key) {
    const url = options.workerUrl || new URL('./sortie-worker.js', import.meta.url);
    const w = new SW(url, { type: 'module', name: key });
    const port = w.port;
    port.onmessage = (e) => fromHub(e.data);
    port.start();
    toHub = (m) => port.postMessage({ ...m, from: id });
    onLeave(() => toHub({ t: 'bye' }));
  }

  /* fn when the page goes away (pagehide); a page brought back from the
   * back-forward cache says hello again */
  function onLeave(fn) {
    if (!g.addEventListener) return;
    const back = (e) => { if (e.persisted) { joined.clear(); hello(); } };
    g.addEventListener('pagehide', fn);
    g.addEventListener('pageshow', back);
    cleanup.push(() => { g.removeEventListener('pagehide', fn); g.removeEventListener('pageshow', back); });
  }

  function linkLocks(key) {
    bc = new BC(key);
    bc.onmessage = (e) => {
      const m = e.data;
      if (m.to !== undefined) { if (m.to === id) fromHub(m); return; }
      // from another member: kept, in case this tab takes the hub over
      if (m.from !== undefined && m.from !== id) {
        if (m.t === 'hello') {
          registry.set(m.from, new Set(m.channels));
          if (gathering) { gathering(m); return; }
          if (!hub) bc.postMessage({ t: 'here', from: id, channels: [...subs.keys()] });
        } else if (m.t === 'here') {
          registry.set(m.from, new Set(m.channels));
          return;
        } else if (m.t === 'sub') {
          (registry.get(m.from) || registry.set(m.from, new Set()).get(m.from)).add(m.channel);
        } else if (m.t === 'unsub') {
          if (registry.has(m.from)) registry.get(m.from).delete(m.channel);
        } else if (m.t === 'bye') {
          registry.delete(m.from);
        } else if (m.t === 'leader') {
          // a new hub asks where this tab is (lead): its channels and cursor
          leaderId = m.from;
          hello();
          return;
        }
        // (a sub, unsub or bye while the hub is being taken over is in the
        // registry, which the new hub starts from)
        if (gathering) return;
        if (hub && m.t !== 'here') hub.receive(m);
      }
    };
    toHub = (m) => {
      const msg = { ...m, from: id };
      if (hub) hub.receive(msg);
      else bc.postMessage(msg);
      if (m.t === 'sub' || m.t === 'unsub' || m.t === 'bye') {
        if (hub) bc.postMessage(msg); // the others keep the registry
      }
    };
    onLeave(() => { if (!hub) toHub({ t: 'bye' }); });
    locks.request(key, () => {
      if (closed) return undefined;
      lead();
      return new Promise((r) => { release = r; });
    }).catch(() => {});
  }

  /* This tab holds the hub now. It first asks the other tabs where they are
   * (each answers with a hello: its channels and cursor) and waits for them
   * all, or GATHER_WAIT; then the connection resumes from the oldest cursor
   * of all, its own included, and every member keeps its channels. The
   * oldest, not this tab's own: the last events a closing leader posted can
   * reach one tab and never another, and resuming from the newest would
   * leave that other tab a gap. What a tab gets again it drops ('had it'). */
  function lead() {
    registry.delete(leaderId); // the tab that held the hub is gone
    const hellos = new Map();
    const setT = env.setTimeout || g.setTimeout;
    const clearT = env.clearTimeout || g.clearTimeout;
    let timer = null;
    const start = () => {
      if (!gathering) return;
      gathering = null;
      clearT(timer);
      if (closed) return;
      let cursor = client.cursor;
      for (const h of hellos.values()) {
        if (h.cursor && (!cursor || idCmp(h.cursor, cursor) < 0)) cursor = h.cursor;
      }
      const sendTo = (to, m) => (to === id ? fromHub(m) : bc.postMessage({ ...m, to }));
      // (in the page: the tab's own env, which a SharedWorker cannot be sent)
      hub = createHub({ ...hubOptions(options), env: options.env, cursor }, sendTo, ask);
      for (const [mid, chs] of registry) if (!hellos.has(mid)) hub.adopt(mid, chs);
      for (const h of hellos.values()) hub.receive(h);
      hub.receive({ t: 'hello', from: id, channels: [...subs.keys()], cursor: client.cursor });
    };
    gathering = (m) => {
      hellos.set(m.from, m);
      if ([...registry.keys()].every((k) => hellos.has(k))) start();
    };
    timer = setT(start, GATHER_WAIT);
    bc.postMessage({ t: 'leader', from: id });
    if (!registry.size) start();
  }

  /* ---- the API, as createDirect's ---- */

  client.subscribe = (channel, onEvent) => {
    if (closed) throw new Error('sortie-client: closed');
    let hs = subs.get(channel);
    const fresh = !hs;
    if (!hs) subs.set(channel, (hs = new Set()));
    const h = (e) => onEvent(e);
    hs.add(h);
    if (!toHub) link();
    else if (fresh) toHub({ t: 'sub', channel, cursor: last.get(channel) || client.cursor });
    return () => {
      const set = subs.get(channel);
      if (!set || !set.delete(h) || set.size) return;
      subs.delete(channel);
      joined.delete(channel);
      if (toHub) toHub({ t: 'unsub', channel });
    };
  };
  client.refresh = () => {
    if (toHub) toHub({ t: 'refresh' });
    return Promise.resolve();
  };
  client.close = () => {
    if (closed) return;
    if (toHub) toHub({ t: 'bye' });
    closed = true;
    if (hub) { hub.close(); hub = null; }
    if (release) release();
    if (bc) bc.close();
    for (const f of cleanup) f();
  };
  return client;
}

/* The SharedWorker's side (sortie-worker.js): one hub for every tab that
 * connects; a token is asked of the tab that spoke last. */
export function serveSharedWorker(scope) {
  const ports = new Map(); // member id -> port
  const order = [];        // member ids, the one that spoke last at the end
  let hub = null;
  let req = 0;
  const waiting = new Map(); // request -> resolve

  function askToken() {
    const ids = order.slice().reverse();
    const next = (i) => {
      if (i >= ids.length) return Promise.resolve(null);
      const r = ++req;
      return new Promise((resolve) => {
        const t = setTimeout(() => { waiting.delete(r); resolve(next(i + 1)); }, TOKEN_WAIT);
        waiting.set(r, (token) => { clearTimeout(t); resolve(token); });
        ports.get(ids[i]).postMessage({ t: 'token?', req: r });
      });
    };
    return next(0);
  }

  scope.addEventListener('connect', (e) => {
    const port = e.ports[0];
    port.onmessage = (ev) => {
      const m = ev.data;
      if (!m || m.from === undefined) return;
      ports.set(m.from, port);
      const at = order.indexOf(m.from);
      if (at >= 0) order.splice(at, 1);
      if (m.t === 'token!') {
        order.push(m.from);
        const w = waiting.get(m.req);
        if (w) { waiting.delete(m.req); w(m.token); }
        return;
      }
      if (m.t === 'bye') {
        ports.delete(m.from);
      } else {
        order.push(m.from);
      }
      if (!hub && m.t === 'hello') {
        hub = createHub({ ...m.options, cursor: m.cursor },
          (to, msg) => { const p = ports.get(to); if (p) p.postMessage(msg); }, askToken);
      }
      if (hub) hub.receive(m);
    };
    port.start();
  });
}
