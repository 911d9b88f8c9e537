// The admin page (/admin): live figures from the push daemon, active signals with live fire counts, the system log, and refusal without an admin token.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, newPage, waitLive, textOf, waitText, T } from './world.mjs';

describe('admin page', { timeout: 120_000 }, () => {
  let world, browser, admin, sigs;
  before(async () => {
    ({ world, browser } = await openWorld());
    admin = world.token('ops', { role: 'admin' });
    sigs = [];
    for (let i = 0; i < 2; i++) sigs.push(await world.createSignal({ symbol: 'EURUSD', entry: '1.0850', stop_loss: '1.0800', take_profit: '1.0950' }));
  });
  after(() => closeWorld(world, browser));

  async function open(token) {
    const page = await newPage(browser);
    await page.goto(`${world.base}/admin?token=${encodeURIComponent(token)}`);
    return page;
  }

  test('shows the active signals, and a fire moves a count live', async () => {
    const page = await open(admin);
    await waitLive(page, 'websocket');
    for (const s of sigs) await page.waitForSelector(`#signal-${s.id}`);
    const count = `#signal-${sigs[0].id} [data-count]`;
    assert.equal(await textOf(page, count), '0');
    await world.fire(world.token('trader-1'), sigs[0].id);
    await waitText(page, count, '1', 3000);
    // the token left the address bar
    assert.equal(new URL(page.url()).search, '');
    await page.context().close();
  });

  test('figures come live from the push daemon: connections, fires per minute, active signals', async () => {
    const page = await open(admin);
    await waitLive(page, 'websocket');
    // admin_stats arrive every 5 s; this page is one WebSocket connection at least
    await page.waitForFunction(() => Number(document.getElementById('conn-total').textContent) >= 1,
      null, { timeout: 12_000 });
    const active = Number(await textOf(page, '#active-signals'));
    assert.ok(active >= 2, `active signals: ${active}`);
    assert.match(await textOf(page, '#fires-per-minute'), /^\d+$/);
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
