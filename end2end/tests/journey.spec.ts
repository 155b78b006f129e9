import { spawn } from 'node:child_process';
import path from 'node:path';
import { request, type APIRequestContext } from '@playwright/test';
import { expect, test } from './fixtures';
import { PEOPLE } from '../global-setup';
import { ControlRoom } from './pages/control-room';

/** The server's own simulator (`rampart simulate`): the upload service's stand-in. */
function simulate(baseURL: string, args: string[]): Promise<string> {
  const binary = path.resolve(__dirname, '../../target/debug/rampart');
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['simulate', '--url', baseURL, ...args], { env: { ...process.env } });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(output) : reject(new Error(`rampart simulate exited ${code}:\n${output}`))));
  });
}

/** A person's API session (what their browser would send), for set-up steps. */
async function as(baseURL: string, who: 'approver' | 'secondApprover'): Promise<APIRequestContext> {
  return request.newContext({ baseURL, storageState: `.auth/${who}.json`, extraHTTPHeaders: { Origin: baseURL } });
}

async function command(context: APIRequestContext, body: object) {
  const { state } = await (await context.get('/api/v1/rollouts/1')).json();
  const response = await context.post('/api/v1/rollouts/1/commands', { data: { version: state.version, ...body } });
  expect(response.ok(), await response.text()).toBeTruthy();
  return response.json();
}

test('the journey: traffic from the simulator turns gates from inconclusive to pass, two people approve, a regression rolls back live', async ({ page, api, browser, baseURL }) => {
  test.setTimeout(120_000);
  const ana = await as(baseURL!, 'approver');
  const bea = await as(baseURL!, 'secondApprover');

  // Set-up: bring the rollout to stage 3 (50%), each step asked by ana and approved by bea.
  let { state } = await (await api.get('/api/v1/rollouts/1')).json();
  if (state.status === 'draft') state = await command(ana, { command: 'start' });
  if (state.status === 'paused') state = await command(ana, { command: 'resume' });
  while (state.stage < 3) {
    await command(ana, { command: 'advance', override_reason: 'journey set-up' });
    state = await command(bea, { command: 'approve' });
  }
  expect(state.status).toBe('running');
  await page.setViewportSize({ width: 1280, height: 1000 });
  const room = new ControlRoom(page);
  await room.open('/rollouts/1');
  await expect(room.currentStep()).toContainText('50%');

  // The checklist: all but the first item by the team's scripts, the first one here.
  const { checklist } = await (await api.get('/api/v1/rollouts/1')).json();
  const items = checklist.filter((i: any) => i.stage === 3);
  for (const item of items.slice(1)) {
    expect((await api.post(`/api/v1/rollouts/1/checklist/${item.id}`, { data: { checked: true } })).ok()).toBeTruthy();
  }
  // The open page follows the scripts' ticks (each one a refetch); tick by hand once it has, as
  // a person would, not while it is redrawing the list.
  await expect(page.getByTestId('checklist-progress')).toHaveText(`${items.length - 1} of ${items.length} done`);
  await room.tick(0);

  // No traffic at this stage yet: the gates say so rather than pass.
  await expect(room.gate('minevents')).toContainText('inconclusive');
  await expect(room.gate('successrate')).toContainText('inconclusive');

  // Ten seconds of the upload service at 50%: ~3,000 treatment uploads. The open page follows.
  const started = Date.now();
  const output = await simulate(baseURL!, ['--rate', '600', '--duration', '10s', '--seed', '7']);
  expect(output).toContain('flag on for 50%');
  // Freeze this traffic's control arm (the flag-off users) as the baseline the gates compare to.
  const baseline = await ana.post('/api/v1/rollouts/1/baseline', { data: { from: started - 2_000, to: Date.now() + 1_000 } });
  expect(baseline.ok(), await baseline.text()).toBeTruthy();
  for (const criterion of ['minevents', 'successrate', 'errorrate', 'latencyp95', 'memory']) {
    await expect(room.gate(criterion)).toContainText('pass');
  }
  // The impact against the plan's expected improvements, against that baseline.
  await expect(page.getByTestId('impact')).toContainText('against the frozen baseline');
  await expect(page.getByTestId('impact-row')).toHaveCount(5);
  await expect(page.getByTestId('impact-row').last()).toContainText('not measured');
  // What still blocks Advance is the 72-hour soak alone.
  await expect(room.blockers).toContainText('soak time remaining');
  await expect(room.blockers.locator('li')).toHaveCount(1);
  await page.screenshot({ path: 'test-results/journey-gates.png', fullPage: true });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: 'test-results/journey-gates-top.png' });

  // Ana asks to go to 100% (waiving the soak in writing); Bea approves on her own screen.
  page.on('dialog', (dialog) => dialog.accept());
  await room.overrideAdvance('Gates pass on 3,000 uploads; soak waived for the demo by the release owner');
  await expect(room.status).toHaveText('Awaiting approval');
  const context = await browser.newContext({ storageState: '.auth/secondApprover.json' });
  const second = new ControlRoom(await context.newPage());
  await second.open('/rollouts/1');
  await second.approve();
  await expect(second.currentStep()).toContainText('100%');
  await context.close();
  await expect(room.served).toHaveText('Served: on for 100%');
  await expect(room.timeline.first()).toContainText(`${PEOPLE.secondApprover.name}`);
  // The final stage shows its end-to-end matrix: 6 file types × 4 sizes × 2 providers, no
  // uploads in any cell yet, each shown as empty.
  await expect(page.getByTestId('matrix')).toBeVisible();
  await expect(page.getByTestId('matrix-cell')).toHaveCount(48);
  await expect(page.getByTestId('matrix-summary')).toContainText('0 of 48 cells pass');
  await expect(page.getByTestId('matrix-cell').first()).toContainText('0 of 20');
  await expect(page.getByTestId('matrix-cell').first()).toContainText('no uploads yet');

  // The upload service regresses: the guard loop rolls the flag back, and the page shows it live.
  const injected = Date.now();
  await simulate(baseURL!, ['--rate', '200', '--duration', '4s', '--seed', '8', '--inject', 'error=40%@0s']);
  await expect(room.status).toHaveText('Rolled back', { timeout: 10_000 });
  await expect(room.served).toHaveText('Served: off');
  await expect(room.timeline.first()).toContainText('Rolled back automatically from stage 4');
  // The whole history downloads as CSV, the rollback among its entries.
  const csvLink = page.getByTestId('audit-export').getByRole('link', { name: 'CSV' });
  const csv = await (await ana.get((await csvLink.getAttribute('href'))!)).text();
  expect(csv.split('\r\n')[0]).toBe('id,at,actor,action,stage,version,summary,reason');
  expect(csv).toContain('auto_roll_back');
  console.log(`journey: regression injected → rollback on the open page in ${Date.now() - injected} ms (including the 4 s run)`);
  await page.screenshot({ path: 'test-results/journey-rollback.png', fullPage: true });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: 'test-results/journey-rollback-top.png' });
  await ana.dispose();
  await bea.dispose();
});
