import { test as base, type APIRequestContext } from '@playwright/test';

/**
 * `api`: Rampart's HTTP API as a machine calls it, with the token the global set-up made
 * (`page` browses as a signed-in person; see playwright.config.ts).
 */
export const test = base.extend<{ api: APIRequestContext }>({
  api: async ({ playwright, baseURL }, use) => {
    const api = await playwright.request.newContext({
      baseURL,
      extraHTTPHeaders: { Authorization: `Bearer ${process.env.RAMPART_TOKEN}` },
    });
    await use(api);
    await api.dispose();
  },
});

export { expect } from '@playwright/test';
