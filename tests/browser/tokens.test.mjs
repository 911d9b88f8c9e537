// The mission page outlives its token: over WebSocket it sends a refresh when warned (token_expiring) and keeps its one connection; over SSE the stream ends at exp and the page opens it again on the fresh token, from its cursor, missing and doubling nothing.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, recordLive, newPage, waitLive, waitText } from './world.mjs';

// counts the page's WebSockets and EventSources, and the WebSocket messages it gets
function recordTransports() {
  window.__ws = 0;
  window.__es = [];
  window.__wsIn = [];
  const WS = window.WebSocket;
  window.WebSocket = function (url, p) {
    window.__ws++;
    const ws = p === undefined ? new WS(url) : new WS(url, p);
    ws.addEventListener('message', (m) => window.__wsIn.push(String(m.data)));
    return ws;
  };
  window.WebSocket.prototype = WS.prototype;
  const ES = window.EventSource;
  window.EventSource = function (url, o) {
    window.__es.push(String(url));
    return new ES(url, o);
  };
  window.EventSource.prototype = ES.prototype;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('token lifetime on the mission page', { timeout: 120_000 }, () => {
  let world, browser, sig;
  let n = 0;
  const price = () => (200 + n++ / 100).toFixed(2);

  before(async () => {
    ({ world, browser } = await openWorld({
      extraConf: 'push.token_warn_s = 4\npush.token_grace_s = 2\n',
    }));
    sig = await world.createSignal({ symbol: 'MSFT' });
  });
  after(async () => { await closeWorld(world, browser); });

  test('WebSocket: a refresh in place before exp, one connection throughout', async () => {
    const page = await newPage(browser);
    await page.addInitScript(recordLive);
    await page.addInitScript(recordTransports);
    const ttl = 7;
    const exp = Math.floor(Date.now() / 1000) + ttl;
    await page.goto(world.missionUrl(sig.id, world.token('tina', { ttl })));
    await waitLive(page, 'websocket');
    // the sign-in side keeps a newer token where the page looks for one
    await page.evaluate((t) => sessionStorage.setItem('sortie_token', t), world.token('tina'));
    // past the old exp and its grace
    await sleep(Math.max(0, (exp + 3) * 1000 - Date.now()));
    const p = price();
    await world.publish(`market:${sig.symbol}`, 'market_update', { symbol: sig.symbol, price: p, change: '+0.01' });
    await waitText(page, '#price', p, 5000);
    const got = await page.evaluate(() => ({ ws: window.__ws, msgs: window.__wsIn }));
    assert.ok(got.msgs.some((m) => m.includes('"token_expiring"')), 'no token_expiring came');
    assert.ok(got.msgs.some((m) => m.includes('"refreshed"')), `no refreshed: ${got.msgs.join(' ')}`);
    assert.equal(got.ws, 1, 'the page opened another WebSocket');
    await waitLive(page, 'websocket', 1000);
    await page.context().close();
  });

  test('SSE: the stream ends at exp, the page resumes on the fresh token, nothing lost or doubled', async () => {
    const page = await newPage(browser);
    await page.addInitScript(recordLive);
    await page.addInitScript(recordTransports);
    const ttl = 5;
    const exp = Math.floor(Date.now() / 1000) + ttl;
    const fresh = world.token('tess');
    await page.goto(world.missionUrl(sig.id, world.token('tess', { ttl }), 'no=websocket'));
    await waitLive(page, 'sse');
    await page.evaluate((t) => sessionStorage.setItem('sortie_token', t), fresh);
    const p1 = price();
    await world.publish(`market:${sig.symbol}`, 'market_update', { symbol: sig.symbol, price: p1, change: '+0.01' });
    await waitText(page, '#price', p1, 5000);
    // around exp and after it
    await sleep(Math.max(0, exp * 1000 - Date.now() - 200));
    const ids = [];
    for (let i = 0; i < 4; i++) {
      const p = price();
      ids.push((await world.publish(`market:${sig.symbol}`, 'market_update', { symbol: sig.symbol, price: p, change: '+0.01' })).id);
      await sleep(300);
    }
    await waitText(page, '#price', (200 + (n - 1) / 100).toFixed(2), 8000);
    await waitLive(page, 'sse', 5000);
    const got = await page.evaluate(() => ({ es: window.__es, ev: window.__events.map((e) => e.id) }));
    assert.ok(got.es.length >= 2, `the stream was not opened again: ${got.es.length}`);
    assert.ok(got.es.at(-1).includes(encodeURIComponent(fresh)), 'the new stream does not use the fresh token');
    for (const id of ids) assert.equal(got.ev.filter((x) => x === id).length, 1, `event ${id} not exactly once`);
    assert.equal(new Set(got.ev).size, got.ev.length, 'an event came twice');
    await page.context().close();
  });
});
