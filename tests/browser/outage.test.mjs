// With the whole server (Apache) down the page says OFFLINE, backs off its retries, and comes back LIVE.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorld, launchBrowser, newPage, waitLive, waitText } from './world.mjs';

describe('server outage', { timeout: 180_000 }, () => {
  let world, browser, page, sig;
  const attempts = []; // [ms since the outage began, what] of every connection try
  let t0 = 0;

  before(async () => {
    world = await startWorld();
    browser = await launchBrowser();
    sig = await world.createSignal();
    page = await newPage(browser);
    await page.goto(world.missionUrl(sig.id, world.token('hana')));
    await waitLive(page, 'websocket');
    page.on('request', (r) => {
      if (t0 && /\/(push\/|api\/events)/.test(r.url())) attempts.push([Date.now() - t0, new URL(r.url()).pathname]);
    });
    page.on('websocket', (ws) => { if (t0) attempts.push([Date.now() - t0, 'ws']); });
  });
  after(async () => {
    await browser?.close().catch(() => {});
    await world?.stop();
  });

  test('Apache down: the badge says OFFLINE', async () => {
    t0 = Date.now();
    world.apacheStop();
    await page.waitForSelector('#badge[data-state="offline"]', { timeout: 30_000 });
  });

  test('Apache down: the retries back off (exponentially, to several seconds apart)', async () => {
    // 35 s from the first failed try (stopping Apache itself takes a few seconds)
    assert.ok(attempts.length > 0, 'the page never tried to reconnect');
    const first = attempts[0][0];
    await page.waitForTimeout(Math.max(0, first + 35_000 - (Date.now() - t0)));
    const times = attempts.map((a) => a[0] - first).filter((t) => t <= 35_000);
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    const last = gaps.slice(-3);
    const detail = `tries at ${times.map((t) => (t / 1000).toFixed(1)).join(', ')} s`;
    // the first seconds walk down the transports (WebSocket, SSE, long-poll,
    // polling: two quick tries each); after that the waits double (with
    // jitter) up to 15 s, so the last 20 s hold a handful of tries, where a
    // fixed 3 s retry would make 7
    const late = times.filter((t) => t >= 15_000).length;
    assert.ok(late <= 5, `${late} tries in the last 20 s: ${detail}`);
    // doubling with jitter (each wait is between half and all of its step): by
    // the 8 s step a gap is at least 4 s; a fixed 3 s retry never passes 3.5 s
    assert.ok(Math.max(...last) >= 3500, `the last gaps are ${last.join(', ')} ms: ${detail}`);
  });

  test('Apache back: LIVE over WebSocket within 40 s, with what was missed', async () => {
    world.apacheStart();
    await world.fire(world.token('ines'), sig.id);
    await waitLive(page, 'websocket', 40_000);
    await waitText(page, '#fire-count', '1');
  });
});
