import { expect, test } from './fixtures';
import { PEOPLE } from '../global-setup';
import { ControlRoom } from './pages/control-room';

test('a new installation opens on the seeds rollout at stage 0', async ({ page }) => {
  const room = new ControlRoom(page);
  await room.open();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Async upload rollout');
  await expect(room.steps).toHaveCount(5);
  await expect(room.steps.nth(1)).toContainText('1%');
  await expect(room.steps.nth(4)).toContainText('100%');
  await expect(room.currentStep()).toContainText('Phase 1 deployed, flags off');
  await expect(room.served).toHaveText('Served: off');
  await expect(page.getByRole('heading', { name: /Stage 0/ })).toBeVisible();
  await expect(room.checklistItems.first()).toContainText('Review all documentation');
  // Each day's list says when it is done, as the seeds do.
  await expect(page.getByTestId('done-when').first()).toHaveText('Done when: All components verified · All tests passing · Environment ready');
});

test('a JUnit report from CI shows as a run with its failed cases and the suite trend', async ({ page, api }) => {
  const passing = Array.from({ length: 15 }, (_, i) => `<testcase classname="upload.spec.ts" name="case ${i}" time="0.1"/>`).join('');
  const failing =
    '<testcase classname="upload.spec.ts" name="a large PDF shows the limit" time="0.2">' +
    '<failure message="expected &quot;upload limit is 50 MB&quot;">at upload.spec.ts:8</failure></testcase>';
  const xml = `<?xml version="1.0"?><testsuites name="ci" time="2.5"><testsuite name="Phase 1">${passing}${failing}</testsuite></testsuites>`;
  const posted = await api.post('/api/v1/rollouts/1/test-runs?suite=Phase%201', { headers: { 'content-type': 'application/xml' }, data: xml });
  expect(posted.status()).toBe(201);

  const room = new ControlRoom(page);
  await room.open();
  const card = page.getByRole('region', { name: 'Test runs' });
  await expect(card.getByTestId('tests-total')).toContainText('Sign-off asks for 57 tests: 15 pass in the newest runs (Phase 1 16, Phase 2 12, Phase 3 29)');
  await expect(card.getByTestId('suite-trend')).toContainText('Phase 1 (16 tests) · newest: 15 of 16 passed, 1 failed');
  await expect(card.getByTestId('test-run').first()).toContainText('Phase 1 · stage 0 · 15 passed, 1 failed');
  await expect(card.getByTestId('test-run').first()).toContainText('2.5 s');
  await card.getByText('1 failed case').click();
  await expect(card.getByTestId('failed-case')).toContainText('upload.spec.ts › a large PDF shows the limit');
  await expect(card.getByTestId('failed-case')).toContainText('expected "upload limit is 50 MB"');
});

test('a ticked checklist item survives a reload, and an override advances once a second approver approves', async ({ page, browser, api }) => {
  // Overriding asks for confirmation first.
  const questions: string[] = [];
  page.on('dialog', (dialog) => {
    questions.push(dialog.message());
    dialog.accept();
  });
  const room = new ControlRoom(page);
  await room.open();
  await room.start();

  const before = await room.progress.textContent();
  // Someone else ticks another item of the stage just before: the copy of the page that tick
  // makes is older than this click's save, and must not undo it.
  const mine = Number(await room.item(0).getByRole('checkbox').getAttribute('data-item'));
  const other = (await (await api.get('/api/v1/rollouts/1')).json()).checklist.find((i: any) => i.stage === 0 && i.id !== mine);
  const mark = async (checked: boolean) =>
    expect((await api.post(`/api/v1/rollouts/1/checklist/${other.id}`, { data: { checked } })).ok()).toBeTruthy();
  await room.tick(0, () => mark(true));
  await expect(room.progress).not.toHaveText(before ?? '');
  // Back as it was: the stage's count below is this page's one tick.
  await mark(false);
  await expect(page.locator(`#item-${other.id}`).getByRole('checkbox')).not.toBeChecked();

  await page.reload();
  await room.hydrated();
  await expect(room.item(0).getByRole('checkbox')).toBeChecked();
  await expect(room.item(0)).toContainText(PEOPLE.approver.name);

  // A finding and an owner, written on the item's own small page, show under it; the tick
  // stays as it was.
  await room.item(0).getByRole('link', { name: 'Finding / owner' }).click();
  await page.getByLabel('What was found').fill('Docs reviewed with the team; runbook linked');
  await page.getByLabel('Owner').fill('ana');
  await page.getByRole('button', { name: 'Save' }).click();
  await room.hydrated();
  await expect(room.item(0).getByTestId('checklist-note')).toHaveText('Docs reviewed with the team; runbook linked');
  await expect(room.item(0)).toContainText('owner ana');
  await expect(room.item(0).getByRole('checkbox')).toBeChecked();

  // Stage 0 cannot be left yet: its soak, checklist, baseline and test suite block it.
  await expect(page.getByTestId('blockers')).toContainText('soak time remaining');
  await room.overrideAdvance('Staging soak already covered this; approved in the rollout review');
  expect(questions).toEqual(['Go on past the blockers? Your reason goes into the audit trail.']);

  // The default plan needs one approval by somebody other than who asked.
  await expect(room.status).toHaveText('Awaiting approval');
  await expect(room.served).toHaveText('Served: off');
  await expect(room.approval).toContainText(`${PEOPLE.approver.name} asked for advancing to 1% rollout`);
  await expect(room.approval).toContainText('0 of 1 approval so far');
  await expect(page.getByTestId('approve')).toBeDisabled();
  await expect(page.getByTestId('approve')).toHaveAttribute('title', /somebody else to approve/);

  const context = await browser.newContext({ storageState: '.auth/secondApprover.json' });
  const second = new ControlRoom(await context.newPage());
  await second.open('/rollouts/1');
  await expect(second.approval).toContainText('Override reason: Staging soak already covered this');
  await second.approve();
  await expect(second.currentStep()).toContainText('1% rollout');
  await context.close();

  // The asker's open page follows without a reload.
  await expect(room.currentStep()).toContainText('1% rollout');
  await expect(room.served).toHaveText('Served: on for 1%');
  // Stage 0's checklist stays reachable, with who ticked what.
  await expect(page.getByTestId('other-checklist').first()).toContainText('Stage 0: Phase 1 deployed, flags off — 1 of 78 done');
  await expect(page.getByRole('heading', { name: /Stage 1: 1% rollout/ })).toBeVisible();
  await expect(room.timeline.first()).toContainText(`Approved the request by ${PEOPLE.approver.name}: advanced to stage 1`);
  await expect(room.timeline.first()).toContainText(PEOPLE.secondApprover.name);
  await expect(room.timeline.first()).toContainText('approved in the rollout review');
  // The next override starts from a blank reason, never from the last one.
  await expect(page.getByLabel('Override with a written reason')).toHaveValue('');

  await page.screenshot({ path: 'test-results/control-room.png', fullPage: true });
});

/** NDJSON upload events at `at` (ms), as the upload service would send them. */
function uploads(prefix: string, count: number, at: number, variant: string, outcome: string, latency: number): string {
  return Array.from({ length: count }, (_, i) => JSON.stringify({
    timestamp: at - i, event_id: `${prefix}-${i}`, variant, outcome, latency_ms: latency, memory_mb: 40,
    provider: i % 2 ? 'kimi' : 'glm', file_type: 'csv', size_bytes: 2_000_000,
  })).join('\n');
}

test('gates judge the treatment arm against the frozen baseline', async ({ page, api }) => {
  const now = Date.now();
  expect((await api.post('/api/v1/events', { data: uploads('base', 300, now - 300_000, 'sync', 'success', 300) })).ok()).toBeTruthy();
  const room = new ControlRoom(page);
  await room.open();
  // The approver freezes the baseline from the page, shown the numbers it will freeze first:
  // the control uploads of the hour up to two whole minutes ago (these 300, five minutes old).
  const card = page.getByTestId('baseline-card');
  await expect(card.getByTestId('baseline-current')).toContainText('No baseline yet');
  await card.locator('select[name="baseline_hours"]').selectOption('1');
  await card.getByTestId('preview-baseline').click();
  await expect(page).toHaveURL(/\/rollouts\/1\?baseline_hours=1$/);
  await expect(card.getByTestId('baseline-preview')).toContainText('300 uploads, success 100.00%');
  await expect(page.getByTestId('baseline')).toContainText('No baseline recorded yet');
  await card.getByTestId('freeze-baseline').click();
  await expect(page).toHaveURL(/\/rollouts\/1#baseline$/);
  await expect(card.getByTestId('baseline-preview')).toHaveCount(0);
  await expect(card.getByTestId('baseline-current')).toContainText('300 uploads, success 100.00%');
  await expect(card.getByTestId('baseline-current')).toContainText(`Frozen by ${PEOPLE.approver.name}`);

  expect((await api.post('/api/v1/events', { data: uploads('treated', 500, Date.now(), 'async', 'success', 120) })).ok()).toBeTruthy();
  // The control arm of this stage (the flag-off users), for the comparison beside each gate.
  expect((await api.post('/api/v1/events', { data: uploads('control', 300, Date.now(), 'sync', 'success', 300) })).ok()).toBeTruthy();
  await room.open();
  const gate = (criterion: string) => page.locator(`[data-testid="gate"][data-criterion="${criterion}"]`);
  await expect(page.getByTestId('baseline')).toContainText('Baseline (frozen): 300 uploads');
  await expect(gate('minevents')).toContainText('pass');
  await expect(gate('latencyp95')).toContainText('pass');
  // 500 of 500 cannot prove ≥ 99.5% yet (the anytime-valid interval needs about 1,800): the
  // page says so, and how many more it needs, instead of passing it. Latency can: none of the
  // 500 is slower than the limit, and about 430 prove that at most 5% will be.
  await expect(gate('successrate')).toContainText('inconclusive');
  await expect(page.getByTestId('criteria')).toContainText('still includes 99.50%');
  await expect(page.getByTestId('criteria')).toContainText('more uploads at the observed rate');
  // Beside each rate, treatment minus control with its always-valid interval: both arms clean.
  await expect(page.getByTestId('criteria')).toContainText('vs control');
  await expect(gate('successrate').getByTestId('versus-control')).toContainText(/[+−]0\.00 pts \(−\d+\.\d\d to \+\d+\.\d\d\)/);
  await expect(gate('memory').getByTestId('versus-control')).toHaveText('—');
  await expect(page.getByTestId('blockers')).toContainText('Success rate: inconclusive');
  // The arms' split against the flag's 1%. The stage began seconds ago (this whole run takes
  // about a minute), and clients that cache the flag send at the old split for a while, so the
  // check counts from five minutes in: this test's few hundred of each arm, far from 1 in 100,
  // are not yet counted, and the row says from when it will count. (The server tests cover a
  // mismatch failing the row and, once held ten minutes, raising the alert.)
  await expect(gate('sampleratio')).toContainText('pass');
  await expect(page.getByTestId('criteria')).toContainText('0 treatment and 0 control uploads (counted from 5m after the stage began): no uploads yet where the flag serves 1%');
  // The charts draw both arms against the gate and the baseline.
  for (const chart of ['chart-success', 'chart-errors', 'chart-latency', 'chart-memory', 'chart-uploads']) {
    await expect(page.getByTestId(chart).locator('svg').first()).toBeVisible();
  }
  await expect(page.getByTestId('chart-latency')).toContainText('baseline p95');
  await expect(page.getByTestId('chart-success')).toContainText('gate ≥ 99.5%');
  await page.getByRole('button', { name: '1 h' }).click();
  await expect(page.getByRole('button', { name: '1 h' })).toHaveAttribute('aria-pressed', 'true');
  await expect(page.getByTestId('chart-uploads').locator('svg').first()).toBeVisible();
  // The whole rollout, from its start, with the stage changes marked.
  await page.getByRole('button', { name: 'Whole rollout' }).click();
  await expect(page.getByRole('button', { name: 'Whole rollout' })).toHaveAttribute('aria-pressed', 'true');
  await expect(page.getByTestId('charts')).toContainText('Stage 0: Phase 1 deployed, flags off');
  await page.screenshot({ path: 'test-results/gates.png', fullPage: true });
  // Another range keeps the baseline card's look at the last hours.
  await room.open('/rollouts/1?baseline_hours=1');
  await page.getByRole('button', { name: '6 h' }).click();
  await expect(page.getByRole('button', { name: '6 h' })).toHaveAttribute('aria-pressed', 'true');
  await expect(page).toHaveURL(/\/rollouts\/1\?hours=6&baseline_hours=1$/);
  await expect(card.getByTestId('baseline-preview')).toBeVisible();
});

test('a half-typed reason survives someone else\'s change, and a stale click is refused with the reason', async ({ page, api }) => {
  const room = new ControlRoom(page);
  await room.open('/rollouts/1');
  await expect(room.status).toHaveText('Running');

  // Someone else ticks an item: the page swaps in what changed, and the actions card, which did
  // not, keeps the reason being typed in it.
  const reason = page.getByLabel('Reason', { exact: true });
  await reason.fill('half-typed: latency on kimi looks');
  const items = (await (await api.get('/api/v1/rollouts/1')).json()).checklist.filter((i: any) => i.stage === 1);
  const last = items[items.length - 1];
  expect((await api.post(`/api/v1/rollouts/1/checklist/${last.id}`, { data: { checked: true } })).ok()).toBeTruthy();
  await expect(page.locator(`#item-${last.id}`)).toContainText('token:browser-tests');
  await expect(reason).toHaveValue('half-typed: latency on kimi looks');

  // This page stops catching up (its refreshes fail) while someone else pauses: its Pause acts
  // on a version that is gone, and the refusal says so.
  const refreshes = (url: URL) => !url.pathname.startsWith('/api/') && !url.pathname.startsWith('/pkg/');
  await page.route(refreshes, (route) => (route.request().headers()['x-rampart-refresh'] ? route.abort() : route.fallback()));
  const command = async (body: object) => {
    const { state } = await (await api.get('/api/v1/rollouts/1')).json();
    const answer = await api.post('/api/v1/rollouts/1/commands', { data: { version: state.version, ...body } });
    expect(answer.ok(), await answer.text()).toBeTruthy();
    return state.version + 1;
  };
  await command({ command: 'pause', reason: 'checking the stale page' });
  await page.getByTestId('pause').click();
  const refusal = page.getByTestId('action-error');
  await expect(refusal).toHaveText('Someone else acted first; the page now shows the current state.');

  // Once it catches up (the next change), the card shows the current version and the refusal
  // stays until the next command from it.
  await page.unroute(refreshes);
  const current = await command({ command: 'resume' });
  await expect(page.locator('form:has([data-testid="pause"]) input[name="version"]')).toHaveValue(String(current));
  await expect(refusal).toBeVisible();
  await expect(room.status).toHaveText('Running');
});

test('an error spike in the treatment arm is rolled back by the guard loop, live on the open page', async ({ page, api }) => {
  const room = new ControlRoom(page);
  await room.open();
  await expect(room.status).toHaveText('Running');
  await expect(room.served).toHaveText('Served: on for 1%');

  // Someone else's tick (stage 1's first item) reaches this page without a reload, within 1 s.
  const item = (await (await api.get('/api/v1/rollouts/1')).json()).checklist.find((i: any) => i.stage === 1);
  expect((await api.post(`/api/v1/rollouts/1/checklist/${item.id}`, { data: { checked: true } })).ok()).toBeTruthy();
  await expect(room.item(0)).toContainText(`${item.text}`);
  await expect(room.item(0)).toContainText('token:browser-tests', { timeout: 1_000 });

  const sent = Date.now();
  const report = await api.post('/api/v1/events', { data: uploads('spike', 200, Date.now(), 'async', 'error', 120) });
  expect(report.ok()).toBeTruthy();
  // The guard loop acts within milliseconds of the ingest, and the open page shows it.
  await expect(room.status).toHaveText('Rolled back', { timeout: 5_000 });
  await expect(room.served).toHaveText('Served: off');
  console.log(`breach to rollback shown on the open page: ${Date.now() - sent} ms`);
  expect((await (await api.get('/api/v1/flags/async_upload')).json()).enabled).toBe(false);
  await expect(room.timeline.first()).toContainText('rampart guard');
  await expect(room.timeline.first()).toContainText('Rolled back automatically from stage 1');
  await expect(room.timeline.first()).toContainText('error rate');
  await page.screenshot({ path: 'test-results/rollback.png', fullPage: true });
});

test('a viewer follows the rollout but sees no enabled action', async ({ browser }) => {
  const context = await browser.newContext({ storageState: '.auth/viewer.json' });
  const page = await context.newPage();
  const room = new ControlRoom(page);
  await room.open('/rollouts/1');
  await expect(page.getByTestId('account')).toContainText(`${PEOPLE.viewer.name} · viewer`);
  await expect(page.getByTestId('role-note')).toContainText('signed in as a viewer');
  const actions = page.locator('.actions button, .alerts button, .checklist input');
  expect(await actions.count()).toBeGreaterThan(0);
  for (const control of await actions.all()) {
    await expect(control).toBeDisabled();
  }
  // The reason is on the control itself.
  await expect(page.getByTestId('override-advance')).toHaveAttribute('title', /may not override a gate: it takes the approver role/);
  await context.close();
});

test('people sign in through the form, are told when it fails, and sign out', async ({ browser }) => {
  const context = await browser.newContext({ storageState: undefined });
  const page = await context.newPage();
  await page.goto('/rollouts/1');
  await expect(page).toHaveURL(/\/login\?next=\/rollouts\/1/);
  await page.getByLabel('Name').fill(PEOPLE.operator.name);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('login-error')).toHaveText('Wrong name or password.');
  await page.getByLabel('Name').fill(PEOPLE.operator.name);
  await page.getByLabel('Password').fill(PEOPLE.operator.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/rollouts\/1$/);
  await expect(page.getByTestId('account')).toContainText(`${PEOPLE.operator.name} · operator`);
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await expect(page).toHaveURL(/\/login/);
  await page.goto('/rollouts/1');
  await expect(page).toHaveURL(/\/login/);
  await context.close();
});

test.describe('with JavaScript off', () => {
  test.use({ javaScriptEnabled: false });

  test('a share link opens the status page read-only, without an account', async ({ browser, baseURL }) => {
    const admin = await browser.newContext({ storageState: '.auth/admin.json', extraHTTPHeaders: { Origin: baseURL! } });
    const made = await admin.request.post('/api/v1/share-links', { data: { rollout_id: 1, label: 'exec staff', valid_for_hours: 24 } });
    expect(made.ok(), await made.text()).toBeTruthy();
    const { secret } = await made.json();
    await admin.close();

    const stakeholder = await browser.newContext({ storageState: undefined, javaScriptEnabled: false });
    const page = await stakeholder.newPage();
    await page.goto(`/share/${secret}`);
    await expect(page).toHaveURL(/\/status\/1$/);
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Async upload rollout');
    await expect(page.getByText('This page is read-only.')).toBeVisible();
    await page.goto('/rollouts/1');
    await expect(page).toHaveURL(/\/login/);
    await stakeholder.close();
  });

  test('the stakeholder status page says where things stand', async ({ page }) => {
    await page.goto('/status');
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Async upload rollout');
    await expect(page.getByTestId('health')).toContainText('Trouble');
    await expect(page.getByTestId('health')).toContainText('Rolled back to Phase 1 deployed, flags off');
    await expect(page.getByTestId('next')).toContainText('1% rollout');
    await expect(page.locator('.incidents')).toContainText('Rolled back automatically');
    await page.screenshot({ path: 'test-results/status.png', fullPage: true });
  });
});

test('the overview lists every rollout and the plan view checks a plan file', async ({ page }) => {
  await page.goto('/rollouts');
  const row = page.getByTestId('rollout-row').first();
  await expect(row).toContainText('Async upload rollout');
  await expect(row).toContainText('Stage 0 of 4');
  await row.getByRole('link', { name: 'Async upload rollout' }).click();
  await expect(page).toHaveURL(/\/rollouts\/1$/);

  await page.goto('/rollouts/1/plan');
  await expect(page.getByTestId('plan-stage')).toHaveCount(5);
  await expect(page.getByTestId('plan-stage').nth(1)).toContainText('success ≥ 99.5%');
  const body = page.locator('body[data-hydrated="true"]');
  await expect(body).toHaveCount(1);
  // The power planner at the plan's stated traffic (20,000 uploads an hour): every stage's
  // gates can pass within its soak. At 1,000 an hour, stage 1's cannot, and the page says so.
  const power = page.getByTestId('power-stage');
  await expect(power).toHaveCount(4);
  await expect(power.first()).toContainText('treatment uploads (success rate)');
  await expect(power.first()).toContainText('within the soak');
  await page.getByLabel('Uploads an hour (both arms)').fill('1000');
  await expect(power.first()).toContainText('at 10 an hour; 9 in 10 stages within ≈ 7,896');
  await expect(power.first()).toContainText('longer than its 2d soak');
  await expect(power.first()).toContainText('not within the soak');
  await page.getByLabel('Plan file', { exact: true }).fill('key = "x"\nname = "X"\n[flag]\nkey = 42\n');
  await page.getByRole('button', { name: 'Check' }).click();
  await expect(page.getByTestId('plan-errors')).toContainText('line');
});

test('an admin makes a token, a share link and a webhook on the admin page, each secret shown once', async ({ browser, baseURL }) => {
  const context = await browser.newContext({ storageState: '.auth/admin.json' });
  const page = await context.newPage();
  await page.goto('/admin');
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  const vera = page.getByTestId('user-row').filter({ has: page.getByRole('cell', { name: PEOPLE.viewer.name, exact: true }) });
  await expect(vera).toContainText('active');
  await expect(vera.getByRole('combobox', { name: `Role of ${PEOPLE.viewer.name}` })).toHaveValue('viewer');
  // An account throttled by someone else's guesses is cleared in one click.
  await vera.getByRole('button', { name: `Clear the failed sign-ins of ${PEOPLE.viewer.name}` }).click();
  await expect(page.getByTestId('unlocked')).toBeVisible();
  await expect(page.getByTestId('unlocked')).toContainText('Failed sign-ins cleared');

  await page.getByLabel('Token name').fill('ci pipeline');
  await page.getByRole('checkbox', { name: 'read' }).check();
  await page.getByRole('checkbox', { name: 'drive' }).check();
  await page.getByRole('button', { name: 'Create token' }).click();
  const secret = page.getByTestId('issued-secret');
  await expect(secret).toHaveText(/^rmp_[0-9a-f]{64}$/);
  await expect(page.getByTestId('token-row').filter({ hasText: 'ci pipeline' })).toContainText('read, drive');

  await page.getByLabel('Who it is for').fill('board meeting');
  await page.getByRole('button', { name: 'Create link' }).click();
  await expect(page.getByTestId('share-link-row').filter({ hasText: 'board meeting' })).toContainText('active');
  // The list never shows a secret again.
  await page.reload();
  await expect(page.getByTestId('issued-secret')).toHaveCount(0);

  // A webhook for approval requests; nothing listens at its address, so its delivery log shows
  // the failed attempt and the retry to come.
  await page.getByLabel('URL').fill('http://127.0.0.1:9/rampart');
  await page.getByLabel('Description').fill('#upload-rollout');
  await page.getByRole('checkbox', { name: 'approval needed' }).check();
  await page.getByRole('button', { name: 'Add webhook' }).click();
  await expect(page.getByTestId('issued-secret')).toHaveText(/^whsec_[0-9a-f]{64}$/);
  const hook = page.getByTestId('webhook').filter({ hasText: '127.0.0.1:9/rampart' });
  await expect(hook).toContainText('approval_needed — #upload-rollout');
  const as = { headers: { Origin: baseURL! } };
  const version = async () => (await (await context.request.get('/api/v1/rollouts/1')).json()).state.version;
  const asked = await context.request.post('/api/v1/rollouts/1/commands', { ...as, data: { version: await version(), command: 'advance', override_reason: 'webhook check' } });
  expect(asked.ok(), await asked.text()).toBeTruthy();
  const declined = await context.request.post('/api/v1/rollouts/1/commands', { ...as, data: { version: await version(), command: 'decline', reason: 'only a webhook check' } });
  expect(declined.ok(), await declined.text()).toBeTruthy();
  await expect(async () => {
    await page.reload();
    await expect(hook.getByTestId('delivery-row').first()).toContainText('could not connect', { timeout: 1_000 });
  }).toPass({ timeout: 10_000 });
  await expect(hook.getByTestId('delivery-row').first()).toContainText('retrying');
  await page.screenshot({ path: 'test-results/admin.png', fullPage: true });
  await context.close();
});

test('the control room and the status page fit a phone screen without sideways scrolling', async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  for (const path of ['/rollouts/1', '/status/1', '/rollouts']) {
    const room = new ControlRoom(page);
    await room.open(path);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    // The innermost elements that reach past the screen's right edge, to say what to fix.
    const wide = await page.evaluate(() =>
      [...document.querySelectorAll('body *')]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
        .filter((el) => ![...el.children].some((child) => child.getBoundingClientRect().right > window.innerWidth + 0.5))
        .slice(0, 5)
        .map((el) => `<${el.tagName.toLowerCase()} class="${el.getAttribute('class') ?? ''}"> ${(el.textContent ?? '').trim().slice(0, 40)}`),
    );
    expect(overflow, `${path} is ${overflow}px wider than the screen: ${wide.join(' | ')}`).toBeLessThanOrEqual(0);
  }
  await page.goto('/rollouts/1');
  await page.screenshot({ path: 'test-results/phone.png', fullPage: false });
});

test('every control has an accessible name, and a checklist item is ticked from the keyboard', async ({ page }) => {
  const room = new ControlRoom(page);
  await room.open('/rollouts/1');
  const unnamed = await page.evaluate(() =>
    [...document.querySelectorAll('button, input:not([type=hidden]), select, textarea, a[href]')]
      .filter((el) => {
        const labelled = (el as HTMLInputElement).labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
        const text = (el.textContent ?? '').trim() || el.getAttribute('title');
        return !labelled && !text;
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
  expect(unnamed).toEqual([]);

  // Tab from the checklist's heading to its first item, then tick it with the space bar.
  const box = room.item(0).getByRole('checkbox');
  const wasChecked = await box.isChecked();
  await page.locator('#checklist-title').evaluate((h: HTMLElement) => {
    h.tabIndex = -1;
    h.focus();
  });
  for (let i = 0; i < 5 && !(await box.evaluate((el) => el === document.activeElement)); i++) {
    await page.keyboard.press('Tab');
  }
  await expect(box).toBeFocused();
  const before = await room.progress.textContent();
  await page.keyboard.press('Space');
  await expect(box).toBeChecked({ checked: !wasChecked });
  // Once saved, the list is swapped in afresh, and the focus stays on the box just ticked.
  await expect(room.progress).not.toHaveText(before ?? '');
  await expect(box).toBeFocused();
});
