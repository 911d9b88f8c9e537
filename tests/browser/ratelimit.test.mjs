// Over the per-user fire rate (429) the page shows how long to wait and holds the button.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, newPage, waitLive, textOf, pauseClock } from './world.mjs';

describe('rate limit', { timeout: 120_000 }, () => {
  let world, browser;
  before(async () => ({ world, browser } = await openWorld({ extraConf: 'api.fire_rate_per_min = 1' })));
  after(() => closeWorld(world, browser));

  test('a 429 shows the wait, counts it down and keeps FIRE disabled to its end (on the page\'s clock)', async () => {
    const [a, b] = [await world.createSignal(), await world.createSignal()];
    const token = world.token('nat');
    await world.fire(token, a.id); // the one fire this minute allows
    const page = await newPage(browser);
    // the page's clock, moved by the test, stands still from the click on
    await page.clock.install();
    await page.goto(world.missionUrl(b.id, token));
    await page.waitForSelector('#fire[data-state="idle"]');
    await waitLive(page, 'websocket'); // no connection guard runs on the test's clock
    await pauseClock(page);
    const answer = page.waitForResponse('**/api/fire');
    await page.click('#fire');
    const r = await answer;
    assert.equal(r.status(), 429);
    const retryAfter = Number((await r.json()).retry_after ?? r.headers()['retry-after']);
    // one fire a minute, just used: the wait is about a minute
    assert.ok(retryAfter >= 45 && retryAfter <= 60, `retry_after ${retryAfter}`);
    await page.waitForSelector('#fire[data-state="wait"]');
    assert.equal(await textOf(page, '#fire-message'), `Too many orders: wait ${retryAfter} s.`);
    assert.equal(await page.isDisabled('#fire'), true);
    // two seconds on: two seconds less
    await page.clock.runFor(2000);
    assert.equal(await textOf(page, '#fire-message'), `Too many orders: wait ${retryAfter - 2} s.`);
    assert.equal(await page.isDisabled('#fire'), true);
    // held to the last second of the wait, and free at its end
    await page.clock.runFor((retryAfter - 3) * 1000);
    assert.equal(await textOf(page, '#fire-message'), 'Too many orders: wait 1 s.');
    assert.equal(await page.isDisabled('#fire'), true);
    await page.clock.runFor(1000);
    await page.waitForSelector('#fire[data-state="idle"]');
    assert.equal(await page.isDisabled('#fire'), false);
    assert.equal((await world.api('GET', `/api/signals/${b.id}/fire-count`)).body.count, 0);
    await page.close();
  });
});
