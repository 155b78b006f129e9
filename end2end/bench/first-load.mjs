// First-load time of the dashboard and the size of what it downloads, measured in Debian's
// Chromium against a running Rampart (release build). Each round is a fresh browser context
// (empty cache): navigation start → the control room rendered (server HTML) → hydrated (the
// WASM loaded and handling clicks). Prints a markdown table; also the WASM size raw, gzip and
// brotli (Node's zlib, best compression).
//
//   RAMPART_URL=http://127.0.0.1:3000 RAMPART_ADMIN_PASSWORD=… node end2end/bench/first-load.mjs
import { chromium } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';

const base = process.env.RAMPART_URL ?? 'http://127.0.0.1:3000';
const password = process.env.RAMPART_ADMIN_PASSWORD;
const rounds = Number(process.env.ROUNDS ?? 10);
if (!password) throw new Error('set RAMPART_ADMIN_PASSWORD (the admin account of the server under test)');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu'],
});
const signIn = await browser.newContext();
const response = await signIn.request.post(`${base}/auth/login`, {
  form: { name: 'admin', password },
  headers: { Accept: 'application/json', Origin: base },
});
if (!response.ok()) throw new Error(`cannot sign in: ${await response.text()}`);
const state = await signIn.storageState();
await signIn.close();

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = { html: [], hydrated: [], bytes: [] };
for (let i = 0; i < rounds; i++) {
  const context = await browser.newContext({ storageState: state });
  const page = await context.newPage();
  const sizes = [];
  page.on('requestfinished', (request) => sizes.push(request.sizes().then((s) => s.responseBodySize + s.responseHeadersSize)));
  const started = Date.now();
  await page.goto(`${base}/rollouts/1`, { waitUntil: 'commit' });
  await page.getByRole('heading', { level: 1 }).waitFor();
  results.html.push(Date.now() - started);
  await page.locator('body[data-hydrated="true"]').waitFor();
  results.hydrated.push(Date.now() - started);
  await page.waitForLoadState('networkidle');
  results.bytes.push((await Promise.all(sizes)).reduce((a, b) => a + b, 0));
  await context.close();
}
await browser.close();

console.log(`| what | median of ${rounds} |`);
console.log('|---|---:|');
console.log(`| control room rendered (server HTML) | ${median(results.html)} ms |`);
console.log(`| control room hydrated (WASM running) | ${median(results.hydrated)} ms |`);
console.log(`| bytes over the wire (compressed as served) | ${(median(results.bytes) / 1000).toFixed(0)} kB |`);

const wasm = readFileSync(new URL('../../target/site/pkg/rampart.wasm', import.meta.url));
const gzip = gzipSync(wasm, { level: 9 }).length;
const brotli = brotliCompressSync(wasm, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: wasm.length } }).length;
console.log(`\n| rampart.wasm | raw | gzip -9 | brotli -q 11 |\n|---|---:|---:|---:|\n| release | ${(wasm.length / 1000).toFixed(0)} kB | ${(gzip / 1000).toFixed(0)} kB | ${(brotli / 1000).toFixed(0)} kB |`);
