// At 360 px wide (a phone) the page has no horizontal scroll and the FIRE button is fully visible.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, newPage, waitLive, waitText } from './world.mjs';

const PHONE = { viewport: { width: 360, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

describe('phone layout', { timeout: 120_000 }, () => {
  let world, browser;
  before(async () => ({ world, browser } = await openWorld()));
  after(() => closeWorld(world, browser));

  async function noHorizontalScroll(page) {
    const { scrollWidth, clientWidth, bodyWidth } = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      clientWidth: document.documentElement.clientWidth,
      bodyWidth: document.body.scrollWidth,
    }));
    assert.equal(clientWidth, 360);
    assert.ok(scrollWidth <= clientWidth, `scrollWidth ${scrollWidth} > clientWidth ${clientWidth}`);
    assert.ok(bodyWidth <= clientWidth, `body scrollWidth ${bodyWidth} > ${clientWidth}`);
    // nothing sticks out to the right either (overflow hidden somewhere would hide it)
    const wide = await page.evaluate(() => [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
      .map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}.${e.className}`));
    assert.deepEqual(wide, [], 'elements past the right edge');
  }

  // the FIRE button lies inside the first screen, whole, and nothing covers it
  async function fireFullyVisible(page) {
    const box = await page.locator('#fire').boundingBox();
    assert.ok(box, 'no box for #fire');
    assert.ok(box.x >= 0 && box.x + box.width <= 360, `#fire spans x ${box.x}..${box.x + box.width}`);
    assert.ok(box.y >= 0 && box.y + box.height <= 740, `#fire spans y ${box.y}..${box.y + box.height} (screen 740)`);
    assert.ok(box.height >= 44 && box.width >= 200, `#fire is ${box.width}x${box.height}: too small to tap`);
    const onTop = await page.evaluate(({ x, y }) => {
      const e = document.elementFromPoint(x, y);
      return !!e && !!e.closest('#fire');
    }, { x: box.x + box.width / 2, y: box.y + box.height / 2 });
    assert.ok(onTop, 'something covers the FIRE button');
  }

  test('a live mission at 360 px: no horizontal scroll, FIRE fully visible', async () => {
    const sig = await world.createSignal({ symbol: 'EURUSD', entry: '1.0850', stop_loss: '1.0800',
      take_profit: '1.0950', title: 'Fade the ECB spike' });
    const page = await newPage(browser, PHONE);
    await page.goto(world.missionUrl(sig.id, world.token('vic')));
    await waitLive(page, 'websocket');
    await world.publish('market:EURUSD', 'market_update', { symbol: 'EURUSD', price: '1.0862', change: '+0.0012' });
    await waitText(page, '#price', '1.0862');
    await noHorizontalScroll(page);
    await fireFullyVisible(page);
    await page.context().close();
  });

  test('long values at 360 px: no horizontal scroll, FIRE fully visible', async () => {
    const sig = await world.createSignal({
      symbol: 'BTCUSD', entry: '123456789.12345678', stop_loss: '123456000.00000001',
      take_profit: '123459999.99999999',
      title: 'Supercalifragilisticexpialidocious_breakout_without_a_single_space_anywhere_in_it',
      briefing: 'https://example.invalid/a/very/long/url/that/does/not/break/anywhere/at/all/ever/ok',
    });
    const page = await newPage(browser, PHONE);
    // the longest badge text: RECONNECTING + a transport name
    await page.goto(world.missionUrl(sig.id, world.token('wes'), 'no=websocket,sse,longpoll'));
    await page.waitForFunction(() => document.getElementById('badge').dataset.transport === 'polling');
    await world.publish('market:BTCUSD', 'market_update',
      { symbol: 'BTCUSD', price: '123457890.12345678', change: '-1234.56789012' });
    await waitText(page, '#price', '123457890.12345678');
    await noHorizontalScroll(page);
    await fireFullyVisible(page);
    await page.context().close();
  });
});
