import { expect, test } from './fixtures';
import { request, type APIRequestContext } from '@playwright/test';
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';

// This spec runs against its own server and database (RAMPART_SDK_URL, started by `cargo xtask
// test`), so it does not depend on what the dashboard's specs did to their rollout, nor they on
// it. It sets up what it needs: two approvers, a token, and the flag at 10%.
const sdkURL = process.env.RAMPART_SDK_URL;

async function signIn(name: string, password: string): Promise<APIRequestContext> {
  const context = await request.newContext({ baseURL: sdkURL, extraHTTPHeaders: { Origin: sdkURL! } });
  const response = await context.post('/auth/login', { form: { name, password }, headers: { Accept: 'application/json' } });
  expect(response.ok(), await response.text()).toBeTruthy();
  return context;
}

async function command(who: APIRequestContext, body: object) {
  const version = (await (await who.get('/api/v1/rollouts/1')).json()).state.version;
  const response = await who.post('/api/v1/rollouts/1/commands', { data: { version, ...body } });
  expect(response.ok(), await response.text()).toBeTruthy();
  return response.json();
}

// An unchanged OpenFeature server SDK with the stock OFREP provider, pointed at Rampart.
test('an OpenFeature SDK with the OFREP provider gets the same answers as Rampart, on and off across a split', async () => {
  // Outside `cargo xtask test` there is no second server: fail and say so, rather than skip and
  // let a run without the SDK check pass.
  expect(sdkURL, 'RAMPART_SDK_URL is not set: run the browser tests through `cargo xtask test`, which starts the SDK server').toBeTruthy();
  const admin = await signIn('admin', process.env.RAMPART_ADMIN_PASSWORD!);
  for (const name of ['sdk-ana', 'sdk-bea']) {
    const made = await admin.post('/api/v1/users', { data: { name, role: 'approver', password: `${name}-password-long` } });
    expect(made.ok(), await made.text()).toBeTruthy();
  }
  const token = await admin.post('/api/v1/tokens', { data: { name: 'sdk', scopes: ['evaluate', 'read'] } });
  const secret = (await token.json()).secret;
  await admin.dispose();

  // Start, then go to the 10% stage: ana asks (overriding the stage's blockers), bea approves.
  const [ana, bea] = [await signIn('sdk-ana', 'sdk-ana-password-long'), await signIn('sdk-bea', 'sdk-bea-password-long')];
  await command(ana, { command: 'start' });
  for (let stage = 0; stage < 2; stage++) {
    await command(ana, { command: 'advance', override_reason: 'SDK test set-up' });
    await command(bea, { command: 'approve' });
  }
  const evaluator = await request.newContext({ baseURL: sdkURL, extraHTTPHeaders: { Authorization: `Bearer ${secret}` } });
  expect((await (await evaluator.get('/api/v1/flags/async_upload')).json()).percentage).toBe(10);

  // OFREP clients authenticate with X-API-Key.
  await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl: sdkURL!, headers: { 'X-API-Key': secret } }));
  const client = OpenFeature.getClient('rampart-e2e');

  // user-42 sits in bucket 1 (on at 10%), user-1 in bucket 48 (off): the split itself.
  const seen = new Set<boolean>();
  for (const unit of ['user-42', 'user-1', 'req-7f3a', 'customer@example.com', ...Array.from({ length: 20 }, (_, i) => `unit-${i}`)]) {
    const truth = await (await evaluator.get(`/api/v1/flags/async_upload/evaluate?unit=${encodeURIComponent(unit)}`)).json();
    const details = await client.getBooleanDetails('async_upload', !truth.enabled, { targetingKey: unit });
    expect(details.errorCode, unit).toBeUndefined();
    expect(details.value, unit).toBe(truth.enabled);
    expect(details.variant, unit).toBe(truth.enabled ? 'treatment' : 'control');
    expect(details.reason, unit).toBe('SPLIT');
    expect(details.flagMetadata.bucket, unit).toBe(truth.bucket);
    expect(truth.enabled, unit).toBe(truth.bucket <= 10);
    seen.add(details.value);
  }
  expect([...seen].sort()).toEqual([false, true]);
  const [on, off] = [await client.getBooleanDetails('async_upload', false, { targetingKey: 'user-42' }), await client.getBooleanDetails('async_upload', true, { targetingKey: 'user-1' })];
  expect([on.value, on.flagMetadata.bucket, off.value, off.flagMetadata.bucket]).toEqual([true, 1, false, 48]);

  // Rolled back: every unit off, the reason says why.
  await command(ana, { command: 'roll_back', target: 'off', reason: 'SDK test: off again' });
  await expect.poll(async () => (await client.getBooleanDetails('async_upload', true, { targetingKey: 'user-42' })).value).toBe(false);
  const disabled = await client.getBooleanDetails('async_upload', true, { targetingKey: 'user-42' });
  expect([disabled.reason, disabled.variant]).toEqual(['DISABLED', 'control']);

  const missing = await client.getBooleanDetails('async_upload', true, {});
  expect(missing.value).toBe(true);
  expect(missing.errorCode).toBe('TARGETING_KEY_MISSING');

  const unknown = await client.getBooleanDetails('no_such_flag', false, { targetingKey: 'user-1' });
  expect(unknown.value).toBe(false);
  expect(unknown.errorCode).toBe('FLAG_NOT_FOUND');

  await OpenFeature.close();
  for (const context of [ana, bea, evaluator]) await context.dispose();
});
