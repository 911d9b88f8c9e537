// The mission page shows the briefing exactly as created, counts down, and goes LIVE over WebSocket.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, newPage, waitLive, textOf, waitText, pauseClock } from './world.mjs';

// "1h 02m 03s" | "02m 03s" | "03s" -> seconds
function seconds(countdown) {
  const m = /^(?:(\d+)h )?(?:(\d+)m )?(\d+)s$/.exec(countdown);
  assert.ok(m, `countdown "${countdown}" is not like "59m 58s"`);
  return Number(m[1] || 0) * 3600 + Number(m[2] || 0) * 60 + Number(m[3]);
}

describe('the mission page', { timeout: 120_000 }, () => {
  let world, browser;
  before(async () => ({ world, browser } = await openWorld()));
  after(() => closeWorld(world, browser));

  test('shows symbol, direction, levels, title and briefing exactly as created', async () => {
    const sig = await world.createSignal({
      symbol: 'EURUSD', direction: 'SELL', entry: '1.0850', stop_loss: '1.0900',
      take_profit: '1.0700', title: 'Fade the ECB spike', briefing: 'Short the retest.\nStop above the high.',
    });
    const page = await newPage(browser);
    await page.goto(world.missionUrl(sig.id, world.token('ann')));
    assert.equal(await textOf(page, '.symbol'), 'EURUSD');
    assert.equal(await textOf(page, '.direction'), 'SELL');
    assert.match(await page.getAttribute('.direction', 'class'), /\bdirection-sell\b/);
    assert.equal(await textOf(page, '#entry'), '1.0850');
    assert.equal(await textOf(page, '#stop-loss'), '1.0900');
    assert.equal(await textOf(page, '#take-profit'), '1.0700');
    assert.equal(await textOf(page, '.title'), 'Fade the ECB spike');
    assert.equal(await page.textContent('#briefing'), 'Short the retest.\nStop above the high.');
    assert.equal(await textOf(page, '#status'), 'ACTIVE');
    assert.match(await page.title(), /^EURUSD SELL · Fade the ECB spike/);
    await page.context().close();
  });

  test('the countdown ticks down from the signal\'s ttl, one second a second (on the page\'s clock)', async () => {
    const sig = await world.createSignal({ ttl: 3600 });
    const page = await newPage(browser);
    // the page's timers and Date run on a clock the test moves
    await page.clock.install();
    await page.goto(world.missionUrl(sig.id, world.token('ben')));
    await page.waitForFunction(() => /\d+s$/.test(document.getElementById('countdown').textContent));
    // live first: a connection still being made has its guards on this clock
    await waitLive(page, 'websocket');
    await pauseClock(page);
    await page.clock.runFor(1000); // a tick just ran: the countdown shows its time
    const first = seconds(await textOf(page, '#countdown'));
    // the page loaded within the last minute (the bound is for a slow machine)
    assert.ok(first <= 3600 && first >= 3540, `countdown starts at ${first} s, not about 3600 s`);
    // five more ticks, one a second: exactly five seconds less
    await page.clock.runFor(5000);
    const later = seconds(await textOf(page, '#countdown'));
    assert.equal(later, first - 5, `countdown went from ${first} s to ${later} s in 5 s of the page's clock`);
    await page.context().close();
  });

  test('the badge reaches LIVE over WebSocket', async () => {
    const sig = await world.createSignal();
    const page = await newPage(browser);
    await page.goto(world.missionUrl(sig.id, world.token('cat')));
    await waitLive(page, 'websocket');
    assert.equal(await textOf(page, '#badge-state'), 'LIVE');
    assert.equal(await textOf(page, '#badge-transport'), 'WebSocket');
    assert.equal(await page.evaluate(() => window.sortieLive.transport), 'websocket');
    assert.equal(await page.evaluate(() => window.sortieLive.state), 'live');
    await page.context().close();
  });

  test('a ?token= is taken out of the address bar and kept for a reload', async () => {
    const sig = await world.createSignal();
    const page = await newPage(browser);
    await page.goto(world.missionUrl(sig.id, world.token('dan'), 'x=1'));
    await waitText(page, '#stat-trades-today', '0');
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('token'), null, `the token is still in ${page.url()}`);
    assert.equal(url.searchParams.get('x'), '1', 'other query parameters stay');
    await page.reload();
    await waitText(page, '#stat-trades-today', '0');
    await waitLive(page, 'websocket');
    assert.equal(await page.getAttribute('#fire', 'data-state'), 'idle');
    await page.context().close();
  });

  test('the sortie_token cookie alone signs the page in', async () => {
    const sig = await world.createSignal();
    const page = await newPage(browser);
    await page.context().addCookies([{ name: 'sortie_token', value: world.token('eve'), url: world.base }]);
    await page.goto(`${world.base}/mission/${sig.id}`);
    await waitText(page, '#stat-trades-today', '0');
    await waitLive(page, 'websocket');
    assert.equal(await page.getAttribute('#fire', 'data-state'), 'idle');
    assert.equal(await page.isDisabled('#fire'), false);
    await page.context().close();
  });

  test('without a token FIRE asks to sign in and is disabled', async () => {
    const sig = await world.createSignal();
    const page = await newPage(browser);
    await page.goto(`${world.base}/mission/${sig.id}`);
    await page.waitForSelector('#fire[data-state="signin"]');
    assert.equal(await page.isDisabled('#fire'), true);
    assert.match(await textOf(page, '#fire-message'), /sign in/i);
    assert.match(await textOf(page, '#stats-message'), /sign in/i);
    await page.context().close();
  });

  test('the countdown turns the page to EXPIRED at zero', async () => {
    const sig = await world.createSignal({ ttl: 120 });
    const page = await newPage(browser);
    // the page's clock, moved by the test: the server still has the signal ACTIVE
    await page.clock.install();
    await page.goto(world.missionUrl(sig.id, world.token('fay')));
    await page.waitForSelector('#fire[data-state="idle"]');
    // live first: a connection still being made has its guards (8 s) on this
    // clock, and one made again would reload the mission, and with it the
    // server's time
    await waitLive(page, 'websocket');
    await pauseClock(page);
    await page.clock.runFor(1000); // a tick just ran: the countdown shows its time
    const left = seconds(await textOf(page, '#countdown'));
    assert.ok(left > 1, `countdown at ${left} s`);
    // the tick one second short of zero: still ACTIVE
    await page.clock.runFor((left - 1) * 1000);
    assert.equal(await textOf(page, '#status'), 'ACTIVE');
    // past zero
    await page.clock.runFor(2000);
    await waitText(page, '#status', 'EXPIRED').catch(async (e) => {
      throw new Error(`${e.message}; the countdown shows "${await textOf(page, '#countdown')}" ` +
        `(${left} s when the test began moving the clock)`, { cause: e });
    });
    assert.equal(await textOf(page, '#countdown'), 'expired');
    assert.equal(await page.getAttribute('#fire', 'data-state'), 'expired');
    assert.equal(await textOf(page, '#fire-label'), 'EXPIRED');
    assert.equal(await page.isDisabled('#fire'), true);
    assert.equal(await page.getAttribute('body', 'data-status'), 'EXPIRED');
    await page.context().close();
  });

  test('the expiry job\'s mission_status_update turns an open page to EXPIRED', async () => {
    const sig = await world.createSignal({ ttl: 2 });
    const page = await newPage(browser);
    // the page's clock stands still: only the event can expire it
    await page.clock.setFixedTime(new Date());
    await page.goto(world.missionUrl(sig.id, world.token('gil')));
    await waitLive(page, 'websocket');
    await world.untilExpired(sig.id); // on the server's clock
    assert.equal(await textOf(page, '#status'), 'ACTIVE');
    world.expire();
    await waitText(page, '#status', 'EXPIRED');
    assert.equal(await page.getAttribute('#fire', 'data-state'), 'expired');
    assert.equal(await page.isDisabled('#fire'), true);
    await page.context().close();
  });
});
