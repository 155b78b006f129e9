import { request, type FullConfig } from '@playwright/test';
import { mkdirSync, writeFileSync } from 'node:fs';

/** The people and the machine token every browser test uses. */
export const PEOPLE = {
  approver: { name: 'ana', role: 'approver', password: 'ana-approver-password' },
  // The default plan forbids approving one's own request: a second approver signs off.
  secondApprover: { name: 'bea', role: 'approver', password: 'bea-approver-password' },
  operator: { name: 'otto', role: 'operator', password: 'otto-operator-password' },
  viewer: { name: 'vera', role: 'viewer', password: 'vera-viewer-password' },
} as const;

export const AUTH_DIR = '.auth';

/**
 * Signs in as the first admin (whose password `cargo xtask test` set through
 * RAMPART_ADMIN_PASSWORD), adds two approvers, an operator and a viewer, saves each one's
 * signed-in browser state, and makes an API token for the tests' own HTTP calls.
 */
export default async function globalSetup(config: FullConfig) {
  const baseURL = config.projects[0].use.baseURL!;
  const adminPassword = process.env.RAMPART_ADMIN_PASSWORD;
  if (!adminPassword) throw new Error('RAMPART_ADMIN_PASSWORD is not set: run through `cargo xtask test`');
  mkdirSync(AUTH_DIR, { recursive: true });

  const admin = await signIn(baseURL, 'admin', adminPassword);
  for (const person of Object.values(PEOPLE)) {
    const made = await admin.post('/api/v1/users', { data: { name: person.name, role: person.role, password: person.password } });
    if (!made.ok() && made.status() !== 422) throw new Error(`cannot add ${person.name}: ${await made.text()}`);
  }
  const token = await admin.post('/api/v1/tokens', { data: { name: 'browser-tests', scopes: ['ingest', 'evaluate', 'read', 'drive'] } });
  if (!token.ok()) throw new Error(`cannot make a token: ${await token.text()}`);
  process.env.RAMPART_TOKEN = (await token.json()).secret;
  await admin.storageState({ path: `${AUTH_DIR}/admin.json` });
  await admin.dispose();

  for (const [key, person] of Object.entries(PEOPLE)) {
    const context = await signIn(baseURL, person.name, person.password);
    await context.storageState({ path: `${AUTH_DIR}/${key}.json` });
    await context.dispose();
  }
}

async function signIn(baseURL: string, name: string, password: string) {
  const context = await request.newContext({ baseURL, extraHTTPHeaders: { Origin: baseURL } });
  const response = await context.post('/auth/login', { form: { name, password }, headers: { Accept: 'application/json' } });
  if (!response.ok()) throw new Error(`cannot sign in as ${name}: ${await response.text()}`);
  return context;
}
