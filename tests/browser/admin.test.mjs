// The admin page (/admin): live figures from the push daemon, active signals with live fire counts, the system log, and refusal without an admin token.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, recordLive, newLeaderPage, waitLive, textOf, waitText, T } from './world.mjs';

describe('admin page', { timeout: 120_000 }, () => {
  let world, browser, admin, sigs;
  before(async () => {
    ({ world, browser } = await openWorld());
    admin = world.token('ops', { role: 'admin' });
    sigs = [];
    for (let i = 0; i < 2; i++) sigs.push(await world.createSignal({ symbol: 'EURUSD', entry: '1.0850', stop_loss: '1.0800', take_profit: '1.0950' }));
  });
  after(() => closeWorld(world, browser));

  // Opens the admin page. Its REST reads (the figures from GET /api/admin/stats,
  // the table from GET /api/signals) are let through once, at the load; any
  // later one (the page's 15 s refresh of the table, a reload after a reset)
  // is refused and counted, so what changes on the page afterwards can only
  // have come over the push stream. Records every event handed to the page
  // (recordLive) and every admin_stats frame that came in over its WebSocket.
  async function open(token) {
    const page = await newLeaderPage(browser);
    await page.addInitScript(recordLive);
    const reads = { '/api/admin/stats': 0, '/api/signals': 0 };
    page.restRefused = [];
    page.statsLoaded = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/admin/stats');
    await page.route((u) => u.pathname in reads, (route) => {
      const path = new URL(route.request().url()).pathname;
      if (route.request().method() === 'GET' && reads[path]++ === 0) return route.continue();
      page.restRefused.push(path);
      return route.abort('connectionrefused');
    });
    page.statsFrames = [];
    page.on('websocket', (ws) => ws.on('framereceived', (f) => {
      const text = String(f.payload);
      if (text.includes('"admin_stats"')) page.statsFrames.push(text);
    }));
    await page.goto(`${world.base}/admin?token=${encodeURIComponent(token)}`);
    return page;
  }

  test('shows the active signals, and a fire moves a count live (no REST read after the load)', async () => {
    const page = await open(admin);
    await waitLive(page, 'websocket');
    for (const s of sigs) await page.waitForSelector(`#signal-${s.id}`);
    const count = `#signal-${sigs[0].id} [data-count]`;
    assert.equal(await textOf(page, count), '0');
    await world.fire(world.token('trader-1'), sigs[0].id);
    await waitText(page, count, '1');
    const updates = await page.evaluate(() => window.__events
      .filter((e) => e.type === 'fire_count_update').map((e) => [e.data.signal_id, e.data.count]));
    assert.deepEqual(updates, [[sigs[0].id, 1]]);
    assert.deepEqual(page.restRefused.filter((p) => p !== '/api/signals'), []);
    // the token left the address bar
    assert.equal(new URL(page.url()).search, '');
    await page.context().close();
  });

  test('figures come over the push stream: an admin_stats event after a change, shown as sent (connections, fires per minute, active signals)', async () => {
    const page = await open(admin);
    // what the REST load showed
    const rest = await (await page.statsLoaded).json();
    await waitLive(page, 'websocket');
    await waitText(page, '#active-signals', String(rest.active_signals));
    // a change the load could not show: one more active signal
    await world.createSignal({ symbol: 'EURUSD', entry: '1.0850', stop_loss: '1.0800', take_profit: '1.0950' });
    // the daemon's next admin_stats (every 5 s) carries it; the page shows
    // exactly the figures of the last admin_stats it was handed
    const shown = await page.waitForFunction((restActive) => {
      const ev = window.__events.filter((e) => e.type === 'admin_stats').at(-1);
      if (!ev || ev.data.active_signals <= restActive) return null;
      const c = ev.data.connections || {};
      const dom = {
        active: document.getElementById('active-signals').textContent,
        fires: document.getElementById('fires-per-minute').textContent,
        conn: document.getElementById('conn-total').textContent,
      };
      const want = {
        active: String(ev.data.active_signals),
        fires: String(ev.data.fires_last_minute),
        conn: String((c.ws || 0) + (c.sse || 0) + (c.poll || 0)),
      };
      return JSON.stringify(dom) === JSON.stringify(want) ? { ev, dom } : null;
    }, rest.active_signals, { timeout: T, polling: 100 }).then((h) => h.jsonValue())
      .catch(async (e) => {
        const got = await page.evaluate(() => ({
          events: window.__events.filter((x) => x.type === 'admin_stats').map((x) => x.data),
          active: document.getElementById('active-signals').textContent,
        })).catch(() => '?');
        throw new Error(`no admin_stats shown with the new signal (REST load: ${JSON.stringify(rest)}; ` +
          `page: ${JSON.stringify(got)})`, { cause: e });
      });
    const { ev, dom } = shown;
    assert.equal(ev.data.active_signals, rest.active_signals + 1);
    assert.match(dom.fires, /^\d+$/);
    assert.ok(Number(dom.conn) >= 1, 'this page\'s own WebSocket is not counted');
    // it came in over the page's WebSocket, and no REST read of the figures followed the load
    assert.ok(page.statsFrames.some((f) => f.includes(`"${ev.id}"`)),
      `admin_stats ${ev.id} is not among the WebSocket frames received`);
    assert.deepEqual(page.restRefused.filter((p) => p === '/api/admin/stats'), []);
    await page.context().close();
  });

  test('the system log shows a signal being created, as it happens', async () => {
    const page = await open(admin);
    await waitLive(page, 'websocket');
    const s = await world.createSignal({ title: 'log me' });
    await page.waitForFunction((id) => document.getElementById('log').textContent.includes(`signal ${id}`),
      s.id, { timeout: T });
    // the new signal joins the table too
    await page.waitForSelector(`#signal-${s.id}`);
    await page.context().close();
  });

  test('a user token is refused, with a message', async () => {
    const page = await open(world.token('not-an-admin'));
    await page.waitForFunction(() => document.getElementById('admin-message').textContent.length > 0);
    assert.match(await textOf(page, '#admin-message'), /admin token/);
    assert.equal(await page.$$eval('#signals tbody tr', (r) => r.length), 0);
    await page.context().close();
  });
});
