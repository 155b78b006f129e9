import { expect, test } from './fixtures';
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';

// An unchanged OpenFeature server SDK with the stock OFREP provider, pointed at Rampart.
test('an OpenFeature SDK with the OFREP provider gets the same answers as Rampart', async ({ api, baseURL }) => {
  // OFREP clients authenticate with X-API-Key.
  await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl: baseURL!, headers: { 'X-API-Key': process.env.RAMPART_TOKEN! } }));
  const client = OpenFeature.getClient('rampart-e2e');

  for (const unit of ['user-42', 'user-1', 'req-7f3a', 'customer@example.com']) {
    const truth = await (await api.get(`/api/v1/flags/async_upload/evaluate?unit=${encodeURIComponent(unit)}`)).json();
    const details = await client.getBooleanDetails('async_upload', !truth.enabled, { targetingKey: unit });
    expect(details.errorCode, unit).toBeUndefined();
    expect(details.value, unit).toBe(truth.enabled);
    expect(details.variant, unit).toBe(truth.variant);
    expect(details.reason, unit).toBe(truth.reason);
    expect(details.flagMetadata.bucket, unit).toBe(truth.bucket);
  }

  const missing = await client.getBooleanDetails('async_upload', true, {});
  expect(missing.value).toBe(true);
  expect(missing.errorCode).toBe('TARGETING_KEY_MISSING');

  const unknown = await client.getBooleanDetails('no_such_flag', false, { targetingKey: 'user-1' });
  expect(unknown.value).toBe(false);
  expect(unknown.errorCode).toBe('FLAG_NOT_FOUND');

  await OpenFeature.close();
});
