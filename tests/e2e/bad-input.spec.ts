/**
 * Bad input in the page, end to end in Chromium: every hostile checkpoint of
 * tests/util/hostile-checkpoints.ts through the local-files input, enormous files, audio that
 * will not decode, clips that are silent, clipped, hold NaN/Inf or run past the model's
 * window, and script in a share link's labels. Each gets one readable sentence (or a note
 * next to the clip), nothing runs that should not, and what the person had keeps working.
 *
 * Screenshots land in test-results/screenshots/bad-input-*.png.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { DEFAULT_SETTINGS } from '../../app/experiment.ts';
import { decodeFragment, encodePreset, pcmFromBase64, type Preset } from '../../app/share.ts';
import { hostileCheckpoints, microFiles } from '../util/hostile-checkpoints.ts';
import { watchPageErrors } from './chromium.ts';
import { repoRoot, wavPcm16 } from './node-reference.ts';

const SCREENSHOTS = resolve(repoRoot, 'test-results/screenshots');
const AUDIO = resolve(repoRoot, 'test-results/e2e-audio/bad-input');
const PRESETS = resolve(repoRoot, 'app/public/presets');
const BAT = `${PRESETS}/bat-pat.clean.wav`;
const PAT = `${PRESETS}/bat-pat.corrupt.wav`;

mkdirSync(AUDIO, { recursive: true });
mkdirSync(SCREENSHOTS, { recursive: true });
const sox = (...args: string[]) => execFileSync('sox', ['-V1', ...args]);

/** A 16 kHz mono WAV of raw float32 samples (NaN and ±Inf allowed, unlike encodeWav). */
function floatWav(samples: Float32Array): Buffer {
  const data = samples.length * 4;
  const out = Buffer.alloc(44 + data);
  out.write('RIFF', 0, 'ascii');
  out.writeUInt32LE(36 + data, 4);
  out.write('WAVEfmt ', 8, 'ascii');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(3, 20); // IEEE float
  out.writeUInt16LE(1, 22);
  out.writeUInt32LE(16000, 24);
  out.writeUInt32LE(64000, 28);
  out.writeUInt16LE(4, 32);
  out.writeUInt16LE(32, 34);
  out.write('data', 36, 'ascii');
  out.writeUInt32LE(data, 40);
  samples.forEach((x, i) => out.writeFloatLE(x, 44 + 4 * i));
  return out;
}

/** The banner's text without the dismiss button, checked to be one readable line. */
async function bannerText(page: Page): Promise<string> {
  const text = ((await page.getByTestId('error-banner').locator('.text').textContent()) ?? '').trim();
  expect(text).not.toMatch(/\n|\bat \S+ \(|\.ts:\d+|\.js:\d+|Error:/);
  return text;
}

async function loadDemoModel(page: Page): Promise<void> {
  await page.locator('input[name="model"][value="demo"]').check();
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('model-info')).toContainText('random-weight demo model');
}

async function tokensOf(page: Page, which: 'clean' | 'corrupt'): Promise<number[]> {
  const list = page.getByTestId(`tokens-${which}`);
  await expect(list.locator('li').first()).toBeVisible({ timeout: 60_000 });
  return JSON.parse((await list.getAttribute('data-tokens')) ?? 'null') as number[];
}

/** A file made inside the page: some text, or `hugeBlocks` references to one 16 MB block (nothing more is allocated). */
interface InPageFile {
  name: string;
  text?: string;
  hugeBlocks?: number;
}

/** Puts files made inside the page into a file input, as a person choosing them would. */
async function chooseInPageFiles(page: Page, testid: string, files: InPageFile[]): Promise<void> {
  await page.getByTestId(testid).evaluate((input: HTMLInputElement, specs: InPageFile[]) => {
    const block = new Blob([new Uint8Array(16 * 1024 ** 2)]);
    const dt = new DataTransfer();
    for (const f of specs) dt.items.add(new File(f.hugeBlocks ? Array(f.hugeBlocks).fill(block) : [f.text ?? ''], f.name));
    input.files = dt.files;
    input.dispatchEvent(new Event('change', { bubbles: true }));
  }, files);
}

test('every hostile checkpoint gets its one sentence, and the demo model and clips keep working', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./');
  await loadDemoModel(page);
  await page.getByTestId('pair-bat-pat').click();
  await expect(page.getByTestId('target-summary')).toBeVisible({ timeout: 60_000 });
  const before = { clean: await tokensOf(page, 'clean'), corrupt: await tokensOf(page, 'corrupt') };

  const cases = hostileCheckpoints();
  const banner = page.getByTestId('error-banner');
  for (const c of cases) {
    const files = [
      { name: 'config.json', mimeType: 'application/json', buffer: Buffer.from(c.config) },
      { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from(c.safetensors) },
      ...(c.tokenizer ? [{ name: 'tokenizer.json', mimeType: 'application/json', buffer: Buffer.from(c.tokenizer) }] : []),
    ];
    await page.getByTestId('model-files').setInputFiles(files);
    await page.getByTestId('load-model').click();
    await expect(banner, c.name).toContainText(c.message);
    expect(await bannerText(page), c.name).toBe(`${c.message} (demo is still loaded.)`);
    await expect(page.getByTestId('model-info')).toContainText('demo');
    if (c.name === 'config.json with another d_model') await page.screenshot({ path: `${SCREENSHOTS}/bad-input-1-mismatched-config.png`, fullPage: true });
    await banner.getByRole('button', { name: 'Dismiss' }).click();
  }

  // A config.json that is not JSON at all.
  await page.getByTestId('model-files').setInputFiles([
    { name: 'config.json', mimeType: 'application/json', buffer: Buffer.from('{"d_model": 384,') },
    { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from(microFiles().safetensors) },
  ]);
  await page.getByTestId('load-model').click();
  await expect(banner).toContainText('config.json (config.json + model.safetensors) is not valid JSON');
  expect(await bannerText(page)).toMatch(/^config\.json \(config\.json \+ model\.safetensors\) is not valid JSON \(.+\); pick the file from the model's folder\. \(demo is still loaded\.\)$/);

  // Still the demo model, still the clips, and it still transcribes them the same way.
  await expect(page.getByTestId('clip-label-clean')).toHaveText('bat');
  await expect(page.getByTestId('clip-label-corrupt')).toHaveText('pat');
  await page.getByTestId('pair-bat-pat').click();
  await expect(banner).toHaveCount(0);
  expect({ clean: await tokensOf(page, 'clean'), corrupt: await tokensOf(page, 'corrupt') }).toEqual(before);
  expect(pageErrors).toEqual([]);
});

test('enormous files are refused by their size before a byte is read', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./');
  await page.getByTestId('pair-bat-pat').click();
  await expect(page.getByTestId('clip-label-clean')).toHaveText('bat');
  // Any read of a file over 256 MB would be recorded here.
  await page.evaluate(() => {
    const w = window as unknown as { __bigReads: number };
    w.__bigReads = 0;
    for (const method of ['arrayBuffer', 'text', 'stream', 'bytes'] as const) {
      const original = (Blob.prototype as unknown as Record<string, (...a: unknown[]) => unknown>)[method];
      if (!original) continue;
      (Blob.prototype as unknown as Record<string, unknown>)[method] = function (this: Blob, ...args: unknown[]) {
        if (this.size > 256 * 1024 ** 2) w.__bigReads++;
        return original.apply(this, args);
      };
    }
  });
  // 5 GB made of one 16 MB block referenced 320 times: the browser holds 16 MB, not 5 GB.
  await chooseInPageFiles(page, 'file-clean', [{ name: 'huge.wav', hugeBlocks: 320 }]);
  const banner = page.getByTestId('error-banner');
  await expect(banner).toBeVisible();
  expect(await bannerText(page)).toBe('huge.wav is 5.0 GB, more than the 256 MB Earshot reads; cut out the part you want first (the model hears 30 s at a time).');
  await expect(page.getByTestId('clip-label-clean')).toHaveText('bat');

  await chooseInPageFiles(page, 'model-files', [{ name: 'config.json', text: microFiles().config }, { name: 'model.safetensors', hugeBlocks: 320 }]);
  await page.getByTestId('load-model').click();
  await expect(banner).toContainText('model.safetensors is 5.0 GB');
  expect(await bannerText(page)).toBe('model.safetensors is 5.0 GB, more than the 4.0 GB Earshot reads; choose a smaller Whisper checkpoint (tiny, base or small), which a browser tab can hold.');
  await page.screenshot({ path: `${SCREENSHOTS}/bad-input-2-huge-file.png`, fullPage: true });
  expect(await page.evaluate(() => (window as unknown as { __bigReads: number }).__bigReads)).toBe(0);
  expect(pageErrors).toEqual([]);
});

test('audio that will not decode gets a banner, and the clips stay', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./');
  await page.getByTestId('pair-bat-pat').click();
  await expect(page.getByTestId('clip-label-clean')).toHaveText('bat');
  const samples = await page.getByTestId('clip-clean').getAttribute('data-samples');

  const bat = readFileSync(BAT);
  // Noise bytes below 0xFF: no MP3/AAC frame sync (0xFFE/0xFFF) can appear by chance.
  let seed = 7;
  const noise = Buffer.from(Array.from({ length: 20_000 }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) % 255));
  const cases: { name: string; buffer: Buffer; message: string }[] = [
    { name: 'noise.wav', buffer: noise, message: 'noise.wav could not be decoded as audio; use a WAV, MP3, OGG or FLAC file.' },
    { name: 'notes.wav', buffer: Buffer.from('Meeting notes: remember to record the minimal pair.\n'), message: 'notes.wav could not be decoded as audio; use a WAV, MP3, OGG or FLAC file.' },
    { name: 'cut.wav', buffer: bat.subarray(0, 44 + 4000), message: `cut.wav is truncated: it announces ${bat.length - 44} bytes of audio but holds 4000; re-export or re-download it.` },
    { name: 'header-only.wav', buffer: bat.subarray(0, 30), message: 'header-only.wav could not be decoded as audio; use a WAV, MP3, OGG or FLAC file.' },
    { name: 'empty.wav', buffer: Buffer.alloc(0), message: 'empty.wav is empty; choose an audio file with sound in it.' },
  ];
  for (const c of cases) {
    await page.getByTestId('file-clean').setInputFiles({ name: c.name, mimeType: 'audio/wav', buffer: c.buffer });
    await expect(page.getByTestId('error-banner'), c.name).toContainText(c.message);
    expect(await bannerText(page)).toBe(c.message);
    await expect(page.getByTestId('clip-label-clean')).toHaveText('bat');
    await expect(page.getByTestId('clip-clean')).toHaveAttribute('data-samples', samples!);
    await page.getByTestId('error-banner').getByRole('button', { name: 'Dismiss' }).click();
  }
  expect(pageErrors).toEqual([]);
});

test('silence, clipping, NaN/Inf and a clip past the window are shown next to the clip; one click keeps a window and the lab runs', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  const silent = resolve(AUDIO, 'silent.wav');
  const loud = resolve(AUDIO, 'loud.wav');
  const long = resolve(AUDIO, 'long.wav');
  const nan = resolve(AUDIO, 'nan.wav');
  sox('-D', '-n', '-r', '16000', '-c', '1', '-b', '16', silent, 'trim', '0', '1'); // -D: no dither, true digital silence
  sox(BAT, loud, 'gain', '40');
  // 40 s: "bat" once a second.
  sox(BAT, long, 'pad', '0', String(1 - 7499 / 16000), 'repeat', '39');
  const tone = Float32Array.from({ length: 16000 }, (_, i) => 0.3 * Math.sin(i / 9));
  tone[160] = NaN;
  tone[200] = Infinity;
  tone[300] = -Infinity;
  writeFileSync(nan, floatWav(tone));

  await page.goto('./');
  await loadDemoModel(page);
  const warnings = page.getByTestId('clip-warning-clean');
  const choose = (path: string) => page.getByTestId('file-clean').setInputFiles(path);

  await choose(silent);
  await expect(warnings).toHaveText('This clip is silent (peak −∞ dBFS): the model will hear nothing in it.');
  await choose(loud);
  await expect(page.getByTestId('clip-label-clean')).toHaveText('loud.wav');
  await expect(warnings).toHaveText(/^This clip is clipped \(\d+ samples at full scale\): record it a little quieter\.$/);
  await choose(nan);
  await expect(page.getByTestId('clip-label-clean')).toHaveText('nan.wav');
  await expect(warnings).toHaveText('nan.wav had 1 NaN and 2 infinite samples (first at 0.010 s); NaN set to 0, infinite set to full scale. Re-export the audio if that matters.');
  await expect(page.getByTestId('error-banner')).toHaveCount(0);

  // 40 s against the demo model's 2 s window (max_source_positions 100).
  await choose(long);
  const tooLong = page.getByTestId('clip-too-long-clean');
  await expect(tooLong).toContainText('This clip is 40.0 s; the model hears 2 s at a time, so only 0–2 s is used. Keep which part?');
  await expect(page.getByTestId('use-window-clean')).toHaveText('Use 0–2 s');
  await expect(warnings).toHaveCount(0);
  await page.screenshot({ path: `${SCREENSHOTS}/bad-input-3-too-long.png`, fullPage: true });
  await page.getByTestId('window-start-clean').fill('4');
  await page.getByTestId('use-window-from-clean').click();
  await expect(page.getByTestId('clip-label-clean')).toHaveText('long.wav (trimmed 4.00–6.00 s)');
  await expect(page.getByTestId('clip-clean')).toHaveAttribute('data-samples', '32000');
  await expect(tooLong).toHaveCount(0);

  await page.getByTestId('file-corrupt').setInputFiles(PAT);
  await expect(page.getByTestId('target-summary')).toBeVisible({ timeout: 60_000 });
  await page.getByTestId('run').click();
  await expect(page.getByTestId('results')).toHaveAttribute('data-partial', 'false', { timeout: 180_000 });
  await expect(page.getByTestId('chart-encoder-heatmap')).toHaveAttribute('data-drawn', 'true');

  // The trimmed window is what is stored and shared: 4–6 s of the file, sample for sample.
  await page.getByTestId('share').click();
  const preset = decodeFragment(new URL(await page.getByTestId('share-url').inputValue()).hash)!;
  expect(preset.clips.clean.kind).toBe('pcm16');
  const shared = preset.clips.clean.kind === 'pcm16' ? pcmFromBase64(preset.clips.clean.data) : null;
  expect(shared).toEqual((await wavPcm16(long)).slice(4 * 16000, 6 * 16000));
  await page.reload();
  await expect(page.getByTestId('clip-label-clean')).toHaveText('long.wav (trimmed 4.00–6.00 s)');
  await expect(page.getByTestId('clip-clean')).toHaveAttribute('data-samples', '32000');
  expect(pageErrors).toEqual([]);
});

test('script in a share link’s clip labels is shown as text and never runs', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  const toBase64 = (pcm: Int16Array) => Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength).toString('base64');
  const labels = { clean: '<img src=x onerror="window.__pwned=1">', corrupt: '<script>window.__pwned=2</script>"><svg onload=window.__pwned=3>' };
  const preset: Preset = {
    v: 1,
    model: { kind: 'demo' },
    clips: {
      clean: { kind: 'pcm16', rate: 16000, label: labels.clean, data: toBase64(await wavPcm16(BAT)) },
      corrupt: { kind: 'pcm16', rate: 16000, label: labels.corrupt, data: toBase64(await wavPcm16(PAT)) },
    },
    choice: null,
    settings: DEFAULT_SETTINGS,
  };
  await page.goto(`./#p=${encodePreset(preset)}`);
  await expect(page.getByTestId('clip-label-clean')).toHaveText(labels.clean);
  await expect(page.getByTestId('clip-label-corrupt')).toHaveText(labels.corrupt);
  // Opening a link runs its experiment; the results repeat the labels.
  await expect(page.getByTestId('results')).toHaveAttribute('data-partial', 'false', { timeout: 180_000 });
  await expect(page.getByTestId('results')).toContainText(labels.clean);
  await expect(page.getByTestId('results')).toContainText(labels.corrupt);
  await page.screenshot({ path: `${SCREENSHOTS}/bad-input-4-script-labels.png`, fullPage: true });
  expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  expect(await page.locator('img[src="x"], svg[onload], main script').count()).toBe(0);
  expect(pageErrors).toEqual([]);
});
