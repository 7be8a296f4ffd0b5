/**
 * End-to-end tests of the built site in Debian's Chromium (never a downloaded browser):
 * `npx playwright test`. The web server builds the site and serves dist/ with
 * `vite preview`, which sends the same COOP/COEP headers as the dev server.
 */
import { defineConfig } from '@playwright/test';
import { CHROMIUM, chromiumFlags } from './tests/e2e/chromium.ts';

// EARSHOT_E2E_PORT lets two checkouts run their e2e suites side by side.
const PORT = Number(process.env.EARSHOT_E2E_PORT ?? 4173);

export default defineConfig({
  testDir: 'tests/e2e',
  outputDir: 'test-results/e2e',
  // WebGPU on SwiftShader compiles every shader on the CPU: generous, but bounded.
  timeout: 240_000,
  expect: { timeout: 60_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: Boolean(process.env.CI),
  reporter: [['list']],
  use: {
    baseURL: `http://localhost:${PORT}/`,
    browserName: 'chromium',
    launchOptions: { executablePath: CHROMIUM, args: chromiumFlags },
    viewport: { width: 1100, height: 900 },
    trace: 'retain-on-failure',
  },
  webServer: {
    command: `npm run build && npx vite preview --port ${PORT} --strictPort`,
    url: `http://localhost:${PORT}/`,
    reuseExistingServer: !process.env.CI,
    timeout: 180_000,
    stdout: 'ignore',
    stderr: 'pipe',
  },
});
