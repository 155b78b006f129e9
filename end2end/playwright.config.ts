import { defineConfig } from '@playwright/test';

// The server is started by `cargo xtask test`, which passes its address in RAMPART_URL and the
// first admin's password in RAMPART_ADMIN_PASSWORD; the global set-up adds the people the tests
// sign in as. Pages are browsed as the approver unless a test says otherwise.
// Chromium is Debian's: Playwright never downloads a browser on these machines.
export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  // The JUnit report is read back by `rampart test-results --dry-run` in `cargo xtask test`: the
  // parser meets this repo's own Playwright output on every run.
  reporter: [['list'], ['junit', { outputFile: '../target/junit/playwright.xml' }]],
  outputDir: 'test-results',
  globalSetup: './global-setup.ts',
  use: {
    storageState: '.auth/approver.json',
    baseURL: process.env.RAMPART_URL ?? 'http://127.0.0.1:3000',
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    },
  },
});
