// With sortie-pushd stopped and started again the page degrades to polling, comes back to WebSocket, and misses or doubles no event.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, recordLive, newPage, waitLive, textOf, waitText } from './world.mjs';

// "<ms>-<seq>" ids compare as numbers
const idCmp = (a, b) => {
  const [ma, sa] = a.split('-').map(Number);
  const [mb, sb] = b.split('-').map(Number);
  return ma - mb || sa - sb;
};

describe('push daemon outage', { timeout: 200_000 }, () => {
  let world, browser, page, sig;
  const prices = [];     // market_update prices published, in order
  let fires = 0;         // fires over REST
  let publishing = null; // the background price feed

  const price = () => (100 + prices.length / 100).toFixed(2);
  async function publishPrice() {
    const p = price();
    prices.push(p);
    await world.publish(`market:${sig.symbol}`, 'market_update', { symbol: sig.symbol, price: p, change: '+0.01' });
  }
  async function fireOther() {
    fires++;
    await world.fire(world.token(`crowd-${fires}`), sig.id);
  }
  // publishes a price every 200 ms until stopped
  function startFeed() {
    let on = true;
    const done = (async () => {
      while (on) {
        await publishPrice();
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    return async () => { on = false; await done; };
  }

  before(async () => {
    ({ world, browser } = await openWorld());
    sig = await world.createSignal({ symbol: 'AAPL' });
    page = await newPage(browser);
    await page.addInitScript(recordLive);
    await page.goto(world.missionUrl(sig.id, world.token('uma')));
    await waitLive(page, 'websocket');
  });
  after(async () => {
    if (publishing) await publishing().catch(() => {});
    await closeWorld(world, browser);
  });

  test('while LIVE, fires and prices arrive', async () => {
    await fireOther();
    await publishPrice();
    await waitText(page, '#fire-count', '1');
    await waitText(page, '#price', prices.at(-1));
  });

  test('pushd stopped: the badge leaves LIVE', async () => {
    publishing = startFeed();
    world.pushdStop();
    await page.waitForFunction(() => ['reconnecting', 'offline'].includes(
      document.getElementById('badge').dataset.state));
  });

  test('pushd down: fires and prices still reach the page, by polling', async () => {
    await page.waitForFunction(() => document.getElementById('badge').dataset.transport === 'polling');
    for (let i = 0; i < 3; i++) await fireOther();
    await waitText(page, '#fire-count', String(fires));
    const now = prices.at(-1);
    await page.waitForFunction((p) => Number(document.getElementById('price').textContent) >= Number(p),
      now);
    assert.notEqual(await page.getAttribute('#badge', 'data-state'), 'live');
  });

  // the page tries WebSocket again 10 to 20 s after it fell back (live.js,
  // scheduleUpgrade); the bound only turns a hang into a failure
  test('pushd started again: the badge is back to LIVE over WebSocket', async () => {
    world.pushdStart();
    await waitLive(page, 'websocket', 90_000);
  });

  test('no event was missed or doubled across the outage', async () => {
    await fireOther();
    // the feed goes on until two of its prices have come over the WebSocket
    const overWs = () => page.evaluate(() => window.__events
      .filter((e) => e.type === 'market_update' && e.via === 'websocket').length);
    const wsBefore = await overWs();
    await page.waitForFunction((n) => window.__events
      .filter((e) => e.type === 'market_update' && e.via === 'websocket').length >= n + 2, wsBefore);
    await publishing();
    publishing = null;
    await publishPrice(); // the last one, over WebSocket
    await waitText(page, '#fire-count', String(fires));
    await waitText(page, '#price', prices.at(-1));

    const events = await page.evaluate(() => window.__events);
    for (let i = 1; i < events.length; i++) {
      assert.ok(idCmp(events[i - 1].id, events[i].id) < 0,
        `event ${events[i].id} came after ${events[i - 1].id} (doubled or out of order)`);
    }
    const got = events.filter((e) => e.type === 'market_update').map((e) => e.data.price);
    assert.deepEqual(got, prices, 'the prices the page got are not exactly the ones published');
    const counts = events.filter((e) => e.type === 'fire_count_update').map((e) => e.data.count);
    assert.deepEqual(counts, Array.from({ length: fires }, (_, i) => i + 1));
    assert.equal(await textOf(page, '#fire-count'), String(fires));
    const via = new Set(events.map((e) => e.via));
    assert.ok(via.has('polling') && via.has('websocket'), `events came by ${[...via]}`);
  });
});
