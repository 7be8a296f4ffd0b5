import { defineConfig } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';
import { CHROMIUM, chromiumFlags } from './tests/e2e/chromium.ts';

// Vitest 5 prints failures with Map.groupBy (Node 21+). On Node 20 it crashed while
// reporting a failed test and hid the failure itself, so supply it here, in the main process.
if (typeof (Map as { groupBy?: unknown }).groupBy !== 'function') {
  Object.defineProperty(Map, 'groupBy', {
    value<K, V>(items: Iterable<V>, key: (item: V, index: number) => K): Map<K, V[]> {
      const groups = new Map<K, V[]>();
      let i = 0;
      for (const item of items) {
        const k = key(item, i++);
        const group = groups.get(k);
        if (group) group.push(item);
        else groups.set(k, [item]);
      }
      return groups;
    },
    configurable: true,
    writable: true,
  });
}


export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'node',
          environment: 'node',
          include: ['{models,lab,kernels,workers,tools,tests}/**/*.test.ts'],
          exclude: ['**/*.browser.test.ts', '**/node_modules/**', 'tests/e2e/**'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        // Let the browser tests fetch binary fixtures from the repo and from the
        // read-only ../shared reference data via Vite's /@fs/ URLs (tests/util/fixtures.ts).
        // Paths are relative to the project root; the repo root must stay listed.
        server: { fs: { allow: ['.', '../shared'] } },
        // Dynamically imported packages, pre-bundled up front: discovered mid-run, Vite would
        // re-optimise and reload the page, failing whichever test was importing at the time.
        optimizeDeps: { include: ['onnxruntime-web', 'onnxruntime-web/webgpu', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-backend-webgpu'] },
        test: {
          name: 'browser',
          include: ['{models,lab,kernels,tests}/**/*.browser.test.ts'],
          testTimeout: 600_000,
          hookTimeout: 600_000,
          browser: {
            enabled: true,
            headless: true,
            provider: playwright({
              launchOptions: { executablePath: CHROMIUM, args: chromiumFlags },
            }),
            instances: [{ browser: 'chromium' }],
          },
        },
      },
    ],
  },
});
