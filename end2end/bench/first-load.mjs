// First-load time of the dashboard and the size of what it downloads, measured in Debian's
// Chromium against a running Rampart (release build). Each round is a fresh browser context
// (empty cache): navigation start → the control room rendered (server HTML) → hydrated (the
// WASM loaded and handling clicks). Two network profiles: loopback as it is, and DevTools'
// "Slow 4G" (562.5 ms latency, 1.44 Mbit/s down, 675 kbit/s up). Prints a markdown table; also
// the WASM size raw, gzip and brotli (Node's zlib, best compression). Then live updates as a
// distribution: an open control room, and changes made by another client, each timed until the
// page shows it.
//
// With RAMPART_BINARY set (what `cargo xtask first-load` does), the server's database is seeded
// first so that the charts are drawn with data: six hours of flag-off history, then the rollout
// started and advanced to its 10% stage, and 30 s of live traffic split by the flag.
//
//   cargo xtask first-load
//   RAMPART_URL=http://127.0.0.1:3000 RAMPART_ADMIN_PASSWORD=… node end2end/bench/first-load.mjs
import { chromium, request } from '@playwright/test';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';

const base = process.env.RAMPART_URL ?? 'http://127.0.0.1:3000';
const password = process.env.RAMPART_ADMIN_PASSWORD;
const rounds = Number(process.env.ROUNDS ?? 10);
const binary = process.env.RAMPART_BINARY;
if (!password) throw new Error('set RAMPART_ADMIN_PASSWORD (the admin account of the server under test)');

/** DevTools' "Slow 4G" preset (formerly "Fast 3G"), as Chrome defines it. */
const SLOW_4G = { offline: false, latency: 150 * 3.75, downloadThroughput: (1.6 * 1000 * 1000) / 8 * 0.9, uploadThroughput: (750 * 1000) / 8 * 0.9 };

async function signIn(name, secret) {
  const context = await request.newContext({ baseURL: base, extraHTTPHeaders: { Origin: base } });
  const response = await context.post('/auth/login', { form: { name, password: secret }, headers: { Accept: 'application/json' } });
  if (!response.ok()) throw new Error(`cannot sign in as ${name}: ${await response.text()}`);
  return context;
}

async function ok(response, what) {
  if (!response.ok()) throw new Error(`${what}: ${response.status()} ${await response.text()}`);
  return response.json();
}

async function command(context, body) {
  const { state } = await ok(await context.get('/api/v1/rollouts/1'), 'reading the rollout');
  return ok(await context.post('/api/v1/rollouts/1/commands', { data: { version: state.version, ...body } }), `command ${body.command}`);
}

function simulate(token, args) {
  const run = spawnSync(binary, ['simulate', '--url', base, ...args], { env: { ...process.env, RAMPART_TOKEN: token }, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`rampart simulate ${args.join(' ')}: ${run.stdout}${run.stderr}`);
}

const admin = await signIn('admin', password);
if (binary) {
  const approver = { name: 'bench-approver', role: 'approver', password: 'bench-approver-password' };
  const made = await admin.post('/api/v1/users', { data: approver });
  if (!made.ok() && made.status() !== 422) throw new Error(`cannot add the approver: ${await made.text()}`);
  const { secret } = await ok(await admin.post('/api/v1/tokens', { data: { name: `first-load-${Date.now()}`, scopes: ['ingest', 'evaluate', 'read'] } }), 'making a token');
  simulate(secret, ['--backfill', '6h', '--rate', '5', '--seed', '1']);
  await command(admin, { command: 'start' });
  const second = await signIn(approver.name, approver.password);
  for (let stage = 1; stage <= 2; stage++) {
    await command(admin, { command: 'advance', override_reason: 'first-load benchmark' });
    await command(second, { command: 'approve' });
  }
  // Live traffic in the stage (10%): its gates, charts and split have data to show.
  simulate(secret, ['--duration', '30s', '--rate', '40', '--seed', '2']);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu'],
});
const state = await admin.storageState();

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function measure(network) {
  const results = { html: [], hydrated: [], bytes: [], charts: [] };
  for (let i = 0; i < rounds; i++) {
    const context = await browser.newContext({ storageState: state });
    const page = await context.newPage();
    if (network) {
      const cdp = await context.newCDPSession(page);
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', network);
    }
    const sizes = [];
    page.on('requestfinished', (request) => sizes.push(request.sizes().then((s) => s.responseBodySize + s.responseHeadersSize)));
    const started = Date.now();
    await page.goto(`${base}/rollouts/1`, { waitUntil: 'commit', timeout: 120_000 });
    await page.getByRole('heading', { level: 1 }).waitFor({ timeout: 120_000 });
    results.html.push(Date.now() - started);
    await page.locator('body[data-hydrated="true"]').waitFor({ timeout: 120_000 });
    results.hydrated.push(Date.now() - started);
    await page.waitForLoadState('networkidle', { timeout: 120_000 });
    results.bytes.push((await Promise.all(sizes)).reduce((a, b) => a + b, 0));
    results.charts.push(await page.locator('[data-testid="charts"] svg').count());
    await context.close();
  }
  return results;
}
const loopback = await measure(null);
const slow = await measure(SLOW_4G);

// Live updates: one open control room, and `changes` commands (pause, resume, …) sent through
// the API by another client, 300 ms apart; each timed from the command's sending until the
// page shows it (polled every animation frame: ~16 ms of resolution).
const changes = Number(process.env.CHANGES ?? 50);
const live = { shown: [], answered: [] };
{
  const context = await browser.newContext({ storageState: state });
  const page = await context.newPage();
  await page.goto(`${base}/rollouts/1`);
  await page.locator('body[data-hydrated="true"]').waitFor();
  const status = page.getByTestId('rollout-status');
  for (let i = 0; i < changes; i++) {
    const before = (await status.textContent()).trim();
    const body = before === 'Paused' ? { command: 'resume' } : { command: 'pause', reason: `live-update bench ${i}` };
    const expected = before === 'Paused' ? 'Running' : 'Paused';
    // Changes one by one, as an incident brings them: each after the stream's quiet window
    // (250 ms; a change sooner after the last message waits for the window's end).
    await page.waitForTimeout(300);
    const { state: rollout } = await ok(await admin.get('/api/v1/rollouts/1'), 'reading the rollout');
    const sent = performance.now();
    await ok(await admin.post('/api/v1/rollouts/1/commands', { data: { version: rollout.version, ...body } }), `command ${body.command}`);
    const answered = performance.now();
    await page.waitForFunction((text) => document.querySelector('[data-testid="rollout-status"]')?.textContent.trim() === text, expected, { polling: 'raf' });
    const shown = performance.now();
    live.shown.push(shown - sent);
    live.answered.push(shown - answered);
  }
  await context.close();
}
await browser.close();
await admin.dispose();
if (binary && Math.min(...loopback.charts, ...slow.charts) === 0) throw new Error('the seeded control room drew no chart');

console.log(`| first load of the control room, median of ${rounds} | loopback | slow 4G |`);
console.log('|---|---:|---:|');
console.log(`| control room rendered (server HTML) | ${median(loopback.html)} ms | ${median(slow.html)} ms |`);
console.log(`| control room hydrated (WASM running) | ${median(loopback.hydrated)} ms | ${median(slow.hydrated)} ms |`);
console.log(`| bytes over the wire (compressed as served) | ${(median(loopback.bytes) / 1000).toFixed(0)} kB | ${(median(slow.bytes) / 1000).toFixed(0)} kB |`);
console.log(`| charts drawn | ${median(loopback.charts)} | ${median(slow.charts)} |`);

const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.round((xs.length - 1) * q)];
const ms = (x) => `${x.toFixed(0)} ms`;
console.log(`\n| live update, ${changes} changes (pause/resume by another client) | p50 | p90 | p99 | max |`);
console.log('|---|---:|---:|---:|---:|');
for (const [what, xs] of [['shown, from the command sent', live.shown], ['shown, from the command answered', live.answered]]) {
  console.log(`| ${what} | ${ms(quantile(xs, 0.5))} | ${ms(quantile(xs, 0.9))} | ${ms(quantile(xs, 0.99))} | ${ms(Math.max(...xs))} |`);
}

const wasm = readFileSync(new URL('../../target/site/pkg/rampart.wasm', import.meta.url));
const gzip = gzipSync(wasm, { level: 9 }).length;
const brotli = brotliCompressSync(wasm, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: wasm.length } }).length;
console.log(`\n| rampart.wasm | raw | gzip -9 | brotli -q 11 |\n|---|---:|---:|---:|\n| release | ${(wasm.length / 1000).toFixed(0)} kB | ${(gzip / 1000).toFixed(0)} kB | ${(brotli / 1000).toFixed(0)} kB |`);
