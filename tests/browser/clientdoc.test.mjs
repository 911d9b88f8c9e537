// docs/CLIENT.md's examples (plain JavaScript, and the React hook useSortieChannel), taken from the doc as they are, run in Chromium against a real stack until a published event shows.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { openWorld, closeWorld, newPage, repo, waitText } from './world.mjs';

const require = createRequire(import.meta.url);

// The markup and the module of docs/CLIENT.md's example `name`: the first
// html and js code blocks after its "<!-- example: name" marker.
function example(name) {
  const doc = readFileSync(join(repo, 'docs/CLIENT.md'), 'utf8');
  const at = doc.indexOf(`<!-- example: ${name}`);
  assert.ok(at >= 0, `docs/CLIENT.md has no example "${name}"`);
  const block = (lang) => {
    const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)\\n```').exec(doc.slice(at));
    assert.ok(m, `example "${name}" has no ${lang} block`);
    return m[1];
  };
  return { html: block('html'), js: block('js') };
}

// React's UMD builds (tests/browser/package.json), and the modules a bundler
// would give for 'react' and 'react-dom/client', made from them
const umd = (pkg, file) => readFileSync(join(require.resolve(`${pkg}/package.json`), '..', 'umd', file), 'utf8');
const files = {
  '/static/__doc/react.js': umd('react', 'react.production.min.js'),
  '/static/__doc/react-dom.js': umd('react-dom', 'react-dom.production.min.js'),
  '/static/__doc/react-module.js': 'const R = window.React; export default R;\n' +
    'export const { createElement, useEffect, useRef, useState, useReducer, useMemo, useCallback } = R;\n',
  '/static/__doc/react-dom-client.js': 'export const { createRoot, hydrateRoot } = window.ReactDOM;\n',
};
const importMap = JSON.stringify({ imports: {
  '@sortie/client': '/static/sortie-client.js', // www/static/package.json's "exports"
  react: '/static/__doc/react-module.js',
  'react-dom/client': '/static/__doc/react-dom-client.js',
} });

// A page of the example, served by the stack's own Apache from its copy of
// www/ (a page the browser gets from elsewhere, e.g. page.route, would not be
// let open a WebSocket to 127.0.0.1: Chromium's local network access checks),
// so /static/ and /push/ are the real ones: the example's markup and module,
// React loaded, the import map a bundler stands for. Its errors are collected.
async function openExample(browser, world, name, token) {
  const { html, js } = example(name);
  const dir = join(world.run, 'www/static/__doc');
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const [path, body] of Object.entries(files)) {
    writeFileSync(join(world.run, 'www/static', path.replace('/static/', '')), body, { mode: 0o644 });
  }
  writeFileSync(join(dir, `${name}.html`), '<!doctype html><html><head><meta charset="utf-8">' +
    `<script type="importmap">${importMap}</script>` +
    '<script src="/static/__doc/react.js"></script><script src="/static/__doc/react-dom.js"></script>' +
    `</head><body>${html}\n<script type="module">\n${js}\n</script></body></html>\n`, { mode: 0o644 });
  const page = await newPage(browser);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  await page.addInitScript((t) => sessionStorage.setItem('sortie_token', t), token);
  await page.goto(`${world.base}/static/__doc/${name}.html`);
  return page;
}

describe('docs/CLIENT.md examples', { timeout: 150_000 }, () => {
  let world, browser;
  before(async () => {
    ({ world, browser } = await openWorld());
    await world.createSignal({ id: 'sig_1' }); // the examples follow mission:sig_1
  });
  after(() => closeWorld(world, browser));

  // the fire count as the API has it
  const count = async () => (await world.api('GET', '/api/signals/sig_1/fire-count')).body.count;

  test('the plain JavaScript example shows a fire as it happens, LIVE over WebSocket', async () => {
    const page = await openExample(browser, world, 'plain', world.token('doc-plain'));
    await waitText(page, '#connection', 'live over websocket');
    await world.fire(world.token(`doc-fan-${Date.now()}`), 'sig_1');
    await waitText(page, '#fires', String(await count()));
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  test('the React example (useSortieChannel) renders a fire as it happens', async () => {
    const page = await openExample(browser, world, 'react', world.token('doc-react'));
    await page.waitForSelector('#fire-count[data-state="live"]');
    assert.equal((await page.textContent('#fire-count')).trim(), 'no fire yet');
    await world.fire(world.token(`doc-fan-${Date.now()}`), 'sig_1');
    await waitText(page, '#fire-count', `${await count()} fires`);
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });
});
