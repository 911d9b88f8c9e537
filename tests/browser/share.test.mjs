// One push connection per browser: the mission page's tabs share one connection (a SharedWorker, else a tab elected with Web Locks), hand it over without a loss or a repeat when the tab that holds it closes, and a browser that can do neither gets one per tab.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, recordLive, noSharedWorker, waitLive, waitText, waitUntil, T } from './world.mjs';

// an init script: the browser without a SharedWorker (world.mjs's
// noSharedWorker: tabs elect a leader with Web Locks), and without Web Locks
// either (no sharing)
function noLocks() {
  delete window.SharedWorker;
  Object.defineProperty(Navigator.prototype, 'locks', { configurable: true, get: () => undefined });
}

describe('one push connection per browser', { timeout: 240_000 }, () => {
  let world, browser;
  before(async () => ({ world, browser } = await openWorld()));
  after(() => closeWorld(world, browser));

  // the daemon's own count of its stream connections (PUSHD.md, /health)
  let last = null; // the last /health connections read, for a failure's message
  async function streams() {
    const r = await fetch(`http://127.0.0.1:${world.pushPort}/health`, { signal: AbortSignal.timeout(T) });
    const c = last = (await r.json()).connections;
    return c.ws + c.sse + c.poll;
  }

  // waits until the streams of earlier tests are closed: none is open
  const quiet = () => waitUntil(async () => (await streams()) === 0,
    () => `the earlier streams to close (last /health: ${JSON.stringify(last)})`).then(() => 0);

  // n tabs of the mission page of sig in one browser context, each LIVE
  async function tabs(n, sig, user, inits = []) {
    const context = await browser.newContext();
    context.setDefaultTimeout(T);
    for (const s of [recordLive, ...inits]) await context.addInitScript(s);
    const token = world.token(user);
    const pages = [];
    for (let i = 0; i < n; i++) {
      const page = await context.newPage();
      await page.goto(world.missionUrl(sig.id, token));
      await waitLive(page, 'websocket');
      pages.push(page);
    }
    return { context, pages };
  }

  // publish() publishes the next price on market:SYMBOL; published: them all, in order
  function prices(symbol) {
    const published = [];
    const publish = async () => {
      const p = (300 + published.length / 100).toFixed(2);
      published.push(p);
      await world.publish(`market:${symbol}`, 'market_update', { symbol, price: p, change: '+0.01' });
    };
    return { published, publish };
  }

  const sharing = (page) => page.evaluate(() => window.sortieLive.sharing ?? 'none');

  // The tests that count streams on /health come first, while the daemon has
  // seen only orderly closes: a tab closed mid-stream (below) is the one
  // kind of close whose stream could outlive its test (CI once saw one still
  // counted 60 s on; never here), and it must not decide these counts.
  test('three tabs hold one connection (pushd /health), and a fire in one shows in all', async () => {
    const sig = await world.createSignal({ symbol: 'AAPL' });
    const before = await quiet();
    const { context, pages } = await tabs(3, sig, 'tab-ann');
    assert.equal(await sharing(pages[0]), 'worker');
    assert.equal(await streams() - before, 1, 'three tabs opened more than one stream');
    await pages[1].click('#fire');
    await pages[1].waitForSelector('#fire[data-state="fired"]');
    for (const p of pages) await waitText(p, '#fire-count', '1');
    // another user's fire, over the shared connection, in every tab
    await world.fire(world.token('tab-other'), sig.id);
    for (const p of pages) await waitText(p, '#fire-count', '2');
    for (const p of pages) await waitLive(p, 'websocket');
    await context.close();
    await waitUntil(async () => (await streams()) === before, 'the shared stream to close with its tabs');
  });

  test('Web Locks: three tabs hold one connection', async () => {
    const sig = await world.createSignal({ symbol: 'IBM' });
    const before = await quiet();
    const { context, pages } = await tabs(3, sig, 'tab-lock', [noSharedWorker]);
    assert.equal(await streams() - before, 1, 'three tabs opened more than one stream');
    await world.fire(world.token('tab-lock-other'), sig.id);
    for (const p of pages) await waitText(p, '#fire-count', '1');
    await context.close();
  });

  test('no SharedWorker and no Web Locks: each tab its own connection, and it works', async () => {
    const sig = await world.createSignal({ symbol: 'ORCL' });
    const before = await quiet();
    const { context, pages } = await tabs(2, sig, 'tab-solo', [noLocks]);
    assert.equal(await sharing(pages[0]), 'none');
    assert.equal(await streams() - before, 2);
    await world.fire(world.token('tab-solo-other'), sig.id);
    for (const p of pages) await waitText(p, '#fire-count', '1');
    await context.close();
  });

  // Three tabs; prices go on being published while the tab that holds the
  // connection (the first: the SharedWorker's first member, or the Web Locks
  // leader) closes; then a marker. Each remaining tab must have every price
  // once, in order.
  async function handover(inits) {
    const sig = await world.createSignal({ symbol: 'MSFT' });
    const { context, pages } = await tabs(3, sig, `tab-${inits.length}`, inits);
    if (inits.length) {
      assert.equal(await sharing(pages[0]), 'locks');
      assert.equal(await pages[0].evaluate(() => window.sortieLive.leader), true);
    }
    const { published, publish } = prices(sig.symbol);
    for (let i = 0; i < 5; i++) await publish();
    await waitText(pages[1], '#price', published.at(-1));
    // the holder closes while the feed goes on
    const feed = (async () => { for (let i = 0; i < 20; i++) await publish(); })();
    await pages[0].close({ runBeforeUnload: false });
    await feed;
    for (const p of pages.slice(1)) await waitLive(p, 'websocket');
    await publish();
    const marker = published.at(-1);
    for (const p of pages.slice(1)) {
      await waitText(p, '#price', marker);
      const got = await p.evaluate(() => window.__events
        .filter((e) => e.type === 'market_update').map((e) => e.data.price));
      assert.deepEqual(got, published, 'a tab did not get every price once, in order');
    }
    if (inits.length) {
      const leaders = await Promise.all(pages.slice(1).map((p) => p.evaluate(() => window.sortieLive.leader)));
      assert.equal(leaders.filter(Boolean).length, 1, `leaders after the handover: ${leaders}`);
    }
    await context.close();
  }

  test('SharedWorker: the first tab closed mid-stream, the others get every event once, in order', async () => {
    await handover([]);
  });

  test('Web Locks (no SharedWorker): the leader tab closed mid-stream, the others get every event once, in order, one of them leads', async () => {
    await handover([noSharedWorker]);
  });

  // The next leader's connection is held back (its WebSockets get nothing
  // from the daemon, not even the greeting, so they subscribe to nothing)
  // while prices are published: they reach the tabs only if the new leader
  // resumes from the cursor the tabs had.
  test('Web Locks: the events published while no tab holds the connection come once the next leader is up, from the cursor', async () => {
    const sig = await world.createSignal({ symbol: 'NVDA' });
    const { context, pages } = await tabs(3, sig, 'tab-gap', [noSharedWorker]);
    assert.equal(await pages[0].evaluate(() => window.sortieLive.leader), true);
    let hold = true;
    const held = [];
    for (const p of pages.slice(1)) {
      await p.routeWebSocket(/\/push\/ws/, (ws) => {
        const server = ws.connectToServer();
        const pending = [];
        server.onMessage((m) => (hold ? pending.push(m) : ws.send(m)));
        ws.onMessage((m) => server.send(m));
        held.push(() => { for (const m of pending.splice(0)) ws.send(m); });
      });
    }
    const { published, publish } = prices(sig.symbol);
    for (let i = 0; i < 3; i++) await publish();
    for (const p of pages.slice(1)) await waitText(p, '#price', published.at(-1));
    await pages[0].close({ runBeforeUnload: false });
    const next = await waitUntil(async () => {
      for (const p of pages.slice(1)) if (await p.evaluate(() => window.sortieLive.leader)) return p;
      return null;
    }, 'a tab to take the lead');
    await waitUntil(async () => held.length > 0, 'the new leader to open its WebSocket');
    for (let i = 0; i < 10; i++) await publish(); // nobody follows the channel now
    hold = false;
    for (const f of held) f();
    await waitLive(next, 'websocket');
    await publish();
    for (const p of pages.slice(1)) {
      await waitText(p, '#price', published.at(-1));
      const got = await p.evaluate(() => window.__events
        .filter((e) => e.type === 'market_update').map((e) => e.data.price));
      assert.deepEqual(got, published, 'a tab did not get every price once, in order');
    }
    await context.close();
  });

  // The badge is the hub's, in every tab: with the daemon stopped the shared
  // connection falls back to REST polling and every tab says so (not LIVE,
  // over polling) and still gets the prices; with it back every tab is LIVE
  // over WebSocket again, and each has every price once, in order. Last in
  // this file: it stops and starts the world's daemon.
  async function outage(inits) {
    const sig = await world.createSignal({ symbol: inits.length ? 'AMD' : 'INTC' });
    const { context, pages } = await tabs(3, sig, `tab-out-${inits.length}`, inits);
    const { published, publish } = prices(sig.symbol);
    await publish();
    world.pushdStop();
    try {
      for (const p of pages) {
        await p.waitForFunction(() => {
          const b = document.getElementById('badge').dataset;
          return b.state !== 'live' && b.transport === 'polling';
        });
      }
      for (let i = 0; i < 3; i++) await publish();
      for (const p of pages) await waitText(p, '#price', published.at(-1));
    } finally {
      world.pushdStart();
    }
    // the client tries WebSocket again 10 to 20 s after it fell back
    for (const p of pages) await waitLive(p, 'websocket', 90_000);
    await publish();
    for (const p of pages) {
      await waitText(p, '#price', published.at(-1));
      const got = await p.evaluate(() => window.__events
        .filter((e) => e.type === 'market_update').map((e) => e.data.price));
      assert.deepEqual(got, published, 'a tab did not get every price once, in order');
    }
    await context.close();
  }

  test('SharedWorker: daemon down and back, every tab\'s badge follows the shared connection', async () => {
    await outage([]);
  });

  test('Web Locks: daemon down and back, every tab\'s badge follows the leader\'s connection', async () => {
    await outage([noSharedWorker]);
  });

});
