// A page that comes back after its history was trimmed gets a reset and refetches its state.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, recordLive, newLeaderPage, waitLive, textOf, waitText } from './world.mjs';

describe('resume past the history', { timeout: 120_000 }, () => {
  let world, browser;
  before(async () => ({ world, browser } = await openWorld({ extraConf: 'history.maxlen = 10' })));
  after(() => closeWorld(world, browser));

  test('a WebSocket that comes back past the trimmed history resets, and the page refetches', async () => {
    const sig = await world.createSignal({ symbol: 'IBM' });
    const page = await newLeaderPage(browser);
    await page.addInitScript(recordLive);
    // the page's WebSocket goes through here: `hold` drops what the daemon sends
    let hold = false;
    const sockets = [];
    await page.routeWebSocket(/\/push\/ws/, (ws) => {
      const server = ws.connectToServer();
      server.onMessage((m) => { if (!hold) ws.send(m); });
      ws.onMessage((m) => server.send(m));
      sockets.push(ws);
    });
    let missionLoads = 0;
    page.on('request', (r) => { if (/\/api\/missions\//.test(r.url())) missionLoads++; });
    await page.goto(world.missionUrl(sig.id, world.token('fox')));
    await waitLive(page, 'websocket');
    await world.publish('market:IBM', 'market_update', { symbol: 'IBM', price: '190.00', change: '+1.00' });
    await waitText(page, '#price', '190.00');
    assert.equal(missionLoads, 1);

    // the page hears nothing while 150 prices (far more than the 10 kept) and 2 fires go by
    hold = true;
    for (let i = 1; i <= 150; i++) {
      await world.publish('market:IBM', 'market_update',
        { symbol: 'IBM', price: (190 + i / 100).toFixed(2), change: '+0.01' });
    }
    await world.fire(world.token('pal-1'), sig.id);
    await world.fire(world.token('pal-2'), sig.id);
    assert.equal(await textOf(page, '#fire-count'), '0');
    // then its connection drops, and it comes back with its old position
    hold = false;
    await sockets.at(-1).close({ code: 1006 });
    await page.waitForFunction(() => window.__resets.length > 0);
    await waitLive(page, 'websocket');
    assert.deepEqual(await page.evaluate(() => window.__resets), ['market:IBM']);
    // the mission channel was not trimmed: its two events came, in order, once
    const counts = await page.evaluate(() => window.__events
      .filter((e) => e.type === 'fire_count_update').map((e) => e.data.count));
    assert.deepEqual(counts, [1, 2]);
    await waitText(page, '#fire-count', '2');
    // none of the lost prices was shown as if it were new
    const prices = await page.evaluate(() => window.__events
      .filter((e) => e.type === 'market_update').map((e) => e.data.price));
    assert.deepEqual(prices, ['190.00']);
    // the reset made the page fetch its state again
    assert.ok(missionLoads >= 2, `GET /api/missions ran ${missionLoads} times`);
    await world.publish('market:IBM', 'market_update', { symbol: 'IBM', price: '192.00', change: '+0.50' });
    await waitText(page, '#price', '192.00');
    await page.close();
  });
});
