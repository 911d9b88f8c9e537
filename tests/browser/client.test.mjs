// sortie-client.js's state machine without a browser: scripted fakes of WebSocket, EventSource and fetch, and a clock the test moves.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as sortie from '../../www/static/sortie-client.js';
import { createHub } from '../../www/static/sortie-share.js';

const { createClient, backoff, idCmp, LIVE, RECONNECTING, OFFLINE, EXPIRED } = sortie;

/* ---- the fakes ---- */

// Virtual time: timers run only when the test moves the clock.
function fakeClock() {
  let now = 1_800_000_000_000, seq = 0;
  const timers = new Map(); // id -> {at, fn, ms}
  const c = {
    delays: [], // every delay asked for, in order
    now: () => now,
    setTimeout(fn, ms = 0) {
      const id = ++seq;
      timers.set(id, { at: now + ms, fn, ms, seq: id });
      c.delays.push(ms);
      return id;
    },
    clearTimeout(id) { timers.delete(id); },
    // moves the clock by ms, running what falls due in time order (and the
    // promise jobs each one starts)
    async advance(ms) {
      const end = now + ms;
      for (;;) {
        await flush();
        const due = [...timers.entries()].filter(([, t]) => t.at <= end)
          .sort(([, a], [, b]) => a.at - b.at || a.seq - b.seq)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = Math.max(now, due[1].at);
        due[1].fn();
      }
      now = end;
      await flush();
    },
    pending: () => [...timers.values()].map((t) => t.at - now).sort((a, b) => a - b),
  };
  return c;
}

// lets every pending promise job run
const flush = () => new Promise((r) => setImmediate(r));

class FakeWebSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closed = false;
    FakeWebSocket.all.push(this);
  }
  send(m) { if (this.closed) throw new Error('closed'); this.sent.push(JSON.parse(m)); }
  close() { this.closed = true; }
  // the server's side
  say(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
  greet() { this.say({ type: 'connection_status', status: 'connected', connection_id: '1.1' }); }
  drop(code = 1006) { this.closed = true; this.onclose?.({ code }); }
}

class FakeEventSource {
  static all = [];
  constructor(url) {
    this.url = url;
    this.closed = false;
    this.listeners = {};
    FakeEventSource.all.push(this);
  }
  addEventListener(t, fn) { (this.listeners[t] ||= []).push(fn); }
  close() { this.closed = true; }
  open() { this.onopen?.({}); }
  emit(type, env) {
    const e = { data: env === undefined ? '' : JSON.stringify(env) };
    if (type === 'message') this.onmessage?.(e);
    else for (const fn of this.listeners[type] || []) fn(e);
  }
  fail() { this.onerror?.({}); }
}

// fetch: each call waits until the test answers it
function fakeFetch() {
  const calls = [];
  const f = (url, init) => new Promise((resolve, reject) => {
    calls.push({
      url, init,
      answer(status, body, headers = {}) {
        resolve({ ok: status >= 200 && status < 300, status, json: async () => body,
          headers: { get: (k) => headers[k] ?? null } });
      },
      fail() { reject(new TypeError('network')); },
    });
  });
  f.calls = calls;
  return f;
}

// a world of fakes and a client on it
function setup(options = {}) {
  FakeWebSocket.all = [];
  FakeEventSource.all = [];
  const clock = fakeClock();
  const fetch = fakeFetch();
  const win = { listeners: {}, online: true };
  const env = {
    WebSocket: FakeWebSocket, EventSource: FakeEventSource, fetch, AbortController,
    setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, now: clock.now,
    random: options.random || (() => 1),
    location: { href: 'https://sortie.example/mission/sig_1' },
    online: () => win.online,
    listen: (t, fn) => { win.listeners[t] = fn; },
    unlisten: (t) => { delete win.listeners[t]; },
    ...options.env,
  };
  const client = createClient({ getToken: () => 'tok-1', ...options, env });
  const states = [];
  client.on('state', (s) => states.push(`${s.state}/${s.transport}`));
  const events = [];
  const ws = () => FakeWebSocket.all.at(-1);
  const es = () => FakeEventSource.all.at(-1);
  return { client, clock, fetch, win, env, states, events, ws, es };
}

const ev = (ms, channel = 'mission:sig_1', type = 'fire_count_update') =>
  ({ id: `${ms}-0`, channel, type, ts: ms, data: { n: ms } });
// a JWT whose payload says exp (seconds); the signature is not looked at
const jwt = (exp) => `h.${Buffer.from(JSON.stringify({ sub: 'u', exp })).toString('base64url')}.s`;

// a WebSocket greeted and subscribed: LIVE
async function wsLive(w) {
  await w.clock.advance(0);
  w.ws().greet();
  w.ws().say({ type: 'subscribed', channels: w.ws().sent.at(-1).channels });
  await flush();
}

/* ---- the tests ---- */

describe('sortie-client state machine', () => {
  test('connects once something is subscribed, over WebSocket, and says LIVE', async () => {
    const w = setup();
    await w.clock.advance(1000);
    assert.equal(FakeWebSocket.all.length, 0, 'connected with nothing subscribed');
    w.client.subscribe('mission:sig_1', (e) => w.events.push(e.id));
    w.client.subscribe('user:u', (e) => w.events.push(e.id));
    await w.clock.advance(0);
    assert.equal(FakeWebSocket.all.length, 1, 'two subscribe calls opened more than one connection');
    assert.equal(w.ws().url, 'wss://sortie.example/push/ws?token=tok-1');
    w.ws().greet();
    assert.deepEqual(w.ws().sent, [{ action: 'subscribe', channels: ['mission:sig_1', 'user:u'] }]);
    w.ws().say({ type: 'subscribed', channels: ['mission:sig_1', 'user:u'] });
    assert.deepEqual(w.states, ['reconnecting/websocket', 'live/websocket']);
    assert.equal(w.client.state, LIVE);
    w.ws().say(ev(5));
    w.ws().say(ev(6, 'user:u'));
    assert.deepEqual(w.events, ['5-0', '6-0']);
  });

  test('fallback order: WebSocket, then SSE, then long-poll, then REST polling, two failures each', async () => {
    const w = setup();
    w.client.subscribe('mission:sig_1', () => {});
    const tried = [];
    for (let i = 0; i < 2; i++) {
      await w.clock.advance(20_000);
      tried.push('ws');
      w.ws().drop();
    }
    for (let i = 0; i < 2; i++) {
      await w.clock.advance(20_000);
      tried.push(new URL(w.es().url, 'https://x').pathname);
      w.es().fail();
    }
    for (let i = 0; i < 2; i++) {
      await w.clock.advance(20_000);
      tried.push(new URL(w.fetch.calls.at(-1).url, 'https://x').pathname);
      w.fetch.calls.at(-1).fail();
    }
    await w.clock.advance(20_000);
    tried.push(new URL(w.fetch.calls.at(-1).url, 'https://x').pathname);
    assert.deepEqual(tried, ['ws', 'ws', '/push/events', '/push/events', '/push/poll', '/push/poll', '/api/events']);
    assert.equal(FakeWebSocket.all.length, 2);
    assert.equal(FakeEventSource.all.length, 2);
    w.fetch.calls.at(-1).answer(200, { events: [], cursor: '9-0' });
    await flush();
    // REST polling is a degraded mode: never LIVE
    assert.equal(w.client.state, RECONNECTING);
    assert.equal(w.client.transport, 'polling');
    assert.deepEqual([...new Set(w.states)], ['reconnecting/websocket', 'reconnecting/sse',
      'reconnecting/longpoll', 'reconnecting/polling']);
  });

  test('options.transports skips the ones left out, in the same order', async () => {
    const w = setup({ transports: ['longpoll', 'sse'] });
    w.client.subscribe('mission:sig_1', () => {});
    await w.clock.advance(0);
    assert.equal(FakeWebSocket.all.length, 0);
    w.es().open();
    assert.deepEqual(w.states.at(-1), 'live/sse');
  });

  test('backoff: each wait between half and all of its step, 500 ms doubling to 15 s', async () => {
    for (const r of [0, 0.5, 1]) {
      const w = setup({ transports: ['websocket'], random: () => r });
      w.client.subscribe('mission:sig_1', () => {});
      await w.clock.advance(0);
      const waits = [];
      for (let k = 0; k < 8; k++) {
        w.ws().drop();
        const before = FakeWebSocket.all.length;
        waits.push(w.clock.pending()[0]);
        await w.clock.advance(waits.at(-1) - 1);
        assert.equal(FakeWebSocket.all.length, before, 'reconnected before its wait');
        await w.clock.advance(1);
        assert.equal(FakeWebSocket.all.length, before + 1, 'did not reconnect at the end of its wait');
      }
      const steps = [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000];
      waits.forEach((d, k) => {
        assert.ok(d >= steps[k] / 2 && d <= steps[k], `wait ${k} is ${d} ms: not within [${steps[k] / 2}, ${steps[k]}]`);
      });
      assert.equal(waits[0], Math.round(250 + r * 250), `random ${r}: the jitter is not half to all of the step`);
    }
    assert.equal(backoff(3, 1000, 15000, () => 0), 4000);
    assert.equal(backoff(9, 1000, 15000, () => 1), 15000);
  });

  test('REST polling after failed reads: 1 s doubling to 15 s with jitter; 429 waits its Retry-After', async () => {
    const w = setup({ transports: ['polling'], random: () => 0 });
    w.client.subscribe('mission:sig_1', () => {});
    await w.clock.advance(0);
    const waits = [];
    for (let k = 0; k < 6; k++) {
      w.fetch.calls.at(-1).fail();
      await flush();
      assert.equal(w.client.state, OFFLINE);
      waits.push(w.clock.pending()[0]);
      await w.clock.advance(waits.at(-1));
    }
    assert.deepEqual(waits, [500, 1000, 2000, 4000, 7500, 7500]);
    w.fetch.calls.at(-1).answer(429, null, { 'Retry-After': '40' });
    await flush();
    assert.equal(w.clock.pending()[0], 40_000, 'a 429 was retried before its Retry-After');
    const n = w.fetch.calls.length;
    await w.clock.advance(39_999);
    assert.equal(w.fetch.calls.length, n);
    await w.clock.advance(1);
    assert.equal(w.fetch.calls.length, n + 1);
    w.fetch.calls.at(-1).answer(200, { events: [], cursor: '1-0' });
    await flush();
    assert.equal(w.client.state, RECONNECTING);
    assert.equal(w.clock.pending()[0], 1000, 'the next poll after an answer');
  });

  test('resume: every transport starts from the cursor; what comes again is dropped; order kept', async () => {
    const w = setup({ cursor: '3-0' });
    w.client.subscribe('mission:sig_1', (e) => w.events.push(e.id));
    await wsLive(w);
    assert.equal(w.ws().sent[0].since, '3-0', 'the first subscribe is not from options.cursor');
    w.ws().say(ev(3)); // at the cursor: seen
    w.ws().say(ev(4));
    w.ws().say(ev(5));
    w.ws().drop();
    await w.clock.advance(1000);
    w.ws().greet();
    assert.equal(w.ws().sent[0].since, '5-0');
    w.ws().say({ type: 'subscribed', channels: ['mission:sig_1'] });
    w.ws().say(ev(5)); // again: dropped
    w.ws().say(ev(6));
    // SSE, long-poll and REST polling get the cursor too (each wait is under
    // 5 s here; a transport not up 8 s on would count as failed)
    w.ws().drop();
    for (let i = 0; i < 2; i++) {
      await w.clock.advance(5_000);
      w.ws().drop();
    }
    await w.clock.advance(5_000);
    assert.match(w.es().url, /[?&]cursor=6-0(&|$)/);
    w.es().open();
    w.es().emit('fire_count_update', ev(6));
    w.es().emit('fire_count_update', ev(7));
    w.es().fail();
    for (let i = 0; i < 2; i++) {
      await w.clock.advance(5_000);
      w.es().fail();
    }
    await w.clock.advance(5_000);
    assert.match(w.fetch.calls.at(-1).url, /^\/push\/poll\?.*cursor=7-0/);
    w.fetch.calls.at(-1).answer(200, { events: [ev(7), ev(8)], cursor: '8-0' });
    await flush();
    assert.match(w.fetch.calls.at(-1).url, /cursor=8-0/);
    assert.match(w.fetch.calls.at(-1).url, /timeout=25/);
    w.fetch.calls.at(-1).answer(200, { events: [], cursor: '12-0' }); // nothing, the cursor on
    await flush();
    assert.match(w.fetch.calls.at(-1).url, /cursor=12-0/);
    assert.deepEqual(w.events, ['4-0', '5-0', '6-0', '7-0', '8-0']);
  });

  test('a reset reaches the channel\'s handlers; an event of another channel does not', async () => {
    const w = setup();
    w.client.subscribe('market:IBM', (e) => w.events.push(`${e.type}:${e.channel}`));
    await wsLive(w);
    w.ws().say({ type: 'reset', channel: 'market:IBM' });
    w.ws().say(ev(2, 'mission:other'));
    assert.deepEqual(w.events, ['reset:market:IBM']);
    assert.equal(w.client.cursor, '2-0');
  });

  test('token: a new one from getToken before exp, in place over WebSocket', async () => {
    const clockStart = 1_800_000_000; // the fake clock's now, in seconds
    let tok = jwt(clockStart + 100);
    const w = setup({ getToken: () => tok, refreshBefore: 30_000 });
    w.client.subscribe('mission:sig_1', () => {});
    await wsLive(w);
    assert.match(w.ws().url, /token=h\./);
    tok = jwt(clockStart + 3700);
    await w.clock.advance(69_999);
    assert.deepEqual(w.ws().sent.filter((m) => m.action === 'refresh'), [], 'refreshed too early');
    await w.clock.advance(1);
    assert.deepEqual(w.ws().sent.filter((m) => m.action === 'refresh'), [{ action: 'refresh', token: tok }]);
    assert.equal(w.client.token, tok);
    assert.equal(FakeWebSocket.all.length, 1, 'a refresh opened another connection');
    // the daemon's warning works too
    const third = jwt(clockStart + 7000);
    tok = third;
    w.ws().say({ type: 'token_expiring', exp: clockStart + 3700, close_at: clockStart + 3710 });
    await flush();
    assert.equal(w.ws().sent.at(-1).token, third);
  });

  test('token: SSE ended at exp opens again at once on the fresh token, from the cursor; none to be had: EXPIRED', async () => {
    let tok = 'old';
    const w = setup({ getToken: () => tok, transports: ['sse'] });
    w.client.subscribe('mission:sig_1', (e) => w.events.push(e.id));
    await w.clock.advance(0);
    w.es().open();
    w.es().emit('fire_count_update', ev(10));
    tok = 'new';
    w.es().emit('token_expired', { type: 'token_expired', exp: 1 });
    await flush();
    assert.equal(FakeEventSource.all.length, 2, 'the stream was not opened again at once');
    assert.match(w.es().url, /token=new/);
    assert.match(w.es().url, /cursor=10-0/);
    w.es().open();
    w.es().emit('token_expired', { type: 'token_expired', exp: 2 }); // and no fresh token
    await flush();
    assert.equal(w.client.state, EXPIRED);
    await w.clock.advance(60_000);
    assert.equal(FakeEventSource.all.length, 2, 'retried with a token the server refuses');
    tok = 'newer';
    await w.client.refresh();
    await flush();
    assert.equal(FakeEventSource.all.length, 3);
    assert.match(w.es().url, /token=newer/);
  });

  test('unsubscribe: the handler hears nothing more, the WebSocket unsubscribes, the last one closes it', async () => {
    const w = setup();
    const a = [], b = [];
    const stopA = w.client.subscribe('mission:sig_1', (e) => a.push(e.id));
    const stopB = w.client.subscribe('user:u', (e) => b.push(e.id));
    await wsLive(w);
    const added = w.client.subscribe('market:IBM', () => {});
    await flush();
    assert.deepEqual(w.ws().sent.at(-1), { action: 'subscribe', channels: ['market:IBM'] });
    w.ws().say(ev(1));
    stopA();
    await flush();
    assert.deepEqual(w.ws().sent.at(-1), { action: 'unsubscribe', channels: ['mission:sig_1'] });
    w.ws().say(ev(2));
    w.ws().say(ev(3, 'user:u'));
    assert.deepEqual(a, ['1-0']);
    assert.deepEqual(b, ['3-0']);
    stopB();
    added();
    await flush();
    assert.equal(w.ws().closed, true, 'the connection outlived its last subscription');
  });

  test('states: OFFLINE when the browser goes offline, back to LIVE online; close() stops everything', async () => {
    const w = setup();
    w.client.subscribe('mission:sig_1', () => {});
    await wsLive(w);
    w.win.online = false;
    w.win.listeners.offline();
    assert.equal(w.client.state, OFFLINE);
    assert.equal(w.ws().closed, true);
    w.win.online = true;
    w.win.listeners.online();
    await wsLive(w);
    assert.equal(w.client.state, LIVE);
    // (OFFLINE until it is up again)
    assert.deepEqual(w.states, ['reconnecting/websocket', 'live/websocket', 'offline/websocket',
      'live/websocket']);
    w.client.close();
    assert.equal(w.ws().closed, true);
    assert.deepEqual(w.clock.pending(), [], 'close() left timers');
    assert.equal(w.win.listeners.online, undefined);
  });

  test('on a fallback, WebSocket is tried again after half to all of upgradeAfter, and taken when it answers', async () => {
    const w = setup({ random: () => 0 });
    w.client.subscribe('mission:sig_1', (e) => w.events.push(e.id));
    await w.clock.advance(0);
    w.ws().drop();
    await w.clock.advance(1000);
    w.ws().drop();
    await w.clock.advance(1000);
    w.es().open();
    w.es().emit('fire_count_update', ev(4));
    assert.equal(w.client.transport, 'sse');
    const n = FakeWebSocket.all.length;
    await w.clock.advance(9_999);
    assert.equal(FakeWebSocket.all.length, n);
    await w.clock.advance(1);
    assert.equal(FakeWebSocket.all.length, n + 1, 'no WebSocket probe 10 s on');
    w.ws().greet(); // the probe's answer: switch over
    await flush();
    assert.equal(w.es().closed, true);
    await w.clock.advance(0);
    w.ws().greet();
    assert.equal(w.ws().sent[0].since, '4-0');
    w.ws().say({ type: 'subscribed', channels: ['mission:sig_1'] });
    assert.equal(w.client.state, LIVE);
    assert.equal(w.client.transport, 'websocket');
  });

  test('www/static/package.json: a bundler\'s import of @sortie/client is this module, with no dependency', async () => {
    const dir = new URL('../../www/static/', import.meta.url);
    const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8'));
    assert.equal(pkg.name, '@sortie/client');
    assert.equal(pkg.type, 'module');
    assert.equal(pkg.private, true);
    assert.equal(pkg.dependencies, undefined);
    const entry = typeof pkg.exports === 'string' ? pkg.exports : pkg.exports['.'];
    const m = await import(new URL(entry, dir).href);
    assert.equal(m.createClient, sortie.createClient);
  });
});

// the hub of a shared connection (sortie-share.js): members are tabs, each
// reached by send(member, message)
describe('sortie-share hub', () => {
  function hubSetup(cursor = null) {
    const w = setup();
    w.client.close(); // only its fakes are used
    const got = {};  // member -> messages
    const hub = createHub({ cursor, env: w.env }, (to, m) => (got[to] ||= []).push(m), () => 'tok-1');
    const events = (to) => (got[to] || []).filter((m) => m.t === 'event').map((m) => m.env.id || `reset:${m.env.channel}`);
    return { ...w, hub, got, events };
  }

  test('one connection for the union of the members\' channels; each member gets its own channels\' events', async () => {
    const h = hubSetup();
    h.hub.receive({ t: 'hello', from: 'a', channels: ['mission:sig_1'], cursor: null });
    h.hub.receive({ t: 'hello', from: 'b', channels: ['mission:sig_1', 'user:u'], cursor: null });
    await h.clock.advance(0);
    assert.equal(FakeWebSocket.all.length, 1);
    h.ws().greet();
    assert.deepEqual(h.ws().sent[0].channels, ['mission:sig_1', 'user:u']);
    h.ws().say({ type: 'subscribed', channels: ['mission:sig_1', 'user:u'] });
    assert.deepEqual(h.got.a.filter((m) => m.t === 'state').at(-1), { t: 'state', state: LIVE, transport: 'websocket' });
    h.ws().say(ev(1));
    h.ws().say(ev(2, 'user:u'));
    assert.deepEqual(h.events('a'), ['1-0']);
    assert.deepEqual(h.events('b'), ['1-0', '2-0']);
    // the last member of user:u goes: the channel is dropped in place
    h.hub.receive({ t: 'bye', from: 'b' });
    await flush();
    assert.deepEqual(h.ws().sent.at(-1), { action: 'unsubscribe', channels: ['user:u'] });
  });

  test('a member joining late gets what it missed since its cursor from the hub\'s buffer, or a reset; then joined', async () => {
    const h = hubSetup('10-0');
    h.hub.receive({ t: 'hello', from: 'a', channels: ['mission:sig_1'], cursor: '10-0' });
    await wsLive(h);
    for (const ms of [11, 12, 13]) h.ws().say(ev(ms));
    // b read its state at 11-0: it gets 12 and 13, then joined
    h.hub.receive({ t: 'hello', from: 'b', channels: ['mission:sig_1'], cursor: '11-0' });
    assert.deepEqual(h.events('b'), ['12-0', '13-0']);
    assert.deepEqual(h.got.b.at(-1), { t: 'joined', channel: 'mission:sig_1' });
    // c read its state before the hub followed the channel: a reset
    h.hub.receive({ t: 'hello', from: 'c', channels: ['mission:sig_1'], cursor: '9-0' });
    assert.deepEqual(h.events('c'), ['reset:mission:sig_1']);
    h.ws().say(ev(14));
    assert.deepEqual(h.events('a'), ['11-0', '12-0', '13-0', '14-0']);
    assert.deepEqual(h.events('b'), ['12-0', '13-0', '14-0']);
  });

  test('a browser without SharedWorker and Web Locks: share gives a client of its own', () => {
    // (a BroadcastChannel alone is not enough: the leader is elected with Web Locks)
    const w = setup({ share: true, env: { SharedWorker: undefined, locks: undefined, BroadcastChannel: class {} } });
    assert.equal(w.client.sharing, undefined);
    assert.equal(typeof w.client.subscribe, 'function');
  });
});

describe('sortie-share over Web Locks', () => {
  // One fake browser: a BroadcastChannel per tab (a message reaches every
  // other tab's channel of the same name a task later, in the order posted;
  // lose(from, to) drops what tab `from` posts to tab `to` from then on, as
  // a closing tab's last posts can be lost), and one Web Lock handed out in
  // the order asked.
  function browser() {
    const chans = new Set();
    const lost = new Set();
    const tabChannel = (tab) => class {
      constructor(name) { this.name = name; chans.add(this); }
      postMessage(m) {
        const data = structuredClone(m);
        for (const c of chans) {
          if (c === this || c.name !== this.name || lost.has(`${tab}>${c.tab}`)) continue;
          setImmediate(() => { if (chans.has(c)) c.onmessage?.({ data }); });
        }
      }
      close() { chans.delete(this); }
      get tab() { return tab; }
    };
    const queue = [];
    let held = false;
    const next = () => {
      if (held || !queue.length) return;
      held = true;
      const { cb, resolve } = queue.shift();
      setImmediate(() => Promise.resolve(cb()).then((v) => { held = false; resolve(v); next(); }));
    };
    const locks = { request: (name, cb) => new Promise((resolve) => { queue.push({ cb, resolve }); next(); }) };
    return { tabChannel, locks, lose: (from, to) => lost.add(`${from}>${to}`) };
  }

  test('the leader closes after its last event reached one tab and not another: the next leader resumes from the oldest tab\'s cursor, no gap, no repeat', async () => {
    const w = setup();
    w.client.close(); // only its fakes are used
    const b = browser();
    // lets the tabs' messages and the lock go round (each a task later)
    const settle = async () => { for (let i = 0; i < 20; i++) await w.clock.advance(0); };
    const tabs = {};
    const got = { A: [], B: [], C: [] };
    for (const t of ['A', 'B', 'C']) {
      tabs[t] = createClient({
        share: true, getToken: () => 'tok-1', pushUrl: 'https://sortie.example/push',
        env: { ...w.env, SharedWorker: undefined, locks: b.locks, BroadcastChannel: b.tabChannel(t) },
      });
      tabs[t].subscribe('market:X', (e) => got[t].push(e.id));
      await w.clock.advance(0);
    }
    await w.clock.advance(300);
    assert.equal(tabs.A.leader, true);
    assert.equal(FakeWebSocket.all.length, 1, 'one connection for three tabs');
    const ws1 = w.ws();
    ws1.greet();
    ws1.say({ type: 'subscribed', channels: ['market:X'] });
    for (let i = 1; i <= 5; i++) ws1.say(ev(i, 'market:X', 'market_update'));
    await settle();
    assert.deepEqual(got.C, ['1-0', '2-0', '3-0', '4-0', '5-0']);
    // the leader's post of 6 reaches B and never C; then the leader closes
    b.lose('A', 'C');
    ws1.say(ev(6, 'market:X', 'market_update'));
    await settle();
    assert.deepEqual(got.B.at(-1), '6-0');
    assert.deepEqual(got.C.at(-1), '5-0');
    tabs.A.close();
    await settle();
    await w.clock.advance(300);
    await settle();
    assert.equal(tabs.B.leader, true);
    const ws2 = w.ws();
    assert.notEqual(ws2, ws1);
    ws2.greet();
    // the daemon's side: what came after the cursor asked for, then a new event
    const since = ws2.sent.at(-1).since;
    ws2.say({ type: 'subscribed', channels: ['market:X'] });
    for (const e of [ev(6, 'market:X', 'market_update')]) if (!since || idCmp(e.id, since) > 0) ws2.say(e);
    ws2.say(ev(7, 'market:X', 'market_update'));
    await settle();
    const all = ['1-0', '2-0', '3-0', '4-0', '5-0', '6-0', '7-0'];
    assert.deepEqual(got.B, all, 'the new leader: every event once, in order');
    assert.deepEqual(got.C, all, 'the other tab: every event once, in order (resumed from since=' + since + ')');
    tabs.B.close();
    tabs.C.close();
  });
});
