// Without WebSocket the page falls back to SSE, then long-poll, then REST polling, and events still arrive.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, recordLive, newLeaderPage, waitLive, textOf, waitText } from './world.mjs';

// a WebSocket that never connects: errors, then closes, like a proxy that refuses upgrades
function brokenWebSocket() {
  window.__wsTries = 0;
  window.WebSocket = class {
    constructor(url) {
      window.__wsTries++;
      this.url = url;
      this.readyState = 0;
      setTimeout(() => {
        this.readyState = 3;
        if (this.onerror) this.onerror(new Event('error'));
        if (this.onclose) this.onclose({ code: 1006, reason: '', wasClean: false });
      }, 20);
    }
    send() { throw new Error('not open'); }
    close() {}
  };
}

describe('transport fallback', { timeout: 180_000 }, () => {
  let world, browser;
  // presence off: a page's own subscription would otherwise bring a
  // presence_update (its user now watching) within a second, and "LIVE before
  // any event has come" needs a mission on which nothing is published unasked
  before(async () => ({ world, browser } = await openWorld({ extraConf: 'push.presence = 0' })));
  after(() => closeWorld(world, browser));

  // a price and a fire by someone else both reach the page
  async function eventsArrive(page, sig, price) {
    await world.publish(`market:${sig.symbol}`, 'market_update',
      { symbol: sig.symbol, price, change: '+0.35' });
    await waitText(page, '#price', price);
    const before = Number(await textOf(page, '#fire-count'));
    await world.fire(world.token(`fan-${price}`), sig.id);
    await waitText(page, '#fire-count', String(before + 1));
  }

  test('?no=websocket: LIVE over SSE, and events arrive', async () => {
    const sig = await world.createSignal({ symbol: 'MSFT' });
    const page = await newLeaderPage(browser);
    const wsUrls = [];
    page.on('websocket', (ws) => wsUrls.push(ws.url()));
    await page.goto(world.missionUrl(sig.id, world.token('ola'), 'no=websocket'));
    await waitLive(page, 'sse');
    assert.equal(await textOf(page, '#badge-state'), 'LIVE');
    assert.equal(await textOf(page, '#badge-transport'), 'Server-Sent Events');
    await eventsArrive(page, sig, '411.20');
    assert.deepEqual(wsUrls, [], 'a blocked WebSocket was still opened');
    await page.close();
  });

  test('a WebSocket that always fails: LIVE over SSE, and events arrive', async () => {
    const sig = await world.createSignal({ symbol: 'NVDA' });
    const page = await newLeaderPage(browser);
    await page.addInitScript(brokenWebSocket);
    await page.goto(world.missionUrl(sig.id, world.token('pia')));
    await waitLive(page, 'sse');
    assert.ok(await page.evaluate(() => window.__wsTries) >= 1, 'WebSocket was never tried');
    await eventsArrive(page, sig, '128.05');
    await page.close();
  });

  test('a WebSocket the server closes at once: LIVE over SSE, and events arrive', async () => {
    const sig = await world.createSignal({ symbol: 'AMD' });
    const page = await newLeaderPage(browser);
    let tries = 0;
    await page.routeWebSocket(/\/push\/ws/, (ws) => { tries++; ws.close({ code: 1011, reason: 'down' }); });
    await page.goto(world.missionUrl(sig.id, world.token('quin')));
    await waitLive(page, 'sse');
    assert.ok(tries >= 1, 'WebSocket was never tried');
    await eventsArrive(page, sig, '160.00');
    await page.close();
  });

  test('?no=websocket,sse: long-poll, and events arrive', async () => {
    const sig = await world.createSignal({ symbol: 'TSLA' });
    const page = await newLeaderPage(browser);
    await page.goto(world.missionUrl(sig.id, world.token('rae'), 'no=websocket,sse'));
    await page.waitForFunction(() => document.getElementById('badge').dataset.transport === 'longpoll');
    await eventsArrive(page, sig, '251.40');
    await waitLive(page, 'longpoll');
    assert.equal(await textOf(page, '#badge-transport'), 'long-poll');
    await page.close();
  });

  test('?no=websocket,sse: the badge says LIVE over long-poll before any event has come', async () => {
    const sig = await world.createSignal({ symbol: 'ORCL' });
    const page = await newLeaderPage(browser);
    await page.addInitScript(recordLive);
    await page.goto(world.missionUrl(sig.id, world.token('ray'), 'no=websocket,sse'));
    await waitLive(page, 'longpoll');
    assert.deepEqual(await page.evaluate(() => window.__events), [], 'an event came before LIVE');
    await page.close();
  });

  test('?no=websocket,sse,longpoll: REST polling, and events arrive', async () => {
    const sig = await world.createSignal({ symbol: 'INTC' });
    const page = await newLeaderPage(browser);
    await page.goto(world.missionUrl(sig.id, world.token('sam'), 'no=websocket,sse,longpoll'));
    await page.waitForFunction(() => document.getElementById('badge').dataset.transport === 'polling');
    await eventsArrive(page, sig, '21.15');
    // REST polling is a degraded mode: with events arriving by it, polls
    // answered, the badge still does not claim LIVE
    assert.equal(await page.getAttribute('#badge', 'data-state'), 'reconnecting');
    assert.equal(await textOf(page, '#badge-transport'), 'polling');
    await page.close();
  });
});
