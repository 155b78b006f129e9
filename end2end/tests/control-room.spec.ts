import { expect, test } from '@playwright/test';
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
  await expect(room.checklistItems.first()).toContainText('async_upload_config.py');
});

test('a ticked checklist item survives a reload, and an override advances the stage', async ({ page }) => {
  const room = new ControlRoom(page);
  await room.open();
  await room.start();

  const before = await room.progress.textContent();
  await room.tick(0);
  await expect(room.progress).not.toHaveText(before ?? '');

  await page.reload();
  await room.hydrated();
  await expect(room.item(0).getByRole('checkbox')).toBeChecked();
  await expect(room.item(0)).toContainText('anonymous');

  // Stage 0 cannot be left yet: its soak, checklist, baseline and test suite block it.
  await expect(page.getByTestId('blockers')).toContainText('soak time remaining');
  await room.overrideAdvance('Staging soak already covered this; approved in the rollout review');

  await expect(room.currentStep()).toContainText('1% rollout');
  await expect(room.served).toHaveText('Served: on for 1%');
  await expect(page.getByRole('heading', { name: /Stage 1: 1% rollout/ })).toBeVisible();
  await expect(room.timeline.first()).toContainText('Advanced to stage 1');
  await expect(room.timeline.first()).toContainText('approved in the rollout review');
  // The next override starts from a blank reason, never from the last one.
  await expect(page.getByLabel('Override with a written reason')).toHaveValue('');

  await page.screenshot({ path: 'test-results/control-room.png', fullPage: true });
});
