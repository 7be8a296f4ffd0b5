/**
 * The lab, end to end in Debian Chromium on the random-weight demo model: record both clips
 * from a fake microphone, run the default experiment, check the chart's numbers against the
 * same lab run in Node on the audio the page recorded (taken from its share link), share,
 * open the link in a fresh context and get the same numbers; a built-in pair's one-click
 * link on a forced WASM backend; a reload that restores everything; hostile links.
 *
 * Screenshots of each step land in test-results/screenshots/lab-*.png.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, resolve } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import type { PatchResult, SweepResult } from '../../lab/sweep.ts';
import type { Settings } from '../../app/experiment.ts';
import { decodeFragment, pcmFromBase64 } from '../../app/share.ts';
import { CHROMIUM, chromiumFlags, fakeMicFlags, watchPageErrors } from './chromium.ts';
import { labInNode, repoRoot, wavPcm16, type NodeLabRun } from './node-reference.ts';

const SCREENSHOTS = resolve(repoRoot, 'test-results/screenshots');
const AUDIO = resolve(repoRoot, 'test-results/e2e-audio');
const PRESETS = resolve(repoRoot, 'app/public/presets');

/**
 * The fake microphone's file: "bat" in the first second, "pat" in the next (espeak-ng + sox).
 * Chromium restarts the file at every capture, so a short recording hears "bat" and a longer
 * one, trimmed to its second second, "pat".
 */
function makeMicWav(): string {
  mkdirSync(AUDIO, { recursive: true });
  const say = (word: string) => {
    const raw = resolve(AUDIO, `${word}.raw.wav`);
    const out = resolve(AUDIO, `${word}.1s.wav`);
    execFileSync('espeak-ng', ['-v', 'en-us', '-s', '150', '-w', raw, word]);
    // 16 kHz mono PCM16, 100 ms of silence before the word, exactly 1 s long.
    execFileSync('sox', ['-V1', raw, '-r', '16000', '-c', '1', '-b', '16', out, 'pad', '0.1', '1', 'trim', '0', '1']);
    return out;
  };
  const mic = resolve(AUDIO, 'mic.wav');
  execFileSync('sox', [say('bat'), say('pat'), mic]);
  return mic;
}

const MIC_WAV = makeMicWav();

async function loadDemoModel(page: Page): Promise<void> {
  await page.locator('input[name="model"][value="demo"]').check();
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('model-info')).toContainText('random-weight demo model');
}

async function record(page: Page, which: 'clean' | 'corrupt', seconds: number): Promise<void> {
  await page.getByTestId(`record-${which}`).click();
  const clock = page.getByTestId(`rec-seconds-${which}`);
  await expect(clock).toBeVisible();
  const elapsed = async () => parseFloat((await clock.textContent()) ?? '0');
  if (which === 'clean') {
    // Mid-word, so the level meter shows something.
    await expect.poll(elapsed, { timeout: 15_000 }).toBeGreaterThanOrEqual(0.2);
    await page.screenshot({ path: `${SCREENSHOTS}/lab-1-recording.png`, fullPage: true });
  }
  await expect.poll(elapsed, { timeout: 15_000 }).toBeGreaterThanOrEqual(seconds);
  await page.getByTestId(`stop-${which}`).click();
  await expect(page.getByTestId(`clip-${which}`)).toBeVisible();
}

async function waitForResults(page: Page): Promise<void> {
  await expect(page.getByTestId('results')).toHaveAttribute('data-partial', 'false', { timeout: 120_000 });
  for (const chart of ['encoder-heatmap', 'decoder-heatmap', 'per-layer', 'grounding', 'listen-vs-guess', 'lens', 'cross-attention', 'attribution']) {
    await expect(page.getByTestId(`chart-${chart}`)).toHaveAttribute('data-drawn', 'true');
  }
}

interface PageSweep {
  clean: number;
  corrupt: number;
  results: Pick<PatchResult, 'hook' | 'position' | 'positionEnd' | 'head' | 'value' | 'effect'>[];
}

const num = (x: number | string) => (typeof x === 'string' ? Number(x) : x);

async function pageSweep(page: Page): Promise<PageSweep> {
  return JSON.parse((await page.getByTestId('results').getAttribute('data-sweep')) ?? 'null') as PageSweep;
}

async function pageChoice(page: Page): Promise<NodeLabRun['choice']> {
  return JSON.parse((await page.getByTestId('target-summary').getAttribute('data-choice')) ?? 'null') as NodeLabRun['choice'];
}

async function chartValues<T>(page: Page, chart: string): Promise<T> {
  return JSON.parse((await page.getByTestId(`chart-${chart}`).getAttribute('data-values')) ?? 'null') as T;
}

/** Effects are normalised by LD_clean − LD_corrupt, which can be small: compare the raw metric tightly, effects relatively. */
function expectSameSweep(page: PageSweep, node: SweepResult): void {
  expect(page.results.map((r) => [r.hook, r.position, r.positionEnd, r.head])).toEqual(node.results.map((r) => [r.hook, r.position, r.positionEnd, r.head]));
  expect(num(page.clean)).toBeCloseTo(node.clean, 4);
  expect(num(page.corrupt)).toBeCloseTo(node.corrupt, 4);
  const span = Math.abs(node.clean - node.corrupt);
  page.results.forEach((r, i) => {
    expect(Math.abs(num(r.value) - node.results[i].value)).toBeLessThan(2e-4);
    expect(Math.abs(num(r.effect) - node.results[i].effect)).toBeLessThan(2e-4 / span + 1e-4);
  });
}

async function settingsOf(page: Page): Promise<Settings> {
  // The settings a run used travel in the exported JSON; the share link has them too.
  const link = await shareLink(page);
  return decodeFragment(new URL(link).hash)!.settings;
}

async function shareLink(page: Page): Promise<string> {
  await page.getByTestId('share').click();
  const url = await page.getByTestId('share-url').inputValue();
  expect(url).toMatch(/#p=[A-Za-z0-9_-]+$/);
  return url;
}

// Every test here runs with the fake microphone (a launch option: one browser for the file).
test.use({ launchOptions: { executablePath: CHROMIUM, args: [...chromiumFlags, ...fakeMicFlags(MIC_WAV)] } });

test.describe('recorded from a fake microphone', () => {
  test('record both clips, run a sweep that matches the lab in Node, share it and reopen it elsewhere', async ({ page, browser }) => {
    const pageErrors = watchPageErrors(page);
    await page.goto('./');
    await loadDemoModel(page);

    await record(page, 'clean', 0.7);
    await record(page, 'corrupt', 1.7);
    // Drop the corrupted recording's first second ("bat"): the trim control, as a person would.
    const recorded = Number(await page.getByTestId('clip-corrupt').getAttribute('data-seconds'));
    await page.getByTestId('trim-start-corrupt').fill('1.0');
    await page.getByTestId('trim-corrupt').click();
    await expect(page.getByTestId('clip-label-corrupt')).toContainText('trimmed 1.00');
    const trimmed = Number(await page.getByTestId('clip-corrupt').getAttribute('data-seconds'));
    expect(trimmed).toBeCloseTo(recorded - 1.0, 2);

    // Transcripts and the default target/foil come up by themselves.
    await expect(page.getByTestId('target-summary')).toBeVisible({ timeout: 60_000 });
    await page.screenshot({ path: `${SCREENSHOTS}/lab-2-clips-and-tokens.png`, fullPage: true });

    // One click runs the default experiment.
    await page.getByTestId('run').click();
    await expect(page.getByTestId('run-progress')).toBeVisible();
    await waitForResults(page);
    await page.screenshot({ path: `${SCREENSHOTS}/lab-3-results.png`, fullPage: true });

    // The audio the page recorded (from its share link), run through the lab in Node.
    const link = await shareLink(page);
    const preset = decodeFragment(new URL(link).hash)!;
    expect(preset.clips.clean.kind).toBe('pcm16');
    expect(preset.clips.corrupt.kind).toBe('pcm16');
    const pcm = (ref: typeof preset.clips.clean) => (ref.kind === 'pcm16' ? pcmFromBase64(ref.data) : new Int16Array());
    const node = await labInNode(pcm(preset.clips.clean), pcm(preset.clips.corrupt), preset.settings);

    expect(JSON.parse((await page.getByTestId('tokens-clean').getAttribute('data-tokens'))!)).toEqual(node.transcripts.clean);
    expect(JSON.parse((await page.getByTestId('tokens-corrupt').getAttribute('data-tokens'))!)).toEqual(node.transcripts.corrupt);
    expect(await pageChoice(page)).toEqual(node.choice);
    expect(preset.choice).toEqual(node.choice);
    const sweep = await pageSweep(page);
    expectSameSweep(sweep, node.bins);
    // Encoder bins cover the clips, not the window's padding: they end where the longer
    // recorded clip ends (node-reference.ts works that out from the clips' lengths). How long
    // the fake microphone records depends on the machine's load, so no fixed bound here.
    const lastEnd = Math.max(...sweep.results.filter((r) => r.hook.startsWith('encoder.')).map((r) => r.positionEnd ?? 0));
    expect(lastEnd).toBe(node.encoderPositions);
    const perLayer = await chartValues<{ hook: string; effect: number | string }[]>(page, 'per-layer');
    for (const r of node.layers.results) {
      const shown = perLayer.find((x) => x.hook === r.hook);
      expect(shown, r.hook).toBeTruthy();
      expect(Math.abs(num(shown!.effect) - r.effect)).toBeLessThan(2e-4 / Math.abs(node.layers.clean - node.layers.corrupt) + 1e-4);
    }
    const grounding = await chartValues<{ layers: { A: number; T: number; gc: number | string }[]; overall: { A: number; gc: number | string } }>(page, 'grounding');
    node.grounding.layers.forEach((l, i) => {
      expect(grounding.layers[i].A).toBeCloseTo(l.A, 2);
      expect(grounding.layers[i].T).toBeCloseTo(l.T, 2);
    });
    expect(grounding.overall.A).toBeCloseTo(node.grounding.overall.A, 2);

    // The exported JSON holds the same numbers as the chart.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-json').click()]);
    const exported = JSON.parse(readFileSync((await download.path())!, 'utf8')) as { bins: PageSweep; model: { randomWeights: boolean } };
    expect(exported.model.randomWeights).toBe(true);
    expect(exported.bins.results.map((r) => num(r.effect))).toEqual(sweep.results.map((r) => num(r.effect)));
    const [csv] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()]);
    expect(readFileSync((await csv.path())!, 'utf8').split('\n')[0]).toBe('sweep,hook,position,position_end,head,metric,value,effect,direction,clean,corrupt');
    await page.screenshot({ path: `${SCREENSHOTS}/lab-4-shared.png`, fullPage: true });

    // A fresh browser context (no IndexedDB, no cache) opens the link and gets the same numbers.
    const fresh = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const other = await fresh.newPage();
    const otherErrors = watchPageErrors(other);
    await other.goto(link);
    await waitForResults(other);
    expect(await pageChoice(other)).toEqual(node.choice);
    const again = await pageSweep(other);
    expect(again.results.map((r) => r.hook)).toEqual(sweep.results.map((r) => r.hook));
    again.results.forEach((r, i) => expect(Math.abs(num(r.effect) - num(sweep.results[i].effect))).toBeLessThan(1e-4));
    await other.screenshot({ path: `${SCREENSHOTS}/lab-5-opened-link.png`, fullPage: true });
    await fresh.close();
    expect(otherErrors).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});

test('WASM forced: a built-in pair is one click away as a link, and its numbers match Node on the preset audio', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./?backend=wasm');
  const badge = page.getByTestId('backend-badge');
  await expect(badge).toHaveAttribute('data-backend', 'wasm');
  await expect(page.getByTestId('backend-reason')).toContainText('forced');
  // The pair's link: demo model, both clips, default settings; opening it runs the experiment.
  await page.getByTestId('pair-link-pin-bin').click();
  await waitForResults(page);
  await expect(page.getByTestId('results')).toContainText('demo on wasm');
  await expect(page.getByText('All numbers below come from the random-weight demo model')).toBeVisible();
  await page.screenshot({ path: `${SCREENSHOTS}/lab-6-wasm-preset-link.png`, fullPage: true });

  // The page decoded the preset WAVs to exactly their stored PCM16 samples.
  const [clean, corrupt] = await Promise.all([wavPcm16(`${PRESETS}/pin-bin.clean.wav`), wavPcm16(`${PRESETS}/pin-bin.corrupt.wav`)]);
  await expect(page.getByTestId('clip-clean')).toHaveAttribute('data-samples', String(clean.length));
  const node = await labInNode(clean, corrupt, await settingsOf(page));
  expect(await pageChoice(page)).toEqual(node.choice);
  expectSameSweep(await pageSweep(page), node.bins);

  // Another foil, typed as a token id (the demo model has no tokenizer), replaces the default.
  await page.getByTestId('type-foil').fill('50257');
  await page.getByTestId('type-foil').press('Enter');
  await expect.poll(async () => (await pageChoice(page)).foil).toBe(50257);
  expect((await pageChoice(page)).target).toBe(node.choice.target);
  expect(pageErrors).toEqual([]);
});

test('reloading restores the clips, the target, the settings and the results', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  await page.goto('./');
  await loadDemoModel(page);
  await page.getByTestId('pair-ship-sip').click();
  await expect(page.getByTestId('target-summary')).toBeVisible({ timeout: 60_000 });
  // Not the defaults: a coarser bin, MLP outputs only, the noising direction.
  await page.getByTestId('bin-ms').selectOption('200');
  for (const c of ['resid_pre', 'attn_out', 'cross_attn_out']) await page.getByTestId(`component-${c}`).uncheck();
  await page.getByLabel('noise (run clean').check();
  // A run can be cancelled part-way: the page says so and keeps what finished.
  await page.getByTestId('run').click();
  await page.getByTestId('cancel-run').click();
  await expect(page.getByRole('status')).toContainText('The run was cancelled');
  await expect(page.getByTestId('results')).toHaveAttribute('data-partial', 'true');
  await expect(page.getByTestId('run')).toBeEnabled();
  await page.getByTestId('run').click();
  await waitForResults(page);
  const before = {
    sweep: await pageSweep(page),
    choice: await pageChoice(page),
    clean: await page.getByTestId('clip-clean').getAttribute('data-samples'),
    corrupt: await page.getByTestId('clip-corrupt').getAttribute('data-samples'),
  };
  expect(before.sweep.results.every((r) => r.hook.endsWith('hook_mlp_out'))).toBe(true);

  await page.reload();
  await expect(page.getByTestId('clip-label-clean')).toHaveText('ship');
  await expect(page.getByTestId('clip-label-corrupt')).toHaveText('sip');
  await expect(page.getByTestId('clip-clean')).toHaveAttribute('data-samples', before.clean!);
  await expect(page.getByTestId('clip-corrupt')).toHaveAttribute('data-samples', before.corrupt!);
  await expect(page.getByTestId('bin-ms')).toHaveValue('200');
  await expect(page.getByTestId('component-resid_pre')).not.toBeChecked();
  await expect(page.getByLabel('noise (run clean')).toBeChecked();
  // The results come back from IndexedDB at once; the model reloads and the pair is prepared again.
  await expect(page.getByTestId('results')).toHaveAttribute('data-partial', 'false');
  expect(await pageSweep(page)).toEqual(before.sweep);
  await expect(page.getByTestId('model-info')).toContainText('demo');
  // The picker shows the model that is loaded, not its default.
  await expect(page.locator('input[name="model"][value="demo"]')).toBeChecked();
  await expect(page.getByTestId('target-summary')).toBeVisible({ timeout: 60_000 });
  expect(await pageChoice(page)).toEqual(before.choice);
  await expect(page.getByTestId('chart-encoder-heatmap')).toHaveAttribute('data-drawn', 'true');
  await page.screenshot({ path: `${SCREENSHOTS}/lab-7-after-reload.png`, fullPage: true });
  expect(pageErrors).toEqual([]);
});

test('hostile links are refused with a clear message and the page keeps working', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  const banner = page.getByRole('alert');
  await page.goto('./#p=<img src=x onerror=alert(1)>');
  await expect(banner).toContainText('not base64url');
  expect(await page.locator('img[src="x"]').count()).toBe(0);
  await page.screenshot({ path: `${SCREENSHOTS}/lab-8-hostile-link.png`, fullPage: true });
  await page.goto(`./#p=${'A'.repeat(1_600_000)}`);
  await expect(banner).toContainText('Earshot accepts');
  // A deflate bomb: a few kB that would inflate to 50 MB.
  const { deflateSync } = await import('fflate');
  const bomb = Buffer.from(deflateSync(new Uint8Array(50_000_000).fill(32), { level: 9 })).toString('base64url');
  await page.goto(`./#p=${bomb}`);
  await expect(banner).toContainText('inflates to more than');
  // The page still works: a built-in pair loads, and white noise can stand in for its corrupted clip.
  await page.getByTestId('pair-bat-pat').click();
  await expect(page.getByTestId('clip-label-clean')).toHaveText('bat');
  await page.getByTestId('noise-corrupt').click();
  await expect(page.getByTestId('clip-label-corrupt')).toContainText('white noise like “bat”');
  const samples = await page.getByTestId('clip-clean').getAttribute('data-samples');
  await expect(page.getByTestId('clip-corrupt')).toHaveAttribute('data-samples', samples!);
  await expect(page.getByTestId('corruption')).toHaveValue('white-noise');
  expect(pageErrors).toEqual([]);
});

test('the built site works from a plain static file server under a sub-path', async ({ page }) => {
  // No COOP/COEP, no SPA fallback, no MIME magic beyond the extension: what any static host does.
  const dist = resolve(repoRoot, 'dist');
  const prefix = '/some/sub/path/';
  const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.json': 'application/json', '.wav': 'audio/wav' };
  const server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split(/[?#]/)[0]);
    const file = path.startsWith(prefix) ? resolve(dist, `./${path.slice(prefix.length)}`) : null;
    const target = file && existsSync(file) && statSync(file).isDirectory() ? resolve(file, 'index.html') : file;
    if (!target || !target.startsWith(dist) || !existsSync(target)) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': types[extname(target)] ?? 'application/octet-stream' }).end(readFileSync(target));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  try {
    const pageErrors = watchPageErrors(page);
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}${prefix}`;
    await page.goto(base);
    await expect(page.getByTestId('backend-badge')).toContainText('not cross-origin isolated');
    await page.getByTestId('pair-link-fan-van').click();
    await waitForResults(page);
    await expect(page.getByTestId('clip-label-clean')).toHaveText('fan');
    await page.screenshot({ path: `${SCREENSHOTS}/lab-9-static-server.png` });
    expect(pageErrors).toEqual([]);
  } finally {
    await new Promise((done) => server.close(done));
  }
});
