import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { test, expect } from './fixtures';

// The committed example: the final report of a whole simulated rollout, made by
// `RAMPART_WRITE_EXAMPLES=1 cargo test -p server --test reports` (server/tests/reports.rs).
const example = pathToFileURL(path.resolve(__dirname, '../../docs/examples/final-report.html')).href;

test('the example final report reads as a report and prints without its links and form', async ({ page }) => {
  await page.goto(example);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Final report: Async upload rollout');
  for (const section of ['Summary', 'Stage timeline', 'Gate evidence at each advance', 'Incidents', 'Charts',
    'Baseline against the new path', 'Impact against the expected improvements', 'End-to-end matrix', 'Test results', 'Checklists']) {
    await expect(page.getByRole('heading', { level: 2, name: section, exact: true })).toBeVisible();
  }
  // A chart per arm's failures and latency for each stage with the flag on, each named.
  await expect(page.locator('figure svg[role="img"]')).toHaveCount(8);
  await expect(page.locator('figure svg title').first()).toContainText('Failed uploads');
  await expect(page.getByTestId('lessons')).toContainText('made each gate decidable on time');
  await expect(page.getByRole('row', { name: /Error rate ≤ 0.50%/ })).toContainText('pass');

  await page.emulateMedia({ media: 'print' });
  await expect(page.getByRole('navigation', { name: 'Reports' })).toBeHidden();
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  await page.emulateMedia({ media: 'screen' });
  await expect(page.getByRole('navigation', { name: 'Reports' })).toBeVisible();
});

test('the status page links the report, which the server makes from the stored rollout', async ({ page }) => {
  await page.goto('/status/1');
  const reports = page.getByTestId('reports');
  await expect(reports).toBeVisible();
  await reports.getByRole('link', { name: /Report so far|Final report/ }).click();
  await expect(page).toHaveURL(/\/status\/1\/report$/);
  await expect(page.getByRole('heading', { level: 1 })).toContainText('Async upload rollout');
  await expect(page.getByRole('heading', { level: 2, name: 'Stage timeline' })).toBeVisible();
  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Download as Markdown' }).click();
  const markdown = await download;
  expect(markdown.suggestedFilename()).toBe('rampart-rollout-1-report.md');
  await page.goto('/status/1/report/daily');
  await expect(page.getByRole('heading', { level: 1 })).toContainText('Daily report');
  // Every stage side by side, and per provider: linked from the status page and each report.
  await page.getByRole('navigation', { name: 'Reports' }).getByRole('link', { name: 'Stages compared' }).click();
  await expect(page).toHaveURL(/\/status\/1\/report\/compare$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Stages compared: Async upload rollout');
  await page.goto('/status/1');
  await page.getByTestId('reports').getByRole('link', { name: 'Stages compared' }).click();
  await expect(page).toHaveURL(/\/status\/1\/report\/compare$/);
});
