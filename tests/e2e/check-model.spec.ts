/**
 * "Check this model on this device", end to end in Debian Chromium: the demo model against
 * its ONNX export (tools/reference/make_onnx.py, served by the site) in onnxruntime-web
 * (wasm), with our model on forced WASM and on WebGPU (SwiftShader); a mismatched or broken
 * export gives one sentence and the lab keeps working; a hub model is checked against the
 * export the mapping names (a stand-in hub), with progress, cancel and Cache Storage.
 *
 * Screenshots land in test-results/screenshots/check-*.png.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { expect, test, type BrowserContext, type Page } from '@playwright/test';
import { watchPageErrors } from './chromium.ts';
import { standInHub } from './stand-in-hub.ts';
import { MICRO_DIR, repoRoot } from './node-reference.ts';

const SCREENSHOTS = resolve(repoRoot, 'test-results/screenshots');
const ONNX = resolve(MICRO_DIR, 'onnx');

interface Diff {
  maxAbs: number;
  scale: number;
  relative: number;
}
interface ShownReport {
  encoder: Diff;
  logits: Diff;
  tolerance: number;
  topTokens: { ours: number[]; onnx: number[] };
}

/** Every request leaving localhost, to show the check fetches nothing from a CDN. */
function watchOffsite(context: BrowserContext): string[] {
  const offsite: string[] = [];
  context.on('request', (r) => {
    const url = new URL(r.url());
    if (url.protocol.startsWith('http') && url.hostname !== 'localhost') offsite.push(r.url());
  });
  return offsite;
}

async function loadDemoWithPair(page: Page, query: string): Promise<number[]> {
  await page.goto(`./${query}`);
  await page.locator('input[name="model"][value="demo"]').check();
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('model-info')).toContainText('random-weight demo model');
  await page.getByTestId('pair-bat-pat').click();
  const list = page.getByTestId('tokens-clean');
  await expect(list.locator('li').first()).toBeVisible({ timeout: 120_000 });
  return JSON.parse((await list.getAttribute('data-tokens')) ?? 'null') as number[];
}

/** Clicks the check and returns the report as the page shows it, after checking the text agrees with it. */
async function checkAgrees(page: Page): Promise<ShownReport> {
  await page.getByTestId('check-model').click();
  const report = page.getByTestId('check-report');
  await expect(report).toBeVisible({ timeout: 180_000 });
  await expect(page.getByTestId('check-error')).toHaveCount(0);
  await expect(report).toHaveAttribute('data-ok', 'true');
  await expect(page.getByTestId('check-verdict')).toContainText('Agrees to float32 rounding');
  const shown = JSON.parse((await report.getAttribute('data-report'))!) as ShownReport;
  for (const part of ['encoder', 'logits'] as const) {
    const d = shown[part];
    expect(d.relative).toBeLessThanOrEqual(shown.tolerance);
    expect(d.maxAbs).toBeLessThanOrEqual(shown.tolerance * Math.max(1, d.scale));
    // A real comparison: values of some size, compared element by element.
    expect(d.scale).toBeGreaterThan(0.1);
    // The table shows the same numbers, each within the tolerance.
    const cells = (await page.getByTestId(`check-${part}`).locator('td').allTextContents()).map(Number);
    expect(cells[0]).toBeCloseTo(d.maxAbs, Math.max(0, -Math.floor(Math.log10(d.maxAbs || 1e-12))) + 1);
    expect(cells[2]).toBeLessThanOrEqual(shown.tolerance);
  }
  expect(shown.topTokens.ours).toEqual(shown.topTokens.onnx);
  await expect(report).toContainText(`top tokens agree at ${shown.topTokens.ours.length} of ${shown.topTokens.ours.length} positions`);
  await expect(report).toContainText(`tolerance ${shown.tolerance.toExponential(1)} relative`);
  return shown;
}

/** The greedy transcript is the argmax of the logits at each position: the report's top tokens must replay it. */
function expectTopTokensReplay(shown: ShownReport, prompt: number, clean: number[]): void {
  expect(shown.topTokens.ours.length).toBeGreaterThan(prompt);
  expect(shown.topTokens.ours.slice(prompt - 1, prompt - 1 + clean.length)).toEqual(clean);
}

test('WASM forced: the demo model agrees with its ONNX export, nothing fetched off-site', async ({ page, context }) => {
  const pageErrors = watchPageErrors(page);
  const offsite = watchOffsite(context);
  const clean = await loadDemoWithPair(page, '?backend=wasm');
  await expect(page.getByTestId('backend-badge')).toHaveAttribute('data-backend', 'wasm');
  const shown = await checkAgrees(page);
  const report = page.getByTestId('check-report');
  await expect(report).toContainText("the prepared pair's clean clip");
  await expect(report).toContainText('ours on wasm, onnxruntime-web on wasm');
  // micro model: prompt of 4 tokens (no tokenizer: <|startoftranscript|><|en|><|transcribe|><|notimestamps|>).
  expectTopTokensReplay(shown, 4, clean);
  await page.getByTestId('model-check').screenshot({ path: `${SCREENSHOTS}/check-report-wasm.png` });
  await page.screenshot({ path: `${SCREENSHOTS}/check-page-wasm.png`, fullPage: true });
  expect(offsite).toEqual([]);
  expect(pageErrors).toEqual([]);
});

test('WebGPU (SwiftShader): our kernels agree with onnxruntime-web on wasm', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  const clean = await loadDemoWithPair(page, '?backend=webgpu');
  await expect(page.getByTestId('backend-badge')).toHaveAttribute('data-backend', 'webgpu');
  const shown = await checkAgrees(page);
  await expect(page.getByTestId('check-report')).toContainText('ours on webgpu, onnxruntime-web on wasm');
  expectTopTokensReplay(shown, 4, clean);
  expect(pageErrors).toEqual([]);
});

test('a mismatched or broken export gives one sentence, and the lab keeps working', async ({ page, context }) => {
  const pageErrors = watchPageErrors(page);
  await loadDemoWithPair(page, '?backend=wasm');
  const decoderBytes = await readFile(resolve(ONNX, 'decoder_model.onnx'));
  const encoderBytes = await readFile(resolve(ONNX, 'encoder_model.onnx'));
  const error = page.getByTestId('check-error');
  const serveAsEncoder = async (body: Buffer) => {
    await context.unrouteAll({ behavior: 'ignoreErrors' });
    await context.route('**/models/demo/onnx/encoder_model.onnx', (route) =>
      route.fulfill({ status: 200, headers: { 'content-type': 'application/octet-stream', 'cross-origin-resource-policy': 'same-origin' }, body }),
    );
  };

  // Another graph in the encoder's place (the decoder of the same export).
  await serveAsEncoder(decoderBytes);
  await page.getByTestId('check-model').click();
  await expect(error).toContainText('encoder_model.onnx has no input "input_features" (it has input_ids, encoder_hidden_states)', { timeout: 120_000 });
  await page.getByTestId('model-check').screenshot({ path: `${SCREENSHOTS}/check-mismatch.png` });

  // Bytes that are no ONNX model at all (a corrupted copy: the encoder with its middle zeroed).
  const corrupted = Buffer.from(encoderBytes);
  corrupted.fill(0, 64, encoderBytes.length - 64);
  await serveAsEncoder(corrupted);
  await page.getByTestId('check-model').click();
  await expect(error).toContainText('onnxruntime-web could not load encoder_model.onnx');
  // One sentence: no stack trace, no second line.
  const text = (await error.textContent()) ?? '';
  expect(text).not.toMatch(/\n\s*at |Error:/);
  expect(text.length).toBeLessThan(400);
  await expect(page.getByTestId('check-report')).toHaveCount(0);
  // Only the check failed: no page-wide error, the pair is still there.
  await expect(page.getByTestId('error-banner')).toHaveCount(0);
  await expect(page.getByTestId('tokens-clean').locator('li').first()).toBeVisible();

  // The lab keeps working: the right export agrees, and the experiment runs.
  await context.unrouteAll({ behavior: 'ignoreErrors' });
  await checkAgrees(page);
  await page.getByTestId('run').click();
  await expect(page.getByTestId('results')).toHaveAttribute('data-partial', 'false', { timeout: 120_000 });
  expect(pageErrors).toEqual([]);
});

test('a hub model is checked against the export the mapping names: progress, cancel, Cache Storage, another repo typed', async ({ page, context }) => {
  const pageErrors = watchPageErrors(page);
  // A stand-in hub (this machine is offline): openai/whisper-micro is the micro model, and
  // onnx-community/whisper-micro its ONNX export; any other file is a 404.
  const model = 'openai/whisper-micro';
  const exportRepo = 'onnx-community/whisper-micro';
  const hub = await standInHub(
    context,
    { [model]: { dir: MICRO_DIR, files: ['config.json', 'model.safetensors'] }, [exportRepo]: { dir: MICRO_DIR, files: ['onnx/encoder_model.onnx', 'onnx/decoder_model.onnx'] } },
    [`${exportRepo}/onnx/decoder_model.onnx`],
  );

  await page.goto('./?backend=wasm');
  await page.locator('input[name="model"][value="custom"]').check();
  await page.getByLabel('Hugging Face repo id').fill(model);
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('model-info')).toContainText(model);
  // No clean clip yet: the button says why it waits.
  await expect(page.getByTestId('check-model')).toBeDisabled();
  await expect(page.getByTestId('model-check')).toContainText('Set the clean clip first');
  await page.getByTestId('pair-bat-pat').click();
  await expect(page.getByTestId('tokens-clean').locator('li').first()).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('onnx-repo')).toHaveValue(exportRepo);

  // The decoder's download is held: progress shows, Cancel stops it quietly.
  await page.getByTestId('check-model').click();
  const progress = page.getByTestId('check-progress');
  await expect(progress).toContainText('Downloading onnx/decoder_model.onnx');
  await page.getByTestId('model-check').screenshot({ path: `${SCREENSHOTS}/check-hub-progress.png` });
  await page.getByTestId('cancel-check').click();
  await expect(progress).toHaveCount(0);
  await expect(page.getByTestId('check-error')).toHaveText(/The check was cancelled\./);
  expect(hub.held).toHaveLength(1);

  hub.hold.clear();
  await checkAgrees(page);
  await expect(page.getByTestId('check-report')).toContainText(exportRepo);
  await expect(page.getByTestId('check-report')).not.toContainText('from the browser cache');
  // Again: both files from Cache Storage, nothing more asked of the hub.
  const before = hub.served.length;
  await checkAgrees(page);
  await expect(page.getByTestId('check-report')).toContainText('export from the browser cache');
  expect(hub.served.length).toBe(before);
  const onnxServed = hub.served.filter((p) => p.includes('.onnx'));
  expect(onnxServed).toEqual([
    `/${exportRepo}/resolve/main/onnx/encoder_model.onnx`,
    `/${exportRepo}/resolve/main/onnx/decoder_model.onnx`,
    `/${exportRepo}/resolve/main/onnx/decoder_model.onnx`,
  ]);

  // Another repo, typed by hand, that has no export: one sentence saying what to do.
  await page.getByTestId('onnx-repo').fill('someone/no-export-here');
  await page.getByTestId('check-model').click();
  await expect(page.getByTestId('check-error')).toContainText('someone/no-export-here has no onnx/encoder_model.onnx (HTTP 404)');
  await expect(page.getByTestId('error-banner')).toHaveCount(0);
  expect(pageErrors).toEqual([]);
});

test('local files: a checkpoint that is not the export\'s is reported in red with the numbers over the tolerance', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./?backend=wasm');
  // The micro model with one tensor changed (every value of the encoder's final layer-norm bias doubled).
  await page.getByTestId('model-files').setInputFiles([
    { name: 'config.json', mimeType: 'application/json', buffer: await readFile(resolve(MICRO_DIR, 'config.json')) },
    { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: perturb(await readFile(resolve(MICRO_DIR, 'model.safetensors')), 'model.encoder.layer_norm.bias') },
  ]);
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('model-info')).toContainText('model.safetensors');
  await page.getByTestId('pair-bat-pat').click();
  await expect(page.getByTestId('tokens-clean').locator('li').first()).toBeVisible({ timeout: 120_000 });

  // The export's two files, picked by hand (a wrong pick first: one sentence).
  const files = page.getByTestId('onnx-files');
  await files.setInputFiles([resolve(ONNX, 'encoder_model.onnx'), resolve(MICRO_DIR, 'config.json')]);
  await page.getByTestId('check-model').click();
  await expect(page.getByTestId('check-error')).toContainText('config.json is not an .onnx file');
  await files.setInputFiles([resolve(ONNX, 'decoder_model.onnx'), resolve(ONNX, 'encoder_model.onnx')]);
  await page.getByTestId('check-model').click();
  const report = page.getByTestId('check-report');
  await expect(report).toHaveAttribute('data-ok', 'false', { timeout: 120_000 });
  await expect(page.getByTestId('check-verdict')).toContainText('Differs from encoder_model.onnx + decoder_model.onnx');
  const shown = JSON.parse((await report.getAttribute('data-report'))!) as ShownReport;
  expect(shown.encoder.relative).toBeGreaterThan(shown.tolerance);
  await expect(page.getByTestId('check-encoder').locator('td.over')).toHaveCount(1);
  const agree = shown.topTokens.ours.filter((t, i) => t === shown.topTokens.onnx[i]).length;
  await expect(report).toContainText(`top tokens agree at ${agree} of ${shown.topTokens.ours.length} positions`);
  await expect(report).toContainText('Check that the ONNX files belong to this checkpoint');
  await page.getByTestId('model-check').screenshot({ path: `${SCREENSHOTS}/check-differs.png` });
  expect(pageErrors).toEqual([]);
});

/** A copy of a safetensors file with one F16 tensor's values doubled (layout stays valid). */
function perturb(bytes: Buffer, name: string): Buffer {
  const out = Buffer.from(bytes);
  const headerLen = Number(out.readBigUInt64LE(0));
  const header = JSON.parse(out.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const t = header[name];
  expect(t.dtype).toBe('F16');
  const base = 8 + headerLen;
  // Adding 0x0400 raises an F16 exponent by one: the value doubles.
  for (let i = base + t.data_offsets[0]; i + 1 < base + t.data_offsets[1]; i += 2) out.writeUInt16LE((out.readUInt16LE(i) + 0x0400) & 0xffff, i);
  return out;
}
