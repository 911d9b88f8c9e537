// Loading and error states: FIRE in flight, FIRE failing, the state failing to load, the browser offline.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, newLeaderPage, waitLive, textOf, waitText } from './world.mjs';

describe('loading and error states', { timeout: 150_000 }, () => {
  let world, browser;
  before(async () => ({ world, browser } = await openWorld()));
  after(() => closeWorld(world, browser));

  async function open(sub) {
    const sig = await world.createSignal();
    const page = await newLeaderPage(browser);
    await page.goto(world.missionUrl(sig.id, world.token(sub)));
    await page.waitForSelector('#fire[data-state="idle"]');
    await waitLive(page, 'websocket');
    return { sig, page };
  }
  const restCount = async (sid) =>
    (await world.api('GET', `/api/signals/${sid}/fire-count`)).body.count;

  test('FIRE shows a loading state while the order is in flight', async () => {
    const { page } = await open('ada');
    let release;
    const held = new Promise((r) => { release = r; });
    await page.route('**/api/fire', async (route) => { await held; await route.continue(); });
    await page.click('#fire');
    await page.waitForSelector('#fire[data-state="loading"]');
    assert.equal(await page.isDisabled('#fire'), true);
    assert.equal(await page.getAttribute('#fire', 'aria-busy'), 'true');
    assert.equal(await textOf(page, '#fire-label'), 'Firing…');
    release();
    await page.waitForSelector('#fire[data-state="fired"]');
    assert.equal(await page.getAttribute('#fire', 'aria-busy'), 'false');
    await page.close();
  });

  test('a server error on FIRE shows it, and FIRE can be pressed again', async () => {
    const { sig, page } = await open('bea');
    await page.route('**/api/fire', (route) => route.fulfill({
      status: 503, contentType: 'application/problem+json',
      body: JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503,
        detail: 'The store is unavailable' }),
    }));
    await page.click('#fire');
    await page.waitForSelector('#fire[data-state="error"]');
    assert.equal(await textOf(page, '#fire-message'), 'The store is unavailable (503). Try again.');
    assert.equal(await page.isDisabled('#fire'), false);
    await page.unroute('**/api/fire');
    await page.click('#fire');
    await page.waitForSelector('#fire[data-state="fired"]');
    assert.equal(await restCount(sig.id), 1);
    await page.close();
  });

  test('a network that keeps failing: FIRE retries with one key, then says so', async () => {
    const { sig, page } = await open('cai');
    const keys = [];
    await page.route('**/api/fire', (route) => {
      keys.push(route.request().headers()['idempotency-key']);
      return route.abort('connectionrefused');
    });
    await page.click('#fire');
    await page.waitForSelector('#fire[data-state="error"]');
    assert.match(await textOf(page, '#fire-message'), /^Network error/);
    assert.equal(await page.isDisabled('#fire'), false);
    assert.ok(keys.length >= 2, `${keys.length} tries`);
    assert.equal(new Set(keys).size, 1, 'the retries used different Idempotency-Keys');
    assert.equal(await restCount(sig.id), 0);
    await page.close();
  });

  test('the state failing to load says so, then loads on a retry', async () => {
    const sig = await world.createSignal();
    const page = await newLeaderPage(browser);
    let fails = 1;
    await page.route('**/api/missions/**', (route) => (fails-- > 0
      ? route.fulfill({ status: 503, contentType: 'application/problem+json', body: '{"status":503}' })
      : route.continue()));
    await page.goto(world.missionUrl(sig.id, world.token('dov')));
    await waitText(page, '#stats-message', 'Could not load your state (503). Retrying…');
    assert.equal(await page.getAttribute('#stats', 'aria-busy'), 'true');
    await waitText(page, '#stat-trades-today', '0');
    assert.equal(await textOf(page, '#stats-message'), '');
    assert.equal(await page.getAttribute('#stats', 'aria-busy'), 'false');
    await waitLive(page, 'websocket');
    await page.close();
  });

  test('the browser going offline turns the badge to OFFLINE, and back to LIVE online', async () => {
    const { page } = await open('eli');
    await page.context().setOffline(true);
    await page.waitForSelector('#badge[data-state="offline"]');
    assert.equal(await textOf(page, '#badge-state'), 'OFFLINE');
    await page.context().setOffline(false);
    await waitLive(page, 'websocket');
    await page.close();
  });
});
