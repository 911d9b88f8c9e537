// The browser tests' world: a private Sortie stack on free ports, tokens, REST helpers, Chromium.
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, chmodSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, '../..');
export const BUILD = resolve(repo, process.env.BUILD || 'build');
export const CHROMIUM = process.env.SORTIE_CHROMIUM || '/usr/bin/chromium';
const STACK = join(repo, 'tools/stack.sh');

// The upper bound of every wait for an event, a state or a DOM change: it only
// turns a hang into a failure (the tests never judge speed by it), so it is
// generous enough for a machine several times slower than usual.
export const T = 30_000;

/* ---- every world is stopped on every way out ---- */

const worlds = new Set();

function stopAll() {
  for (const w of worlds) w.stopSync();
}
process.on('exit', stopAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { stopAll(); process.exit(130); });
}

// the watchdog: a test file that runs longer than this is stopped, its stack too
const FILE_LIMIT_MS = Number(process.env.SORTIE_BROWSER_FILE_LIMIT_MS || 240_000);
setTimeout(() => {
  console.error(`watchdog: this test file ran over ${FILE_LIMIT_MS} ms: stopping it`);
  stopAll();
  process.exit(1);
}, FILE_LIMIT_MS).unref();

/* ---- ports, folders ---- */

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function freePorts(n) {
  const ports = new Set();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/* ---- the world ---- */

// Starts a stack; options.extraConf: lines appended to sortie.conf.
export async function startWorld(options = {}) {
  for (const b of ['cgi-bin/sortie-api', 'bin/sortie-token', 'bin/sortie-pushd']) {
    if (!existsSync(join(BUILD, b))) throw new Error(`${BUILD}/${b} is missing: run make first`);
  }
  const [port, pushPort, redisPort] = await freePorts(3);
  // under tests/run.sh's folder, whose clean-up stops any world-* left running
  const parent = process.env.SORTIE_TEST_TMP || tmpdir();
  const run = mkdtempSync(join(parent, 'world-browser-'));
  chmodSync(run, 0o755);
  const env = {
    ...process.env,
    SORTIE_RUN: run, PORT: String(port), PUSH_PORT: String(pushPort),
    REDIS_PORT: String(redisPort), BUILD, SORTIE_NO_DEMO: '1', SORTIE_QUIET: '1',
  };
  if (options.extraConf) env.SORTIE_EXTRA_CONF = options.extraConf;
  else delete env.SORTIE_EXTRA_CONF;

  const stack = (cmd) => {
    const r = spawnSync('sh', [STACK, cmd], { env, encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) {
      throw new Error(`stack.sh ${cmd} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`);
    }
  };

  let stopped = false;
  const w = {
    run, port, pushPort, redisPort,
    base: `http://127.0.0.1:${port}`,
    conf: join(run, 'sortie.conf'),
    stopSync() {
      if (stopped) return;
      stopped = true;
      worlds.delete(w);
      spawnSync('sh', [STACK, 'stop'], { env, timeout: 60_000 });
      if (!process.env.SORTIE_KEEP_WORLD) rmSync(run, { recursive: true, force: true });
    },
    async stop() { w.stopSync(); },
    pushdStop() { stack('pushd-stop'); },
    pushdStart() { stack('pushd-start'); },
    apacheStop() { stack('apache-stop'); },
    apacheStart() { stack('apache-start'); },
  };
  worlds.add(w);
  try {
    stack('start');
  } catch (e) {
    w.stopSync();
    throw e;
  }

  w.token = (sub, { role = 'user', ttl = 3600 } = {}) =>
    execFileSync(join(BUILD, 'bin/sortie-token'), ['-r', role, '-t', String(ttl), sub], {
      env: { ...process.env, SORTIE_CONF: w.conf }, encoding: 'utf8', timeout: 10_000,
    }).trim();
  const service = w.token('browser-tests-feed', { role: 'service' });
  w.serviceToken = service;

  // fetch with a timeout; returns {status, body, headers}
  w.api = async (method, path, { token, body, headers = {} } = {}) => {
    const h = { ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const r = await fetch(w.base + path, {
      method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(T),
    });
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: r.status, body: json, text, headers: r.headers };
  };

  const must = async (want, method, path, opts) => {
    const r = await w.api(method, path, opts);
    if (r.status !== want) throw new Error(`${method} ${path}: ${r.status} (wanted ${want}): ${r.text}`);
    return r.body;
  };

  let nextId = 0;
  // creates a signal (service token); returns what the API answered
  w.createSignal = (fields = {}) => must(201, 'POST', '/api/signals', {
    token: service,
    body: {
      id: `sig_${process.pid}_${Date.now()}_${nextId++}`,
      symbol: 'AAPL', direction: 'BUY', entry: '145.75', stop_loss: '140.00',
      take_profit: '160.00', ttl: 3600, title: 'Breakout above resistance',
      ...fields,
    },
  });
  // fires signal sid as the user whose token is given
  w.fire = (userToken, sid) => must(201, 'POST', '/api/fire', {
    token: userToken, body: { signal_id: sid, timestamp: Math.floor(Date.now() / 1000) },
  });
  // publishes an event (service token); returns {id, type, channel}
  w.publish = (channel, type, data) =>
    must(201, 'POST', '/api/publish', { token: service, body: { channel, type, data } });
  w.closeTrade = (tradeId, body) =>
    w.api('POST', `/api/trades/${encodeURIComponent(tradeId)}/close`, { token: service, body });
  // waits until the server says the signal is past its expires_at (GET
  // /api/signals/{id} answers EXPIRED from then on, before the expiry job)
  w.untilExpired = (sid) => waitUntil(async () =>
    (await w.api('GET', `/api/signals/${encodeURIComponent(sid)}`)).body?.status === 'EXPIRED',
  `signal ${sid} to be past its expires_at`);
  // runs the expiry cron job once
  w.expire = () => execFileSync(join(BUILD, 'bin/sortie-expire'), ['-c', w.conf, '-q'], {
    encoding: 'utf8', timeout: 20_000,
  });
  // the mission page's URL, with the token once in the query string
  w.missionUrl = (sid, userToken, query = '') =>
    `${w.base}/mission/${encodeURIComponent(sid)}?` +
    (userToken ? `token=${encodeURIComponent(userToken)}` : '') + (query ? `&${query}` : '');
  return w;
}

// Polls the async predicate fn (every 100 ms) until it gives something
// truthy, which it returns; past `timeout` (a bound against a hang only) it
// fails, saying what it waited for.
export async function waitUntil(fn, what, timeout = T) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`waited ${timeout} ms for ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/* ---- the browser ---- */

// A stack and a browser for one describe block: `before` opens both, `after`
// closes both (a stack whose browser fails to start is stopped at once).
export async function openWorld(options = {}) {
  const world = await startWorld(options);
  try {
    return { world, browser: await launchBrowser() };
  } catch (e) {
    await world.stop();
    throw e;
  }
}

export async function closeWorld(world, browser) {
  await browser?.close().catch(() => {});
  await world?.stop();
}

export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    timeout: 30_000,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  return browser;
}

// An init script (page.addInitScript(recordLive)): records in window.__events
// every event the page's code is handed ({id, type, data, and the transport
// it came by}) and in window.__resets every channel reset, by wrapping the
// handlers the page gives to the subscribe() of its client (sortie-client.js),
// which the pages put in window.sortieLive before they subscribe.
export function recordLive() {
  window.__events = [];
  window.__resets = [];
  let live;
  Object.defineProperty(window, 'sortieLive', {
    configurable: true,
    get() { return live; },
    set(client) {
      live = client;
      const subscribe = client.subscribe;
      client.subscribe = (channel, onEvent) => subscribe(channel, (env) => {
        if (env.type === 'reset') window.__resets.push(env.channel);
        else window.__events.push({ id: env.id, type: env.type, data: env.data, via: client.transport });
        return onEvent(env);
      });
    },
  });
}

// a new page in its own context, with the playwright timeouts set
export async function newPage(browser, contextOptions = {}) {
  const context = await browser.newContext(contextOptions);
  context.setDefaultTimeout(T);
  const page = await context.newPage();
  page.setDefaultTimeout(T);
  page.setDefaultNavigationTimeout(T);
  return page;
}

// An init script: the page without SharedWorker, so that the pages' shared
// client (sortie-share.js) elects a tab with Web Locks and holds the push
// connection in that tab: a page alone in its context is that tab.
export function noSharedWorker() { delete window.SharedWorker; }

// a new page (newPage) that holds its push connection itself (noSharedWorker),
// for the tests that watch or replace the page's own WebSocket, EventSource,
// fetch, clock or network state, or route its WebSocket
export async function newLeaderPage(browser, contextOptions = {}) {
  const page = await newPage(browser, contextOptions);
  await page.addInitScript(noSharedWorker);
  return page;
}

// waits until the badge says LIVE over `transport`
export async function waitLive(page, transport = 'websocket', timeout = T) {
  await page.waitForFunction(
    (t) => {
      const b = document.getElementById('badge');
      return b && b.dataset.state === 'live' && b.dataset.transport === t;
    },
    transport, { timeout, polling: 100 },
  ).catch(async (e) => {
    const got = await page.evaluate(() => {
      const b = document.getElementById('badge');
      return `${b.dataset.state}/${b.dataset.transport || '-'} ("${b.textContent.replace(/\s+/g, ' ').trim()}")`;
    }).catch(() => '?');
    throw new Error(`the badge is not live/${transport} after ${timeout} ms: it is ${got}`, { cause: e });
  });
}

// Stops the page's clock (installed with page.clock.install()) a little
// ahead of where it is: from then on only page.clock.runFor moves it. (Its
// time goes on while the call travels: a target passed by then is tried again.)
export async function pauseClock(page) {
  for (let i = 0; ; i++) {
    const at = await page.evaluate(() => Date.now() + 1000);
    try {
      await page.clock.pauseAt(at);
      return;
    } catch (e) {
      if (i >= 4 || !/to the past/.test(String(e))) throw e;
    }
  }
}

// the text of an element, trimmed
export async function textOf(page, selector) {
  return ((await page.textContent(selector)) ?? '').trim();
}

// waits until the text of selector equals want (a string)
export async function waitText(page, selector, want, timeout = T) {
  await page.waitForFunction(
    ([s, w]) => (document.querySelector(s)?.textContent ?? '').trim() === w,
    [selector, String(want)], { timeout, polling: 50 },
  ).catch(async (e) => {
    const got = await textOf(page, selector).catch(() => '?');
    throw new Error(`${selector}: wanted "${want}", still "${got}" after ${timeout} ms`, { cause: e });
  });
}
