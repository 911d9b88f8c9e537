// With the whole server (Apache) down the page says OFFLINE, backs off its retries, and comes back LIVE.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, newPage, waitLive, waitText } from './world.mjs';

describe('server outage', { timeout: 180_000 }, () => {
  let world, browser, page, sig;
  const attempts = []; // [ms since the outage began, what] of every connection try
  let t0 = 0;

  before(async () => {
    ({ world, browser } = await openWorld());
    sig = await world.createSignal();
    page = await newPage(browser);
    await page.goto(world.missionUrl(sig.id, world.token('hana')));
    await waitLive(page, 'websocket');
    page.on('request', (r) => {
      if (t0 && /\/(push\/|api\/events)/.test(r.url())) attempts.push([Date.now() - t0, new URL(r.url()).pathname]);
    });
    page.on('websocket', (ws) => { if (t0) attempts.push([Date.now() - t0, 'ws']); });
  });
  after(() => closeWorld(world, browser));

  test('Apache down: the badge says OFFLINE', async () => {
    t0 = Date.now();
    world.apacheStop();
    await page.waitForSelector('#badge[data-state="offline"]', { timeout: 30_000 });
  });

  test('Apache down: the retries back off (exponentially, to several seconds apart)', async () => {
    // The page first walks down the transports (how fast depends on how the
    // server goes away), then polls the REST API: judge the backoff there,
    // on five polling tries (a wait doubling from 1 s, with jitter, reaches
    // them within about 30 s; the suite allows 60).
    const polls = () => attempts.filter((a) => a[1] === '/api/events').map((a) => a[0]);
    const deadline = Date.now() + 60_000;
    while (polls().length < 5 && Date.now() < deadline) await page.waitForTimeout(250);
    const p = polls().slice(0, 5);
    const detail = `polling tries at ${p.map((t) => (t / 1000).toFixed(1)).join(', ')} s ` +
      `(all tries: ${attempts.map((a) => (a[0] / 1000).toFixed(1)).join(', ')})`;
    assert.equal(p.length, 5, `fewer than 5 polling tries in 60 s: ${detail}`);
    const gaps = p.slice(1).map((t, i) => t - p[i]);
    // doubling: the 4th wait is 4 to 8 times the 1st (jitter takes each to
    // between half and all of its step); a fixed retry keeps them equal
    assert.ok(gaps[3] >= 2 * gaps[0], `the waits do not grow: ${gaps.join(', ')} ms; ${detail}`);
    assert.ok(gaps[3] >= 2000, `the 4th wait is only ${gaps[3]} ms; ${detail}`);
  });

  test('Apache back: LIVE over WebSocket within 40 s, with what was missed', async () => {
    world.apacheStart();
    await world.fire(world.token('ines'), sig.id);
    await waitLive(page, 'websocket', 40_000);
    await waitText(page, '#fire-count', '1');
  });
});
