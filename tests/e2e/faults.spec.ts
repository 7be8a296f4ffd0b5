/**
 * Faults, end to end in Chromium, each injected into the real engine worker (page.workers()):
 * the WebGPU device destroyed mid-sweep and between requests, a reload mid-run (after a
 * finished step, and during the first sweep), the worker crashing mid-sweep, the WASM heap
 * really exhausted, a cancelled hub download, a full Cache Storage quota and IndexedDB refusing
 * writes. In each, the app recovers and what the user made (clips, settings, target, finished
 * results) survives. The timing hooks patch the worker's postMessage: they decide WHEN a fault
 * strikes (mid-sweep, after step 1), never what the engine computes.
 *
 * Screenshots land in test-results/screenshots/faults-*.png.
 */
import { resolve } from 'node:path';
import { expect, test, type Page, type Worker } from '@playwright/test';
import { watchPageErrors } from './chromium.ts';
import { standInHub } from './stand-in-hub.ts';
import { MICRO_DIR, repoRoot } from './node-reference.ts';

const SCREENSHOTS = resolve(repoRoot, 'test-results/screenshots');

interface PageSweep {
  clean: number | string;
  corrupt: number | string;
  results: { hook: string; position: number | null; positionEnd: number | null; head: number | null; value: number | string; effect: number | string }[];
}

const num = (x: number | string) => (typeof x === 'string' ? Number(x) : x);

async function pageSweep(page: Page): Promise<PageSweep> {
  return JSON.parse((await page.getByTestId('results').getAttribute('data-sweep')) || 'null') as PageSweep;
}

async function engineWorker(page: Page): Promise<Worker> {
  await expect.poll(() => page.workers().some((w) => w.url().includes('engine.worker'))).toBe(true);
  return page.workers().filter((w) => w.url().includes('engine.worker')).at(-1)!;
}

async function loadDemoModel(page: Page): Promise<void> {
  await page.locator('input[name="model"][value="demo"]').check();
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('model-info')).toContainText('random-weight demo model');
}

/** Demo model, the built-in bat/pat pair, and a small experiment (SwiftShader WebGPU is slow). */
async function smallExperiment(page: Page): Promise<void> {
  await loadDemoModel(page);
  await page.getByTestId('pair-bat-pat').click();
  await expect(page.getByTestId('target-summary')).toBeVisible({ timeout: 60_000 });
  await page.getByTestId('component-attn_out').uncheck();
  await page.getByTestId('component-cross_attn_out').uncheck();
  await page.getByTestId('bin-ms').selectOption('40');
  await page.getByLabel('attribution patching estimates').uncheck();
}

async function waitForFinished(page: Page): Promise<void> {
  await expect(page.getByTestId('results')).toHaveAttribute('data-partial', 'false', { timeout: 180_000 });
  for (const chart of ['encoder-heatmap', 'per-layer', 'grounding', 'listen-vs-guess', 'lens', 'cross-attention']) {
    await expect(page.getByTestId(`chart-${chart}`)).toHaveAttribute('data-drawn', 'true');
  }
}

/** The saved session's results, read from IndexedDB as the page stored them. */
async function savedResults(page: Page): Promise<{ bins: unknown; partial: boolean; finishedAt: number } | null> {
  return page.evaluate(
    () =>
      new Promise((done, fail) => {
        const open = indexedDB.open('earshot');
        open.onerror = () => fail(open.error);
        open.onsuccess = () => {
          const get = open.result.transaction('session').objectStore('session').get('last');
          get.onsuccess = () => done((get.result as { results: never } | undefined)?.results ?? null);
          get.onerror = () => fail(get.error);
        };
      }),
  );
}

test('WebGPU device lost mid-sweep: the run finishes on WASM, says why once, and its numbers equal a WASM run', async ({ page, context }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./?backend=webgpu');
  const badge = page.getByTestId('backend-badge');
  await expect(badge).toHaveAttribute('data-backend', 'webgpu');
  await smallExperiment(page);

  // Inside the engine: at the first streamed sweep results (the sweep has more batches to
  // go), destroy the WebGPU device tfjs runs on.
  const engine = await engineWorker(page);
  expect(await engine.evaluate(() => (globalThis as unknown as { _tfengine: { backendName: string } })._tfengine.backendName)).toBe('webgpu');
  await engine.evaluate(() => {
    const g = globalThis as unknown as { _tfengine: { backend: { device: GPUDevice } }; lostAt?: { done: number; total: number }; streamedAfter: number };
    g.streamedAfter = 0;
    const scope = self as unknown as { postMessage: (m: unknown, t?: Transferable[]) => void };
    const post = scope.postMessage.bind(scope);
    scope.postMessage = (m: unknown, t?: Transferable[]) => {
      const p = (m as { kind: string; payload: { results?: unknown[]; done: number; total: number } }).payload;
      if ((m as { kind: string }).kind === 'progress' && p.results?.length) {
        if (g.lostAt) g.streamedAfter++;
        else {
          g.lostAt = { done: p.done, total: p.total };
          g._tfengine.backend.device.destroy();
        }
      }
      post(m, t);
    };
  });
  await page.getByTestId('run').click();
  await waitForFinished(page);
  const lostAt = await engine.evaluate(() => (globalThis as unknown as { lostAt?: { done: number; total: number } }).lostAt);
  expect(lostAt, 'the device was destroyed during the sweep').toBeTruthy();
  expect(lostAt!.done).toBeLessThan(lostAt!.total);
  // The sweep kept streaming its results after the loss (now from WASM).
  expect(await engine.evaluate(() => (globalThis as unknown as { streamedAfter: number }).streamedAfter)).toBeGreaterThan(0);

  await expect(badge).toHaveAttribute('data-backend', 'wasm');
  await expect(page.getByTestId('backend-reason')).toContainText('WebGPU device was lost');
  await expect(page.getByRole('status')).toContainText('The WebGPU device was lost');
  await expect(page.getByRole('status')).toHaveCount(1);
  await expect(page.getByRole('alert')).toHaveCount(0);
  await expect(page.getByTestId('results')).toContainText('webgpu → wasm (GPU lost)');
  await page.screenshot({ path: `${SCREENSHOTS}/faults-1-device-lost.png`, fullPage: true });
  const survived = await pageSweep(page);

  // The same experiment (settings, clips and target come back from IndexedDB) on WASM.
  const wasm = await context.newPage();
  await wasm.goto('./?backend=wasm');
  await expect(wasm.getByTestId('backend-badge')).toHaveAttribute('data-backend', 'wasm');
  await expect(wasm.getByTestId('target-summary')).toBeVisible({ timeout: 60_000 });
  await expect(wasm.getByTestId('run')).toBeEnabled();
  await wasm.getByTestId('run').click();
  await expect(wasm.getByTestId('results')).toContainText('demo on wasm');
  await waitForFinished(wasm);
  const reference = await pageSweep(wasm);
  expect(survived.results.map((r) => [r.hook, r.position, r.positionEnd])).toEqual(reference.results.map((r) => [r.hook, r.position, r.positionEnd]));
  expect(survived.results.length).toBeGreaterThan(4);
  const scale = Math.max(1, Math.abs(num(reference.clean)), Math.abs(num(reference.corrupt)));
  survived.results.forEach((r, i) => expect(Math.abs(num(r.value) - num(reference.results[i].value))).toBeLessThan(1e-4 * scale));
  expect(pageErrors).toEqual([]);
});

/** Holds back the engine's answer to the second sweep (whole layers): the run stays in step 2. */
async function stallSecondSweep(engine: Worker): Promise<void> {
  await engine.evaluate(() => {
    const scope = self as unknown as { postMessage: (m: unknown, t?: Transferable[]) => void };
    const post = scope.postMessage.bind(scope);
    let sweeps = 0;
    scope.postMessage = (m: unknown, t?: Transferable[]) => {
      const msg = m as { kind: string; payload?: { cost?: unknown } };
      if (msg.kind === 'result' && msg.payload?.cost && ++sweeps === 2) return;
      post(m, t);
    };
  });
}

test('a reload mid-run keeps the clips, settings, target and finished steps, and says the run was interrupted', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./');
  await smallExperiment(page);
  const choice = await page.getByTestId('target-summary').getAttribute('data-choice');
  await stallSecondSweep(await engineWorker(page));
  await page.getByTestId('run').click();
  await expect(page.getByTestId('run-progress')).toContainText('Step 2 of');
  await expect(page.getByTestId('chart-encoder-heatmap')).toHaveAttribute('data-drawn', 'true');
  const bins = await pageSweep(page);
  expect(bins.results.length).toBeGreaterThan(0);
  // The finished first step is in IndexedDB before the run is over.
  await expect.poll(async () => Boolean((await savedResults(page))?.bins)).toBe(true);

  await page.reload();
  await expect(page.getByTestId('clip-label-clean')).toHaveText('bat');
  await expect(page.getByTestId('clip-label-corrupt')).toHaveText('pat');
  await expect(page.getByTestId('bin-ms')).toHaveValue('40');
  await expect(page.getByTestId('component-attn_out')).not.toBeChecked();
  const results = page.getByTestId('results');
  await expect(results).toHaveAttribute('data-partial', 'true');
  await expect(page.getByTestId('interrupted')).toContainText('This run was interrupted');
  expect(await pageSweep(page)).toEqual(bins);
  await expect(page.getByTestId('chart-encoder-heatmap')).toHaveAttribute('data-drawn', 'true');
  await expect(page.getByTestId('chart-per-layer')).toHaveCount(0);
  // The model reloads and the pair is prepared again with the same target; then "Run again".
  await expect(page.getByTestId('target-summary')).toBeVisible({ timeout: 60_000 });
  expect(await page.getByTestId('target-summary').getAttribute('data-choice')).toBe(choice);
  await page.screenshot({ path: `${SCREENSHOTS}/faults-2-interrupted.png`, fullPage: true });
  await page.getByTestId('run-again').click();
  await waitForFinished(page);
  await expect(page.getByTestId('interrupted')).toHaveCount(0);
  const again = await pageSweep(page);
  again.results.forEach((r, i) => expect(Math.abs(num(r.value) - num(bins.results[i].value))).toBeLessThan(1e-5));
  expect(pageErrors).toEqual([]);
});

test('a reload during the first sweep keeps the part of it that streamed', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./');
  await smallExperiment(page);
  // The first sweep streams its batches, but its answer never arrives: the run stays in step 1.
  await (await engineWorker(page)).evaluate(() => {
    const scope = self as unknown as { postMessage: (m: unknown, t?: Transferable[]) => void };
    const post = scope.postMessage.bind(scope);
    scope.postMessage = (m: unknown, t?: Transferable[]) => {
      const msg = m as { kind: string; payload?: { cost?: unknown } };
      if (msg.kind === 'result' && msg.payload?.cost) return;
      post(m, t);
    };
  });
  await page.getByTestId('run').click();
  await expect(page.getByTestId('run-progress')).toContainText('Step 1 of');
  await expect(page.getByTestId('chart-encoder-heatmap')).toHaveAttribute('data-drawn', 'true');
  await expect.poll(async () => ((await savedResults(page)) as { streamed?: unknown[] } | null)?.streamed?.length ?? 0).toBeGreaterThan(0);

  await page.reload();
  await expect(page.getByTestId('interrupted')).toContainText('This run was interrupted');
  await expect(page.getByTestId('chart-encoder-heatmap')).toHaveAttribute('data-drawn', 'true');
  const shown = JSON.parse((await page.getByTestId('chart-encoder-heatmap').getAttribute('data-values')) ?? '{}') as Record<string, unknown[]>;
  expect(Object.values(shown).flat().length).toBeGreaterThan(0);
  await expect(page.getByTestId('target-summary')).toBeVisible({ timeout: 60_000 });
  await page.getByTestId('run-again').click();
  await waitForFinished(page);
  expect(pageErrors).toEqual([]);
});

test('WebGPU device lost between requests: the next request moves to WASM first, and a run finishes', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./?backend=webgpu');
  await expect(page.getByTestId('backend-badge')).toHaveAttribute('data-backend', 'webgpu');
  await smallExperiment(page);
  await (await engineWorker(page)).evaluate(() => (globalThis as unknown as { _tfengine: { backend: { device: GPUDevice } } })._tfengine.backend.device.destroy());
  // Another pair: transcribing and preparing it is the first work after the loss.
  await page.getByTestId('pair-pin-bin').click();
  await expect(page.getByTestId('clip-label-clean')).toHaveText('pin');
  await expect(page.getByTestId('target-summary')).toBeVisible({ timeout: 60_000 });
  await expect(page.getByTestId('backend-badge')).toHaveAttribute('data-backend', 'wasm');
  await expect(page.getByTestId('tokens-clean').locator('li').first()).toBeVisible();
  await expect(page.getByRole('status')).toContainText('The WebGPU device was lost');
  await page.getByTestId('run').click();
  await waitForFinished(page);
  await expect(page.getByTestId('backend-badge')).toHaveAttribute('data-backend', 'wasm');
  await expect(page.getByRole('alert')).toHaveCount(0);
  expect((await pageSweep(page)).results.every((r) => Number.isFinite(num(r.value)))).toBe(true);
  expect(pageErrors).toEqual([]);
});

test('WebGPU device lost inside a request that is not a sweep: it runs again on WASM and answers what WASM answers', async ({ page, browser }) => {
  /** Both transcripts and the prepared target (its logit differences included), as the page shows them. */
  const prepared = async (p: Page) => ({
    clean: await p.getByTestId('tokens-clean').innerText(),
    corrupt: await p.getByTestId('tokens-corrupt').innerText(),
    summary: await p.getByTestId('target-summary').innerText(),
    choice: await p.getByTestId('target-summary').getAttribute('data-choice'),
  });
  const pageErrors = watchPageErrors(page);
  await page.goto('./?backend=webgpu');
  await expect(page.getByTestId('backend-badge')).toHaveAttribute('data-backend', 'webgpu');
  await loadDemoModel(page);
  // The next prepare-pair request destroys the device at its 50th tfjs kernel: mid-request.
  const worker = await engineWorker(page);
  await worker.evaluate(() => {
    const g = globalThis as unknown as {
      onmessage: (e: MessageEvent<{ kind: string }>) => void;
      _tfengine: { runKernel: (...a: unknown[]) => unknown; backend: { device?: GPUDevice } };
      __lostAtKernel?: number;
    };
    const engine = g._tfengine;
    const original = g.onmessage;
    g.onmessage = (e) => {
      if (e.data.kind === 'prepare-pair' && g.__lostAtKernel === undefined) {
        const run = engine.runKernel.bind(engine);
        let n = 0;
        engine.runKernel = (...a: unknown[]) => {
          if (++n === 50) {
            g.__lostAtKernel = n;
            engine.backend.device?.destroy();
            engine.runKernel = run;
          }
          return run(...a);
        };
      }
      original(e);
    };
  });
  await page.getByTestId('pair-bat-pat').click();
  await expect(page.getByTestId('target-summary')).toBeVisible({ timeout: 120_000 });
  expect(await worker.evaluate(() => (globalThis as unknown as { __lostAtKernel?: number }).__lostAtKernel)).toBe(50);
  await expect(page.getByTestId('backend-badge')).toHaveAttribute('data-backend', 'wasm');
  await expect(page.getByRole('alert')).toHaveCount(0);
  const afterLoss = await prepared(page);

  const ref = await browser.newPage();
  await ref.goto('./?backend=wasm');
  await loadDemoModel(ref);
  await ref.getByTestId('pair-bat-pat').click();
  await expect(ref.getByTestId('target-summary')).toBeVisible({ timeout: 60_000 });
  expect(afterLoss).toEqual(await prepared(ref));
  await ref.close();
  expect(pageErrors).toEqual([]);
});

test('the engine worker crashing mid-run: restarted, clips and finished results kept, a new run completes', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./');
  await smallExperiment(page);
  // Crash (an uncaught exception in the worker, as a dying backend raises) while the second
  // sweep streams, after the first step finished.
  await (await engineWorker(page)).evaluate(() => {
    const scope = self as unknown as { postMessage: (m: unknown, t?: Transferable[]) => void };
    const post = scope.postMessage.bind(scope);
    let sweeps = 0;
    scope.postMessage = (m: unknown, t?: Transferable[]) => {
      const msg = m as { kind: string; payload?: { cost?: unknown; results?: unknown[] } };
      if (msg.kind === 'result' && msg.payload?.cost) sweeps++;
      if (sweeps === 1 && msg.kind === 'progress' && msg.payload?.results?.length) {
        setTimeout(() => {
          throw new Error('simulated engine crash');
        });
        sweeps++;
      }
      post(m, t);
    };
  });
  await page.getByTestId('run').click();
  const banner = page.getByRole('alert');
  await expect(banner).toContainText('The engine stopped unexpectedly');
  await expect(page.getByTestId('run-progress')).toHaveCount(0);
  await expect(page.getByTestId('clip-label-clean')).toHaveText('bat');
  await expect(page.getByTestId('clip-label-corrupt')).toHaveText('pat');
  await expect(page.getByTestId('results')).toHaveAttribute('data-partial', 'true');
  await expect(page.getByTestId('chart-encoder-heatmap')).toHaveAttribute('data-drawn', 'true');
  const bins = await pageSweep(page);
  expect(bins.results.length).toBeGreaterThan(0);
  await expect.poll(async () => (await savedResults(page))?.finishedAt ?? 0).toBeGreaterThan(0);
  await page.screenshot({ path: `${SCREENSHOTS}/faults-3-worker-crashed.png`, fullPage: true });

  // Load the model again: the pair is prepared by itself, and a new run completes.
  await loadDemoModel(page);
  await expect(page.getByTestId('target-summary')).toBeVisible({ timeout: 60_000 });
  await page.getByTestId('run').click();
  await waitForFinished(page);
  await expect(banner).toHaveCount(0);
  const again = await pageSweep(page);
  again.results.forEach((r, i) => expect(Math.abs(num(r.value) - num(bins.results[i].value))).toBeLessThan(1e-5));
  expect(pageErrors).toEqual([]);
});

test('WASM heap exhausted: one sentence, nothing corrupted, and the same run completes once memory is back', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./');
  await smallExperiment(page);
  await page.getByTestId('run').click();
  await waitForFinished(page);
  const before = await pageSweep(page);

  // A real heap exhaustion inside the engine: take every byte tfjs-wasm's heap can grow to.
  // (The threaded build's malloc then returns 0, which tfjs would use as an address.)
  const engine = await engineWorker(page);
  const taken = await engine.evaluate(() => {
    const wasm = (globalThis as unknown as { _tfengine: { backend: { wasm: { _malloc: (n: number) => number } } } })._tfengine.backend.wasm;
    const hog: number[] = [];
    (globalThis as unknown as { hog: number[] }).hog = hog;
    let last = '';
    for (const size of [2 ** 28, 2 ** 24, 2 ** 20, 2 ** 16, 2 ** 12, 2 ** 8, 16]) {
      for (;;) {
        try {
          const p = wasm._malloc(size);
          if (p === 0) throw new Error('malloc returned 0');
          hog.push(p);
        } catch (e) {
          last = String(e);
          break;
        }
      }
    }
    return { blocks: hog.length, last };
  });
  expect(taken.last).toContain('Out of memory: the WASM heap could not grow');
  await page.getByTestId('run').click();
  const banner = page.getByRole('alert');
  await expect(banner).toContainText(/ran out of memory|Not enough memory/);
  await expect(banner).toContainText('try fewer positions or a smaller model');
  await expect(banner).not.toContainText('Something went wrong');
  await expect(page.getByTestId('run-progress')).toHaveCount(0);
  // The failed run finished no step: the last finished results stay on the page.
  await expect(page.getByTestId('results')).toHaveAttribute('data-partial', 'false');
  expect(await pageSweep(page)).toEqual(before);
  await page.screenshot({ path: `${SCREENSHOTS}/faults-5-wasm-oom.png`, fullPage: true });

  // Memory back: the same engine, model and pair run the experiment again, with the same numbers.
  await engine.evaluate(() => {
    const wasm = (globalThis as unknown as { _tfengine: { backend: { wasm: { _free: (p: number) => void } } } })._tfengine.backend.wasm;
    for (const p of (globalThis as unknown as { hog: number[] }).hog) wasm._free(p);
  });
  await page.getByTestId('run').click();
  await waitForFinished(page);
  await expect(banner).toHaveCount(0);
  const after = await pageSweep(page);
  after.results.forEach((r, i) => expect(Math.abs(num(r.value) - num(before.results[i].value))).toBeLessThan(1e-5));
  expect(pageErrors).toEqual([]);
});

test('a cancelled download leaves nothing in Cache Storage; a full quota still loads the model and says it was not cached', async ({ page, context }) => {
  const pageErrors = watchPageErrors(page);
  const repo = 'earshot-e2e/whisper-quota';
  const hub = await standInHub(context, { [repo]: { dir: MICRO_DIR, files: ['config.json', 'model.safetensors'] } }, [`${repo}/model.safetensors`]);
  const cachedFiles = () =>
    page.evaluate(async () => (await (await caches.open('earshot-hub-v1')).keys()).map((r) => new URL(r.url).pathname.split('/').pop()).sort());

  await page.goto('./');
  const engine = await engineWorker(page);
  await page.locator('input[name="model"][value="custom"]').check();
  await page.getByLabel('Hugging Face repo id').fill(repo);
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('progress')).toContainText('Downloading model.safetensors');
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByTestId('progress')).toHaveCount(0);
  // The small files finished and were kept; the weights, cancelled, left no entry.
  expect(await cachedFiles()).toEqual(['config.json', 'tokenizer.json']);
  await hub.held[0].abort('aborted').catch(() => undefined);

  // Now the quota is full: every Cache Storage write fails inside the engine.
  await engine.evaluate(() => {
    Cache.prototype.put = () => Promise.reject(new DOMException('The quota has been exceeded.', 'QuotaExceededError'));
  });
  hub.hold.clear();
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('model-info')).toContainText(repo);
  const notice = page.getByRole('status');
  await expect(notice).toContainText('could not be kept in the browser cache (the browser storage is full)');
  await expect(page.getByRole('alert')).toHaveCount(0);
  expect(await cachedFiles()).toEqual(['config.json', 'tokenizer.json']);
  await page.screenshot({ path: `${SCREENSHOTS}/faults-4-quota.png`, fullPage: true });
  // The model works from memory: the pair is transcribed and prepared.
  await page.getByTestId('pair-bat-pat').click();
  await expect(page.getByTestId('target-summary')).toBeVisible({ timeout: 60_000 });

  // Next visit: the weights were not cached, so they download again (and are cached now).
  await page.reload();
  await page.locator('input[name="model"][value="custom"]').check();
  await page.getByLabel('Hugging Face repo id').fill(repo);
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('model-info')).toContainText(repo);
  expect(hub.served.filter((p) => p === `/${repo}/resolve/main/model.safetensors`)).toHaveLength(3);
  expect(hub.served.filter((p) => p === `/${repo}/resolve/main/config.json`)).toHaveLength(1);
  expect(await cachedFiles()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
  expect(pageErrors).toEqual([]);
});

test('IndexedDB refusing writes: the lab keeps working and says the session will not survive a reload', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.addInitScript(() => {
    IDBObjectStore.prototype.put = () => {
      throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    };
  });
  await page.goto('./');
  await smallExperiment(page);
  await expect(page.getByRole('status')).toContainText('Could not save the session in this browser');
  await expect(page.getByRole('status')).toContainText('it will not survive a reload');
  await page.getByTestId('run').click();
  await waitForFinished(page);
  await expect(page.getByRole('alert')).toHaveCount(0);
  expect(pageErrors).toEqual([]);
});
