// The mission page outlives its token: over WebSocket it sends a refresh when warned (token_expiring) and keeps its one connection; over SSE the stream ends at exp and the page opens it again on the fresh token, from its cursor, missing and doubling nothing.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, recordLive, newLeaderPage, waitLive, waitText, waitUntil, T } from './world.mjs';

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

describe('token lifetime on the mission page', { timeout: 150_000 }, () => {
  let world, browser, sig;
  let n = 0;
  const price = () => (200 + n++ / 100).toFixed(2);
  const publishPrice = async () => {
    const p = price();
    const ev = await world.publish(`market:${sig.symbol}`, 'market_update', { symbol: sig.symbol, price: p, change: '+0.01' });
    return { p, id: ev.id };
  };

  // tokens of a few seconds, warned (WebSocket) well before exp; long enough
  // for a slow machine to have the page live before the warning
  before(async () => {
    ({ world, browser } = await openWorld({
      extraConf: 'push.token_warn_s = 8\npush.token_grace_s = 2\n',
    }));
    sig = await world.createSignal({ symbol: 'MSFT' });
  });
  after(async () => { await closeWorld(world, browser); });

  test('WebSocket: a refresh in place when warned, one connection past the old exp and its grace', async () => {
    const page = await newLeaderPage(browser);
    await page.addInitScript(recordLive);
    await page.addInitScript(recordTransports);
    await page.goto(world.missionUrl(sig.id, world.token('tina', { ttl: 20 })));
    await waitLive(page, 'websocket');
    // the sign-in side keeps a newer token where the page looks for one
    await page.evaluate((t) => sessionStorage.setItem('sortie_token', t), world.token('tina'));
    // the warning, then the page's refresh, answered
    const warning = JSON.parse(await page.waitForFunction(() =>
      window.__wsIn.find((m) => m.includes('"token_expiring"')), null, { timeout: 60_000 })
      .then((h) => h.jsonValue()));
    assert.ok(warning.close_at > 0, `token_expiring without close_at: ${JSON.stringify(warning)}`);
    await page.waitForFunction(() => window.__wsIn.some((m) => m.includes('"refreshed"')));
    // the moment the daemon would have closed an unrefreshed connection (its
    // close_at, on the server's clock: this machine's) has passed ...
    await waitUntil(async () => Date.now() / 1000 > warning.close_at + 1,
      `the old token's close_at (${warning.close_at}) to pass`);
    // ... and a price published now still comes, over the same WebSocket
    const { p } = await publishPrice();
    await waitText(page, '#price', p);
    await waitLive(page, 'websocket');
    const got = await page.evaluate(() => ({ ws: window.__ws, msgs: window.__wsIn }));
    assert.equal(got.ws, 1, 'the page opened another WebSocket');
    assert.ok(!got.msgs.some((m) => m.includes('"token_expired"')), `token_expired came: ${got.msgs.join(' ')}`);
    await page.context().close();
  });

  test('SSE: the stream ends at exp, the page resumes on the fresh token, nothing lost or doubled', async () => {
    const page = await newLeaderPage(browser);
    await page.addInitScript(recordLive);
    await page.addInitScript(recordTransports);
    const fresh = world.token('tess');
    await page.goto(world.missionUrl(sig.id, world.token('tess', { ttl: 8 }), 'no=websocket'));
    await waitLive(page, 'sse');
    await page.evaluate((t) => sessionStorage.setItem('sortie_token', t), fresh);
    const first = await publishPrice();
    await waitText(page, '#price', first.p);
    // prices go on being published (one about every 100 ms) across exp, until
    // the page has opened its stream again and is LIVE on it; then one more
    const ids = [];
    await waitUntil(async () => {
      ids.push((await publishPrice()).id);
      return page.evaluate(() => window.__es.length >= 2 &&
        document.getElementById('badge').dataset.state === 'live');
    }, 'the stream to be opened again, LIVE', 60_000);
    const last = await publishPrice();
    ids.push(last.id);
    await waitText(page, '#price', last.p);
    await waitLive(page, 'sse');
    const got = await page.evaluate(() => ({ es: window.__es, ev: window.__events.map((e) => e.id) }));
    assert.ok(got.es.length >= 2, `the stream was not opened again: ${got.es.length}`);
    assert.ok(got.es.at(-1).includes(encodeURIComponent(fresh)), 'the new stream does not use the fresh token');
    for (const id of ids) assert.equal(got.ev.filter((x) => x === id).length, 1, `event ${id} not exactly once`);
    assert.equal(new Set(got.ev).size, got.ev.length, 'an event came twice');
    await page.context().close();
  });

  // the pages' shared client in its SharedWorker: the worker has no
  // sessionStorage; it asks a tab (whose getToken reads it) for the token
  test('SharedWorker: the worker gets a fresh token from a tab when warned and keeps its one connection past the old exp', async () => {
    const context = await browser.newContext();
    context.setDefaultTimeout(T);
    const page = await context.newPage();
    const old = world.token('tora', { ttl: 20 });
    const exp = JSON.parse(Buffer.from(old.split('.')[1], 'base64url').toString()).exp;
    await page.goto(world.missionUrl(sig.id, old));
    await waitLive(page, 'websocket');
    assert.equal(await page.evaluate(() => window.sortieLive.sharing), 'worker');
    await page.evaluate(() => {
      window.__states = [];
      window.sortieLive.on('state', (st) => window.__states.push(`${st.state}/${st.transport}`));
    });
    const fresh = world.token('tora');
    await page.evaluate((t) => sessionStorage.setItem('sortie_token', t), fresh);
    // the worker took the fresh token (asked of this tab, the only one)
    await page.waitForFunction((t) => window.sortieLive.token === t, fresh, { timeout: 60_000 });
    // past the old token's exp and grace (close_at, on this machine's clock) ...
    await waitUntil(async () => Date.now() / 1000 > exp + 2 + 1, `the old token's close_at (${exp + 2}) to pass`);
    // ... a price published now still comes, and the connection never left LIVE
    const { p } = await publishPrice();
    await waitText(page, '#price', p);
    assert.deepEqual(await page.evaluate(() => window.__states), [], 'the shared connection was lost');
    await context.close();
  });
});

