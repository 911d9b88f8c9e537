// FIRE on the page: the count, the stats and the button follow; fires from elsewhere show up live.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, newPage, waitLive, textOf, waitText } from './world.mjs';

describe('firing', { timeout: 150_000 }, () => {
  let world, browser;
  before(async () => ({ world, browser } = await openWorld()));
  after(() => closeWorld(world, browser));

  // opens the page for user sub, ready to fire and live
  async function open(sid, sub, contextOptions) {
    const page = await newPage(browser, contextOptions);
    await page.goto(world.missionUrl(sid, world.token(sub)));
    await page.waitForSelector('#fire[data-state="idle"]');
    await waitLive(page, 'websocket');
    return page;
  }

  const restCount = async (sid) =>
    (await world.api('GET', `/api/signals/${sid}/fire-count`)).body.count;

  test('FIRE increments the count and the stats, then stays fired', async () => {
    const sig = await world.createSignal();
    await world.fire(world.token('other-1'), sig.id);
    const page = await open(sig.id, 'gus');
    await waitText(page, '#fire-count', '1');
    await waitText(page, '#stat-trades-today', '0');
    await page.click('#fire');
    await page.waitForSelector('#fire[data-state="fired"]');
    await waitText(page, '#fire-count', '2');
    await waitText(page, '#stat-trades-today', '1');
    assert.equal(await textOf(page, '#fire-label'), 'FIRED');
    assert.equal(await page.isDisabled('#fire'), true);
    assert.match(await textOf(page, '#fire-message'), /^Fired\. Trade \S+ is open\.$/);
    assert.equal(await restCount(sig.id), 2);
    await page.close();
  });

  test('a second load of the page shows it fired', async () => {
    const sig = await world.createSignal();
    const page = await open(sig.id, 'hal');
    await page.click('#fire');
    await page.waitForSelector('#fire[data-state="fired"]');
    await page.reload();
    await page.waitForSelector('#fire[data-state="fired"]');
    assert.equal(await page.isDisabled('#fire'), true);
    await waitText(page, '#fire-count', '1');
    await waitText(page, '#stat-trades-today', '1');
    assert.match(await textOf(page, '#fire-message'), /You fired this mission \(trade \S+\)/);
    await page.close();
  });

  test('each fire by another user over REST shows in the count, one by one', async () => {
    const sig = await world.createSignal();
    const page = await open(sig.id, 'ida');
    await waitText(page, '#fire-count', '0');
    for (let i = 1; i <= 3; i++) {
      await world.fire(world.token(`other-${i}`), sig.id);
      await waitText(page, '#fire-count', String(i));
    }
    // not the page's user: its own button is untouched
    assert.equal(await page.getAttribute('#fire', 'data-state'), 'idle');
    await waitText(page, '#stat-trades-today', '0');
    await page.close();
  });

  test('a fire by the same user elsewhere turns the button to FIRED', async () => {
    const sig = await world.createSignal();
    const page = await open(sig.id, 'jon');
    await world.fire(world.token('jon'), sig.id);
    await page.waitForSelector('#fire[data-state="fired"]');
    assert.equal(await page.isDisabled('#fire'), true);
    await waitText(page, '#fire-count', '1');
    await waitText(page, '#stat-trades-today', '1');
    await page.close();
  });

  test('a double click fires once', async () => {
    const sig = await world.createSignal();
    const page = await open(sig.id, 'kim');
    const posts = [];
    let marker = null;
    page.on('request', (r) => {
      if (r.url().endsWith('/api/fire')) posts.push(r);
      if (r.url().endsWith('/api/health?marker')) marker = posts.length;
    });
    await page.dblclick('#fire');
    await page.waitForSelector('#fire[data-state="fired"]');
    // the fire's event has come back over the stream ...
    await waitText(page, '#fire-count', '1');
    // ... then a marker request from the page: a second POST the double click
    // caused would have gone out before it
    await page.evaluate(() => fetch('/api/health?marker').then(() => null, () => null));
    assert.notEqual(marker, null, 'the marker request was not seen');
    assert.equal(marker, 1, `${marker} POST /api/fire before the marker, for a double click`);
    assert.equal(posts.length, 1, `${posts.length} POST /api/fire for a double click`);
    assert.equal(await restCount(sig.id), 1);
    await page.close();
  });

  test('a FIRE whose answer is lost is retried with the same Idempotency-Key, firing once', async () => {
    const sig = await world.createSignal();
    const page = await open(sig.id, 'lea');
    const keys = [];
    await page.route('**/api/fire', async (route) => {
      keys.push(route.request().headers()['idempotency-key']);
      if (keys.length === 1) {
        await route.fetch(); // the server fires ...
        await route.abort('connectionreset'); // ... and the answer never arrives
      } else {
        await route.continue();
      }
    });
    const replayed = page.waitForResponse((r) => r.url().endsWith('/api/fire') && r.status() === 201);
    await page.click('#fire');
    await replayed; // the retry's answer: the first one, replayed
    await page.waitForSelector('#fire[data-state="fired"]');
    assert.equal(keys.length, 2, 'one retry after the lost answer');
    assert.ok(keys[0] && keys[0].length >= 16, `Idempotency-Key "${keys[0]}"`);
    assert.equal(keys[1], keys[0]);
    assert.equal(await restCount(sig.id), 1);
    await waitText(page, '#fire-count', '1');
    await waitText(page, '#stat-trades-today', '1');
    assert.match(await textOf(page, '#fire-message'), /^Fired\. Trade \S+ is open\.$/);
    await page.close();
  });

  test('FIRE on a signal expired on the server (410) shows EXPIRED and disables the button', async () => {
    const sig = await world.createSignal({ ttl: 2 });
    // the page's clock stands still, so only the server knows the signal has expired
    const page = await newPage(browser);
    await page.clock.setFixedTime(new Date());
    await page.goto(world.missionUrl(sig.id, world.token('max')));
    await page.waitForSelector('#fire[data-state="idle"]');
    await world.untilExpired(sig.id);
    assert.equal(await page.getAttribute('#fire', 'data-state'), 'idle', 'the page expired it by itself');
    const answer = page.waitForResponse('**/api/fire');
    await page.click('#fire');
    assert.equal((await answer).status(), 410);
    await page.waitForSelector('#fire[data-state="expired"]');
    assert.equal(await page.isDisabled('#fire'), true);
    assert.equal(await textOf(page, '#fire-label'), 'EXPIRED');
    assert.equal(await textOf(page, '#status'), 'EXPIRED');
    assert.equal(await restCount(sig.id), 0);
    await page.close();
  });
});
