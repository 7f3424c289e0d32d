#!/usr/bin/env node
// Browser test of the node's dashboard (GET /): Debian's chromium, driven by
// playwright-core, loads the page of a real `nova node`, sees its Novas and
// live events appear, checks the pattern filter and the rate plot, and saves
// a screenshot. Run by CTest ("browser: dashboard shows Novas and live
// events"); by hand: `npm ci --prefix tests/browser && node
// tests/browser/dashboard.test.mjs`.
//
// Environment: NOVA_BIN (default ../../build/bin/nova from this file),
// NOVA_CHROMIUM (default /usr/bin/chromium), NOVA_SCREENSHOT (default
// <repo>/build/browser/dashboard.png).
//
// It fails, never skips, when chromium or playwright-core is missing.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const novaBin = process.env.NOVA_BIN || resolve(repo, 'build', 'bin', 'nova');
const chromiumPath = process.env.NOVA_CHROMIUM || '/usr/bin/chromium';
const screenshot = process.env.NOVA_SCREENSHOT
  || resolve(repo, 'build', 'browser', 'dashboard.png');
const WAIT_MS = 20000;        // any single wait
const OVERALL_MS = 100000;    // the whole test (CTest allows 120 s)

const started = Date.now();
function log(msg) {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
  console.log(`[${t}s] ${msg}`);
}

let nodeChild = null; // killed on every way out
class TestFailure extends Error {}
function fail(msg) { throw new TestFailure(msg); }

async function loadPlaywright() {
  // Resolve from this folder's node_modules, whatever the working directory.
  const require = createRequire(resolve(here, 'package.json'));
  let entry;
  try {
    entry = require.resolve('playwright-core');
  } catch {
    fail('playwright-core is not installed in tests/browser/node_modules: '
         + 'run `npm ci --prefix tests/browser --no-audit --no-fund` '
         + '(scripts/setup.sh does this)');
  }
  const mod = await import(entry);
  const chromium = mod.chromium || (mod.default && mod.default.chromium);
  if (!chromium) fail(`playwright-core at ${entry} has no chromium launcher`);
  return chromium;
}

/// Starts the node and resolves with its HTTP base URL once it logs it.
function startNode(logLines) {
  const args = ['node', '--http', '127.0.0.1:0', '--heartbeat-ms', '500',
                '--spawn', 'echo:alice', '--spawn', 'logger:bob'];
  log(`starting ${novaBin} ${args.join(' ')}`);
  const child = spawn(novaBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  nodeChild = child;
  const ready = new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new TestFailure(
      `the node did not log "http listening on" within ${WAIT_MS} ms; its log:\n`
      + logLines.join('\n'))), WAIT_MS);
    let partial = { stdout: '', stderr: '' };
    const onData = (name) => (chunk) => {
      partial[name] += chunk.toString();
      const lines = partial[name].split('\n');
      partial[name] = lines.pop();
      for (const line of lines) {
        logLines.push(line);
        const m = /http listening on (http:\/\/\S+)/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolveUrl(m[1].replace(/\/$/, ''));
        }
      }
    };
    child.stdout.on('data', onData('stdout'));
    child.stderr.on('data', onData('stderr'));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new TestFailure(`cannot start ${novaBin}: ${e.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new TestFailure(`the node exited early (code ${code}, signal ${signal}); its log:\n`
                             + logLines.join('\n')));
    });
  });
  return { child, ready };
}

async function stopNode(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

async function rpc(base, method, params) {
  const res = await fetch(`${base}/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const body = await res.json().catch(() => null);
  if (!res.ok || !body || body.error)
    fail(`${method} failed: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body.result;
}

/// Waits for a selector, failing with `what` in the message.
async function waitFor(page, selector, what, state = 'attached') {
  try {
    await page.waitForSelector(selector, { state, timeout: WAIT_MS });
  } catch {
    fail(`timed out after ${WAIT_MS} ms waiting for ${what} (${selector})`);
  }
}

async function waitUntil(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 100 });
  } catch {
    fail(`timed out after ${WAIT_MS} ms waiting for ${what}`);
  }
}

async function main() {
  // Preconditions: each missing piece is a failure with a clear message.
  try {
    accessSync(novaBin, constants.X_OK);
  } catch {
    fail(`no nova binary at ${novaBin} (build it, or set NOVA_BIN)`);
  }
  if (!existsSync(chromiumPath))
    fail(`chromium is not installed at ${chromiumPath} (scripts/setup.sh installs Debian's chromium)`);
  const chromium = await loadPlaywright();

  const nodeLog = [];
  const { child, ready } = startNode(nodeLog);
  let browser;
  try {
    const base = await ready;
    log(`node serves ${base}`);

    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox'],
      timeout: WAIT_MS,
    });
    const page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });

    const res = await page.goto(`${base}/`, { timeout: WAIT_MS });
    if (!res || res.status() !== 200)
      fail(`GET / answered ${res ? res.status() : 'nothing'}`);
    log('dashboard loaded');

    await waitUntil(page, () => document.querySelector('#conn')?.dataset.state === 'live',
                    null, 'the WebSocket to connect (#conn data-state="live")');
    await waitFor(page, '#novas tbody tr[data-nova="alice"]', 'Nova alice in the Novas table');
    await waitFor(page, '#novas tbody tr[data-nova="bob"]', 'Nova bob in the Novas table');
    const status = await page.getAttribute('#status', 'data-status');
    if (!['healthy', 'degraded', 'unhealthy'].includes(status))
      fail(`the health badge shows '${status}' after stats arrived`);
    const nodeId = (await page.textContent('#node-id')).trim();
    if (!nodeId || nodeId === '\u2014') fail('the header shows no node id');
    log(`Novas alice and bob shown; node ${nodeId} is ${status}`);

    // Traffic: an event and a direct message.
    const pub = await rpc(base, 'bus.publish', { topic: 'orders.created', payload: { order: 42, total: 9.5 } });
    if (!pub.published) fail(`bus.publish did not publish: ${JSON.stringify(pub)}`);
    await rpc(base, 'nova.send', { to: 'alice', payload: 'hello alice' });
    await waitFor(page, '#events tbody tr[data-subject="events.orders.created"]',
                  'the orders.created event in the live tail');
    await waitUntil(page, () => [...document.querySelectorAll('#events tbody tr')]
                      .some((tr) => tr.dataset.kind === 'direct' && tr.textContent.includes('hello alice')),
                    null, 'the direct message to alice in the live tail');
    const eventText = await page.textContent('#events tbody tr[data-subject="events.orders.created"]');
    if (!eventText.includes('"order":42')) fail(`the event row does not preview its payload: ${eventText}`);
    log('live tail shows the event and the message to alice');

    // The filter: events.> re-subscribes, and only event rows remain.
    await page.fill('#filter', 'events.>');
    await page.press('#filter', 'Enter');
    await waitUntil(page, () => document.querySelector('#filter-hint')?.textContent === 'subscribed to events.>',
                    null, 'the server to confirm the events.> subscription');
    await rpc(base, 'nova.send', { to: 'alice', payload: 'filtered out' });
    await rpc(base, 'bus.publish', { topic: 'orders.shipped', payload: { order: 42 } });
    await waitFor(page, '#events tbody tr[data-subject="events.orders.shipped"]',
                  'the orders.shipped event after filtering');
    await page.waitForTimeout(1000); // room for a stray non-event row to show up
    const subjects = await page.$$eval('#events tbody tr', (rows) => rows.map((r) => r.dataset.subject));
    const strays = subjects.filter((s) => !s || !s.startsWith('events.'));
    if (subjects.length === 0) fail('the live tail is empty after filtering');
    if (strays.length) fail(`with filter events.> the tail still shows: ${strays.join(', ')}`);
    log(`filter events.> leaves ${subjects.length} event rows only`);

    // Pause holds new rows back (and counts them); resume shows them.
    await page.click('#pause');
    await rpc(base, 'bus.publish', { topic: 'orders.paused', payload: { order: 43 } });
    await waitUntil(page, () => /1 new/.test(document.querySelector('#pause')?.textContent || ''),
                    null, 'the pause button to count one held event');
    if (await page.$('#events tbody tr[data-subject="events.orders.paused"]'))
      fail('a row appeared while the tail was paused');
    await page.click('#pause');
    await waitFor(page, '#events tbody tr[data-subject="events.orders.paused"]',
                  'the held event after resuming');
    log('pause holds rows back, resume shows them');

    // Some traffic over a few seconds, so the plot has a line to draw.
    for (let i = 0; i < 12; i++) {
      await rpc(base, 'nova.send', { to: 'alice', payload: { n: i } });
      await rpc(base, 'bus.publish', { topic: 'orders.updated', payload: { order: 42, step: i } });
      await new Promise((r) => setTimeout(r, 250));
    }

    // The rate plot: a drawn canvas.
    await waitFor(page, '#rate canvas', 'the rate plot canvas', 'visible');
    const plot = await page.$eval('#rate canvas', (c) => {
      const ctx = c.getContext('2d');
      const data = ctx.getImageData(0, 0, c.width, c.height).data;
      let painted = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
      return { w: c.width, h: c.height, painted };
    });
    if (plot.w < 100 || plot.h < 50) fail(`the rate canvas is ${plot.w}x${plot.h}`);
    if (plot.painted < 500) fail('the rate canvas is blank');
    await waitUntil(page, () => Number(document.querySelector('#kpi-sent')?.textContent.replace(/\D/g, '')) > 0,
                    null, 'the sent counter to count the traffic');
    log(`rate plot drawn (${plot.w}x${plot.h})`);
    const after = await page.$$eval('#events tbody tr', (rows) => rows.map((r) => r.dataset.subject));
    const late = after.filter((s) => !s || !s.startsWith('events.'));
    if (late.length) fail(`with filter events.> later traffic still showed: ${late.join(', ')}`);

    if (pageErrors.length) fail(`the page logged errors:\n${pageErrors.join('\n')}`);

    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    log(`screenshot saved to ${screenshot}`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    await stopNode(child);
  }
}

function killNow() {
  if (nodeChild && nodeChild.exitCode === null && nodeChild.signalCode === null)
    nodeChild.kill('SIGKILL');
}
const overall = setTimeout(() => {
  console.error(`FAIL: the browser test took longer than ${OVERALL_MS} ms`);
  killNow();
  process.exit(1);
}, OVERALL_MS);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    console.error(`FAIL: interrupted by ${sig}`);
    killNow();
    process.exit(1);
  });
}

try {
  await main();
  clearTimeout(overall);
  log('PASS: the dashboard shows Novas and live events');
  process.exit(0);
} catch (e) {
  clearTimeout(overall);
  console.error(`FAIL: ${e instanceof TestFailure ? e.message : (e && e.stack) || e}`);
  process.exit(1);
}
