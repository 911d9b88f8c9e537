// Screenshots of a live mission page (price, fires, stats): docs/img/mission-{desktop,phone}.png with `make screenshots`.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { openWorld, closeWorld, repo, newPage, waitLive, textOf, waitText } from './world.mjs';

// docs/img when asked (make screenshots); otherwise a temp folder, so that a
// test run leaves the working tree as it was
const IMG = process.env.SORTIE_SCREENSHOTS_DIR
  ? join(repo, process.env.SORTIE_SCREENSHOTS_DIR)
  : join(process.env.SORTIE_TEST_TMP || tmpdir(), 'img');

// width and height of a PNG, from its IHDR chunk
function pngSize(file) {
  const b = readFileSync(file);
  assert.equal(b.toString('latin1', 1, 4), 'PNG', `${file} is not a PNG`);
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

describe('screenshots', { timeout: 150_000 }, () => {
  let world, browser, sig, user;
  before(async () => {
    ({ world, browser } = await openWorld());
    mkdirSync(IMG, { recursive: true });
    // a user with some history: three closed trades (two wins) on earlier signals
    user = world.token('zoe');
    for (const pnl of ['125.50', '-40.25', '310.00']) {
      const old = await world.createSignal({ symbol: 'AAPL' });
      const f = await world.fire(user, old.id);
      const r = await world.closeTrade(f.trade_id, { pnl });
      assert.equal(r.status, 200, `closing trade ${f.trade_id}: ${r.text}`);
    }
    sig = await world.createSignal({
      symbol: 'AAPL', direction: 'BUY', entry: '145.75', stop_loss: '140.00', take_profit: '160.00',
      ttl: 5400, title: 'Breakout above 145 resistance',
      briefing: 'Volume confirms the breakout on the daily chart.\nStop under the 140 support; target the 160 highs.',
    });
    for (let i = 1; i <= 11; i++) await world.fire(world.token(`pilot-${i}`), sig.id);
  });
  after(() => closeWorld(world, browser));

  // opens the page as zoe, fires, and shows a price; checks the stats are the API's
  async function livePage(contextOptions, price) {
    const page = await newPage(browser, contextOptions);
    await page.goto(world.missionUrl(sig.id, user));
    await waitLive(page, 'websocket');
    if ((await page.getAttribute('#fire', 'data-state')) === 'idle') await page.click('#fire');
    await page.waitForSelector('#fire[data-state="fired"]');
    await waitText(page, '#fire-count', '12');
    await world.publish('market:AAPL', 'market_update', { symbol: 'AAPL', price, change: '+0.35' });
    await waitText(page, '#price', price);
    const { stats } = (await world.api('GET', '/api/users/zoe/stats', { token: user })).body;
    await waitText(page, '#stat-trades-today', String(stats.trades_today));
    assert.equal(stats.trades_today, 4);
    assert.equal(await textOf(page, '#stat-pnl-7d'), stats.last_7d_pnl);
    assert.equal(await textOf(page, '#stat-win-rate'), `${stats.win_rate} %`);
    return page;
  }

  test('desktop, 1280x800', async () => {
    const page = await livePage({ viewport: { width: 1280, height: 800 } }, '146.10');
    const file = join(IMG, 'mission-desktop.png');
    await page.screenshot({ path: file, animations: 'disabled', caret: 'hide' });
    assert.deepEqual(pngSize(file), { width: 1280, height: 800 });
    await page.context().close();
  });

  test('phone, 360x740', async () => {
    const page = await livePage({
      viewport: { width: 360, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
    }, '146.25');
    const file = join(IMG, 'mission-phone.png');
    await page.screenshot({ path: file, animations: 'disabled', caret: 'hide' });
    assert.deepEqual(pngSize(file), { width: 720, height: 1480 });
    await page.context().close();
  });
});
