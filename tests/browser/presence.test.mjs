// "N watching": the mission page shows the distinct users watching its mission, changing as users
// come and go (two tabs of one user count once); the admin page lists the most-watched missions.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWorld, closeWorld, newPage, waitLive, textOf, waitText } from './world.mjs';

describe('presence on the pages', { timeout: 120_000 }, () => {
  let world, browser;
  before(async () => ({ world, browser } = await openWorld()));
  after(() => closeWorld(world, browser));

  async function open(sigId, user) {
    const page = await newPage(browser);
    await page.goto(world.missionUrl(sigId, world.token(user)));
    await waitLive(page);
    return page;
  }

  test('the mission page shows N watching as users come and go, a user\'s two tabs counting once', async () => {
    const sig = await world.createSignal();
    const ann = await open(sig.id, 'ann');
    await waitText(ann, '#watching', '1');
    assert.equal(await ann.isVisible('#watching-line'), true);
    assert.equal(await textOf(ann, '#watching-label'), 'trader');

    const bob = await open(sig.id, 'bob');
    await waitText(bob, '#watching', '2');
    await waitText(ann, '#watching', '2');
    assert.equal(await textOf(ann, '#watching-label'), 'traders');
    // a visitor who is not signed in (no live connection, GET /api/missions
    // refused): the count as of the page's rendering
    const visitor = await newPage(browser);
    await visitor.goto(world.missionUrl(sig.id, null));
    await waitText(visitor, '#watching', '2');
    assert.equal(await visitor.isVisible('#watching-line'), true);
    await visitor.context().close();

    // a second tab of ann's, in another browser context (its own push
    // connection): still two users
    const ann2 = await open(sig.id, 'ann');
    await waitText(ann2, '#watching', '2');
    // bob leaves: one user is left, though ann holds two connections (were
    // she counted per connection, the pages would show 2)
    await bob.context().close();
    await waitText(ann, '#watching', '1');
    await waitText(ann2, '#watching', '1');
    // the first of ann's tabs closes: she still watches from the other
    // (the count does not change, so a marker tells when the daemon has
    // seen it: carol arrives, and the page must show 2, not 1)
    await ann.context().close();
    const carol = await open(sig.id, 'carol');
    await waitText(carol, '#watching', '2');
    await waitText(ann2, '#watching', '2');
    await carol.context().close();
    await ann2.context().close();
  });

  test('the admin page lists the most-watched missions with their counts', async () => {
    const sig = await world.createSignal();
    const viewers = [await open(sig.id, 'dan'), await open(sig.id, 'eve')];
    await waitText(viewers[0], '#watching', '2');
    const admin = await newPage(browser);
    await admin.goto(`${world.base}/admin?token=${encodeURIComponent(world.token('ops', { role: 'admin' }))}`);
    await admin.waitForFunction(
      (id) => [...document.querySelectorAll('#top-watched li')]
        .some((li) => li.textContent.replace(/\s+/g, ' ').trim() === `${id} · 2 watching`),
      sig.id, { polling: 100 },
    );
    assert.equal(await admin.isVisible('#top-watched-empty'), false);
    // the text went in as text: an id is never markup
    assert.equal(await admin.locator('#top-watched li strong').first().textContent(), '2');
    for (const v of viewers) await v.context().close();
    await admin.context().close();
  });
});
