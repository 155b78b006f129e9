import { request } from 'playwright-core';
import { spawnSync } from 'node:child_process';
const base = 'http://127.0.0.1:3999';
const ana = await request.newContext({ baseURL: base, storageState: '/work/main/end2end/.auth/approver.json', extraHTTPHeaders: { Origin: base } });
const bea = await request.newContext({ baseURL: base, storageState: '/work/main/end2end/.auth/secondApprover.json', extraHTTPHeaders: { Origin: base } });
async function command(ctx, body) {
  const { state } = await (await ctx.get('/api/v1/rollouts/1')).json();
  const r = await ctx.post('/api/v1/rollouts/1/commands', { data: { version: state.version, ...body } });
  console.log(body.command, r.status(), (await r.text()).slice(0, 120));
}
const admin = await request.newContext({ baseURL: base, storageState: '/work/main/end2end/.auth/admin.json', extraHTTPHeaders: { Origin: base } });
const tok = await (await admin.post('/api/v1/tokens', { data: { name: 'scenario' + Date.now(), scopes: ['ingest', 'evaluate', 'read'] } })).json();
process.env.RAMPART_TOKEN = tok.secret;
const sim = (secs, extra = []) => spawnSync('/work/main/target/debug/rampart', ['simulate', '--url', base, '--rate', '40', '--duration', `${secs}s`, ...extra], { env: process.env, stdio: 'inherit' });
await command(ana, { command: 'advance', override_reason: 'scenario' }); await command(bea, { command: 'approve' });
sim(120);
await command(ana, { command: 'advance', override_reason: 'scenario' }); await command(bea, { command: 'approve' });
sim(120);
await command(ana, { command: 'roll_back', target: 'previous', reason: 'scenario rollback' });
sim(120);
console.log('done');
