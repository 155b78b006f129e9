import { expect, type Locator, type Page } from '@playwright/test';
import { PEOPLE } from '../../global-setup';

/** The control room, as a person uses it: by roles, labels and the page's test ids. */
export class ControlRoom {
  readonly status: Locator;
  readonly served: Locator;
  readonly steps: Locator;
  readonly checklistItems: Locator;
  readonly progress: Locator;
  readonly timeline: Locator;
  readonly approval: Locator;
  readonly blockers: Locator;

  constructor(readonly page: Page) {
    this.status = page.getByTestId('rollout-status');
    this.served = page.getByTestId('served-flag');
    this.steps = page.getByTestId('stage-step');
    // The stage's own list: today's routines are a card of their own, above it.
    this.checklistItems = page.getByTestId('checklist').getByTestId('checklist-item');
    this.progress = page.getByTestId('checklist-progress');
    this.timeline = page.getByTestId('audit-entry');
    this.approval = page.getByTestId('approval');
    this.blockers = page.getByTestId('blockers');
  }

  async open(path = '/') {
    await this.page.goto(path);
    await expect(this.page.getByRole('heading', { level: 1 })).toBeVisible();
    await this.hydrated();
  }

  /** Clicks before hydration would be lost: the app marks <body> once it handles events. */
  async hydrated() {
    await expect(this.page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  }

  currentStep(): Locator {
    return this.page.locator('[data-testid="stage-step"][aria-current="step"]');
  }

  /** A gate's row by criterion: minevents, successrate, errorrate, latencyp95, memory. */
  gate(criterion: string): Locator {
    return this.page.locator(`[data-testid="gate"][data-criterion="${criterion}"]`);
  }

  item(index: number): Locator {
    return this.checklistItems.nth(index);
  }

  /**
   * Ticks an item by hand while an older copy of the page is on its way. `meanwhile` (someone
   * else's tick, through the API) makes the page fetch itself again; that copy is rendered
   * before the click's save and held back 400 ms, so it arrives after the save, and every
   * refresh after it is held back too. The box must show the tick all through, never flip back
   * to the older copy.
   */
  async tick(index: number, meanwhile?: () => Promise<void>) {
    const box = this.item(index).getByRole('checkbox');
    const refreshes = (url: URL) => !url.pathname.startsWith('/api/') && !url.pathname.startsWith('/pkg/');
    let rendered = () => {};
    const older = new Promise<void>((resolve) => (rendered = resolve));
    await this.page.route(refreshes, async (route) => {
      if (!route.request().headers()['x-rampart-refresh']) {
        return route.fallback();
      }
      // The server renders the page now; the browser gets it 400 ms later.
      const response = await route.fetch();
      rendered();
      await new Promise((resolve) => setTimeout(resolve, 400));
      await route.fulfill({ response });
    });
    try {
      if (meanwhile) {
        await meanwhile();
        await older;
      }
      await box.check();
      const shown = await this.page.evaluate(async (nth) => {
        const seen: boolean[] = [];
        for (const end = performance.now() + 1_500; performance.now() < end; ) {
          const item = document.querySelectorAll('[data-testid="checklist"] [data-testid="checklist-item"]')[nth];
          seen.push(item?.querySelector<HTMLInputElement>('input[type="checkbox"]')?.checked ?? false);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        return seen;
      }, index);
      expect(shown.filter((checked) => !checked).length, 'samples of the box unticked after the click').toBe(0);
    } finally {
      await this.page.unroute(refreshes);
    }
    await expect(box).toBeChecked();
    // The tick is saved when the page reloads its snapshot showing who ticked it.
    await expect(this.item(index).locator('.who')).toContainText(PEOPLE.approver.name);
  }

  async start() {
    await this.page.getByTestId('start').click();
    await expect(this.status).toHaveText('Running');
  }

  async approve() {
    await this.page.getByTestId('approve').click();
  }

  async overrideAdvance(reason: string) {
    await this.page.getByLabel('Override with a written reason').fill(reason);
    await this.page.getByTestId('override-advance').click();
  }
}
