// With the whole server (Apache) down the page says OFFLINE, backs off its retries, and comes back LIVE.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, newLeaderPage, waitLive, waitText, T, pauseClock } from './world.mjs';

// counts the page's fetches in flight and notes, on the page's clock, when
// each REST poll (GET /api/events) starts
function recordFetches() {
  window.__pending = 0;
  window.__polls = [];
  const f = window.fetch;
  window.fetch = function (input, init) {
    const url = String(input && input.url ? input.url : input);
    if (url.includes('/api/events')) window.__polls.push(Date.now());
    window.__pending++;
    const p = f.call(this, input, init);
    p.then(() => {}, () => {}).finally(() => { window.__pending--; });
    return p;
  };
}

// the REST polling retry after a failed read (live.js; docs/API.md, GET
// /api/events): 1 s doubling to 15 s, each with jitter to between half and all of it
const step = (k) => Math.min(15_000, 1000 * 2 ** k);

describe('server outage', { timeout: 180_000 }, () => {
  let world, browser, page, sig;

  before(async () => {
    ({ world, browser } = await openWorld());
    sig = await world.createSignal();
    page = await newLeaderPage(browser);
    // the page's timers and Date run on a clock the test can stop and move
    await page.clock.install();
    await page.addInitScript(recordFetches);
    await page.goto(world.missionUrl(sig.id, world.token('hana')));
    await waitLive(page, 'websocket');
  });
  after(() => closeWorld(world, browser));

  test('Apache down: the badge says OFFLINE', async () => {
    world.apacheStop();
    await page.waitForSelector('#badge[data-state="offline"]');
  });

  test('Apache down: the polling retries back off, 1 s doubling, with jitter (on the page\'s clock)', async (t) => {
    // From here the page's clock stands still but when the test moves it,
    // 100 ms at a time, and only while no fetch of the page is in flight: the
    // time between two polls is then exactly the wait the page chose.
    await pauseClock(page);
    const from = await page.evaluate(() => window.__polls.length);
    const want = 6; // polls after the pause: five waits between them
    const end = Date.now() + 120_000; // against a hang only
    for (;;) {
      await page.waitForFunction(() => window.__pending === 0, null, { timeout: T });
      const n = await page.evaluate(() => window.__polls.length);
      if (n - from >= want) break;
      assert.ok(Date.now() < end, `only ${n - from} polls after the pause`);
      await page.clock.runFor(100);
    }
    const polls = (await page.evaluate(() => window.__polls)).slice(from, from + want);
    const gaps = polls.slice(1).map((t, i) => t - polls[i]);
    // the waits are steps k0, k0+1, ... of the doubling, for one k0: each
    // between half and all of its step, to the 100 ms the clock moves by
    const fits = (k0) => gaps.every((g, i) => g >= step(k0 + i) / 2 && g <= step(k0 + i) + 100);
    const k0 = [0, 1, 2, 3, 4].find(fits);
    t.diagnostic(`waits between polls: ${gaps.join(', ')} ms (steps from ${k0 === undefined ? '?' : step(k0)} ms)`);
    assert.ok(k0 !== undefined, `the waits between polls, ${gaps.join(', ')} ms, do not double from 1 s ` +
      `with jitter (steps ${[0, 1, 2, 3, 4].map(step).join(', ')} ms, each halved at most)`);
    // the last of them several seconds apart
    assert.ok(gaps.at(-1) >= 4000, `the last wait is only ${gaps.at(-1)} ms: ${gaps.join(', ')}`);
  });

  test('Apache back: LIVE over WebSocket again, with what was missed', async () => {
    world.apacheStart();
    await world.fire(world.token('ines'), sig.id);
    // the page's clock runs again: the next poll (at most 15 s on), then the
    // WebSocket tried again (10 to 20 s on); the bound only turns a hang into a failure
    await page.clock.resume();
    await waitLive(page, 'websocket', 90_000);
    await waitText(page, '#fire-count', '1');
  });
});
