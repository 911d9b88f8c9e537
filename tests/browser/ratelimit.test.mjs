// Over the per-user fire rate (429) the page shows how long to wait and holds the button.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, newPage, textOf } from './world.mjs';

describe('rate limit', { timeout: 120_000 }, () => {
  let world, browser;
  before(async () => ({ world, browser } = await openWorld({ extraConf: 'api.fire_rate_per_min = 1' })));
  after(() => closeWorld(world, browser));

  test('a 429 shows the wait, counts it down and keeps FIRE disabled', async () => {
    const [a, b] = [await world.createSignal(), await world.createSignal()];
    const token = world.token('nat');
    await world.fire(token, a.id); // the one fire this minute allows
    const page = await newPage(browser);
    await page.goto(world.missionUrl(b.id, token));
    await page.waitForSelector('#fire[data-state="idle"]');
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
    await page.waitForTimeout(2100);
    const m = /^Too many orders: wait (\d+) s\.$/.exec(await textOf(page, '#fire-message'));
    assert.ok(m, 'the wait message is still there');
    assert.ok(Number(m[1]) < retryAfter, `the wait went from ${retryAfter} s to ${m[1]} s`);
    assert.equal(await page.isDisabled('#fire'), true);
    assert.equal((await world.api('GET', `/api/signals/${b.id}/fire-count`)).body.count, 0);
    await page.close();
  });
});
