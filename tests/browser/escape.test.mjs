// Markup in a signal's title and briefing is shown as text: no element is made, no script runs.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, newPage, waitLive, textOf } from './world.mjs';

const TITLE = '<script>alert(1)</script> & </script><img src=x onerror=alert(2)> "q" \'a\'';
const BRIEFING = '</script><script>alert(3)</script><b>bold</b> {{title}} \\u003c';

describe('escaping', { timeout: 120_000 }, () => {
  let world, browser;
  before(async () => ({ world, browser } = await openWorld()));
  after(() => closeWorld(world, browser));

  test('a title holding <script> and </script> renders as text, runs nothing', async () => {
    const sig = await world.createSignal({ title: TITLE, briefing: BRIEFING });
    assert.equal(sig.title, TITLE, 'the API keeps the title as given');
    // bypassCSP: the page's Content-Security-Policy must not be what saves it
    const page = await newPage(browser, { bypassCSP: true });
    const dialogs = [];
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
    await page.addInitScript(() => {
      window.__added = [];
      new MutationObserver((ms) => {
        for (const m of ms) for (const n of m.addedNodes) {
          if (n.nodeName === 'SCRIPT' && !/\/static\/mission\.js$/.test(n.src || '') &&
              n.id !== 'mission-data') window.__added.push(n.outerHTML);
          if (n.nodeName === 'IMG' || n.nodeName === 'B') window.__added.push(n.outerHTML);
        }
      }).observe(document, { childList: true, subtree: true });
    });
    await page.goto(world.missionUrl(sig.id, world.token('xss')));
    await waitLive(page, 'websocket'); // mission.js ran all the way through
    assert.equal(await page.textContent('.title'), TITLE);
    assert.equal(await page.textContent('#briefing'), BRIEFING);
    assert.equal(await page.$eval('.title', (e) => e.childElementCount), 0);
    assert.equal(await page.$eval('#briefing', (e) => e.childElementCount), 0);
    assert.equal(await page.title(), `AAPL BUY · ${TITLE} · Sortie`);
    const scripts = await page.$$eval('script', (s) => s.map((e) => e.src || `#${e.id}`));
    assert.deepEqual(scripts.map((s) => s.replace(/^https?:\/\/[^/]+/, '')),
      ['#mission-data', '/static/mission.js']);
    assert.equal(await page.$$eval('img', (i) => i.length), 0);
    assert.deepEqual(await page.evaluate(() => window.__added), []);
    // the embedded mission data still parses to the same title
    assert.equal(await page.$eval('#mission-data', (e) => JSON.parse(e.textContent).title), TITLE);
    // a marker dialog, opened last: a dialog the markup caused would have come before it
    await page.evaluate(() => alert('marker'));
    assert.deepEqual(dialogs, ['marker']);
    await page.context().close();
  });
});
