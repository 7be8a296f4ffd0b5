/**
 * The engine, end to end in Chromium: the built site picks a backend and says why, loads
 * the random-weight demo model, transcribes the micro fixture's two clips (chosen as files)
 * and shows the same token ids as the engine run in Node; a broken weights file gives a
 * readable banner and leaves the page working; a hub model downloads once and then loads
 * offline; a crashed worker is restarted.
 *
 * Screenshots land in test-results/screenshots/.
 */
import { watchPageErrors } from './chromium.ts';
import { standInHub } from './stand-in-hub.ts';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { MICRO_DIR, repoRoot, transcribeInNode, type NodeTranscript } from './node-reference.ts';

const SCREENSHOTS = resolve(repoRoot, 'test-results/screenshots');

let bat: NodeTranscript;
let pat: NodeTranscript;

test.beforeAll(async () => {
  bat = await transcribeInNode(MICRO_DIR, resolve(MICRO_DIR, 'clean.wav'));
  pat = await transcribeInNode(MICRO_DIR, resolve(MICRO_DIR, 'corrupt.wav'));
  // The random-weight model repeats one token per clip; the comparisons below only mean
  // something if the ids are there and depend on the audio.
  expect(bat.tokens.length).toBeGreaterThan(0);
  expect(pat.tokens).not.toEqual(bat.tokens);
});

async function loadDemoModel(page: Page): Promise<void> {
  await page.locator('input[name="model"][value="demo"]').check();
  await page.getByTestId('load-model').click();
  const info = page.getByTestId('model-info');
  await expect(info).toContainText('demo');
  await expect(info).toContainText('random-weight demo model: its outputs are meaningless');
}

/**
 * Sets the fixture's clips as the clean and corrupted files; the page transcribes both.
 * Returns the token ids it shows for each, after checking what a person sees.
 */
async function transcribePair(page: Page): Promise<{ clean: number[]; corrupt: number[] }> {
  for (const [which, file, expected] of [['clean', 'clean.wav', bat], ['corrupt', 'corrupt.wav', pat]] as const) {
    await page.getByTestId(`file-${which}`).setInputFiles(resolve(MICRO_DIR, file));
    await expect(page.getByTestId(`clip-label-${which}`)).toHaveText(file);
    await expect(page.getByTestId(`clip-${which}`)).toContainText(`${expected.seconds.toFixed(2)} s`);
  }
  const tokens = async (which: 'clean' | 'corrupt', expected: NodeTranscript) => {
    const list = page.getByTestId(`tokens-${which}`);
    // What a person sees: one token per list item (ids, as the demo model has no tokenizer).
    await expect(list.locator('li')).toHaveText(expected.tokens.map((id) => `#${id}`), { timeout: 60_000 });
    return JSON.parse((await list.getAttribute('data-tokens')) ?? 'null') as number[];
  };
  return { clean: await tokens('clean', bat), corrupt: await tokens('corrupt', pat) };
}

const transcribeBat = async (page: Page) => (await transcribePair(page)).clean;

test('WASM (fallback adapter): the demo model transcribes "bat" exactly like Node', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./');
  await expect(page.getByRole('heading', { name: 'Earshot' })).toBeVisible();

  const badge = page.getByTestId('backend-badge');
  await expect(badge).toHaveAttribute('data-backend', 'wasm');
  await expect(badge).toContainText('WASM');
  await expect(page.getByTestId('backend-reason')).toContainText(/fallback|software|not available|no adapter/i);
  await expect(page.getByText('random-weight demo model: its outputs are meaningless, it exercises the pipeline').first()).toBeVisible();

  await loadDemoModel(page);
  // Both clips of the pair, exactly Node's ids; the other clip gives other ids.
  expect(await transcribePair(page)).toEqual({ clean: bat.tokens, corrupt: pat.tokens });
  await page.screenshot({ path: `${SCREENSHOTS}/wasm-demo-bat.png`, fullPage: true });
  expect(pageErrors).toEqual([]);
});

test('WebGPU forced with ?backend=webgpu gives the same token ids', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./?backend=webgpu');
  const badge = page.getByTestId('backend-badge');
  await expect(badge).toHaveAttribute('data-backend', 'webgpu');
  await expect(badge).toContainText('WebGPU');
  await expect(page.getByTestId('backend-reason')).toContainText('forced');

  await loadDemoModel(page);
  expect(await transcribeBat(page)).toEqual(bat.tokens);
  await page.screenshot({ path: `${SCREENSHOTS}/webgpu-demo-bat.png`, fullPage: true });
  expect(pageErrors).toEqual([]);
});

test('a broken weights file or audio file shows a readable banner and the page keeps working', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./');
  await expect(page.getByTestId('backend-badge')).toHaveAttribute('data-backend', /.+/);

  await page.getByTestId('model-files').setInputFiles([
    { name: 'config.json', mimeType: 'application/json', buffer: await readFile(resolve(MICRO_DIR, 'config.json')) },
    { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from('these bytes are not a safetensors file') },
  ]);
  await page.getByTestId('load-model').click();
  const banner = page.getByRole('alert');
  await expect(banner).toBeVisible();
  const message = (await banner.textContent())?.replace('×', '').trim() ?? '';
  expect(message).toMatch(/safetensors/i);
  // One readable line: no stack frames, no source paths.
  expect(message).not.toMatch(/\n|\bat \S+ \(|\.ts:\d+|\.js:\d+/);
  expect(message.length).toBeLessThan(400);
  await expect(page.getByTestId('model-info')).toHaveCount(0);
  await page.screenshot({ path: `${SCREENSHOTS}/broken-weights-banner.png`, fullPage: true });

  await loadDemoModel(page);
  await expect(banner).toHaveCount(0);

  // A file that is not audio, as a clip: a banner again, and real clips still work.
  await page.getByTestId('file-clean').setInputFiles({ name: 'notes.wav', mimeType: 'audio/wav', buffer: Buffer.from('not audio at all') });
  await expect(banner).toContainText('notes.wav could not be decoded as audio');
  expect(await transcribeBat(page)).toEqual(bat.tokens);
  await expect(banner).toHaveCount(0);
  expect(pageErrors).toEqual([]);
});

test('a hub model downloads with progress and can be cancelled, then loads offline from Cache Storage', async ({ page, context }) => {
  const pageErrors = watchPageErrors(page);
  const repo = 'earshot-e2e/whisper-micro';
  // The first request for the weights is held unanswered, to see the progress bar and cancel it.
  const hub = await standInHub(context, { [repo]: { dir: MICRO_DIR, files: ['config.json', 'model.safetensors'] } }, [`${repo}/model.safetensors`]);

  await page.goto('./');
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  await page.locator('input[name="model"][value="custom"]').check();
  await page.getByLabel('Hugging Face repo id').fill(repo);
  await page.getByTestId('load-model').click();
  const progress = page.getByTestId('progress');
  await expect(progress).toContainText('Downloading model.safetensors');
  await page.screenshot({ path: `${SCREENSHOTS}/hub-download-progress.png`, fullPage: true });

  // Cancel: the bar goes away quietly (no error banner) and no model is loaded.
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(progress).toHaveCount(0);
  await expect(page.getByRole('alert')).toHaveCount(0);
  const info = page.getByTestId('model-info');
  await expect(info).toHaveCount(0);
  expect(hub.held).toHaveLength(1);

  hub.hold.clear();
  await page.getByTestId('load-model').click();
  await expect(info).toContainText(repo);
  await expect(info).not.toContainText('from the browser cache');
  await expect(info).not.toContainText('random-weight demo model');
  // config.json and the missing tokenizer.json came from Cache Storage the second time.
  expect(hub.served).toEqual([
    `/${repo}/resolve/main/config.json`,
    `/${repo}/resolve/main/tokenizer.json`,
    `/${repo}/resolve/main/model.safetensors`,
    `/${repo}/resolve/main/model.safetensors`,
  ]);

  // Second visit with the network gone: everything comes from Cache Storage.
  await context.unrouteAll({ behavior: 'ignoreErrors' });
  await context.route(/^https?:\/\/(?!localhost)/, (route) => route.abort('internetdisconnected'));
  await page.reload();
  await page.locator('input[name="model"][value="custom"]').check();
  await page.getByLabel('Hugging Face repo id').fill(repo);
  await page.getByTestId('load-model').click();
  await expect(info).toContainText('from the browser cache');
  expect(await transcribeBat(page)).toEqual(bat.tokens);
  await page.screenshot({ path: `${SCREENSHOTS}/hub-offline-cache.png`, fullPage: true });
  expect(pageErrors).toEqual([]);
});

test('if the engine worker dies, the page says so, restarts it, and loads again', async ({ page }) => {
  await page.goto('./');
  await loadDemoModel(page);
  const engine = page.workers().find((w) => w.url().includes('engine.worker'));
  expect(engine, 'the engine worker is running').toBeTruthy();
  // An uncaught exception inside the worker, as a crashing backend would raise.
  await engine!.evaluate(() => {
    setTimeout(() => {
      throw new Error('simulated engine crash');
    });
  });
  const banner = page.getByRole('alert');
  await expect(banner).toContainText('The engine stopped unexpectedly');
  await expect(banner).toContainText('load the model again');
  await expect(page.getByTestId('model-info')).toHaveCount(0);
  await expect(page.getByTestId('backend-badge')).toHaveAttribute('data-backend', 'wasm');
  await page.screenshot({ path: `${SCREENSHOTS}/engine-restarted.png`, fullPage: true });

  await loadDemoModel(page);
  expect(await transcribeBat(page)).toEqual(bat.tokens);
});
