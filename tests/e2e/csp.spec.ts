/**
 * The Content-Security-Policy (tools/csp.ts) on the built site: `vite preview` sends it for the
 * page and for the worker scripts, the built index.html carries it as a <meta> tag and
 * dist/_headers for static hosts; the lab's flows (recording, the demo model on WASM with its
 * pthread workers and on WebGPU, an experiment whose plotly charts draw) cause no violation, in
 * the page or in any worker; and the policy blocks what it should: inline scripts, eval and
 * new Function (page and workers), requests to hosts other than this site and the hub, Blob
 * workers started by the page.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test, type Page, type Worker } from '@playwright/test';
import { DOCUMENT_CSP, ISOLATION_HEADERS, WORKER_CSP, staticHostHeaders } from '../../tools/csp.ts';
import { CHROMIUM, chromiumFlags, fakeMicFlags, watchPageErrors } from './chromium.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MICRO_DIR = resolve(repoRoot, 'tests/fixtures/micro');

// The recorder test needs a fake microphone (a launch option: one browser for the file).
test.use({ launchOptions: { executablePath: CHROMIUM, args: [...chromiumFlags, ...fakeMicFlags(resolve(MICRO_DIR, 'clean.wav'))] } });

interface CspWatch {
  /** Every violation seen so far: events in the page and the workers, and CSP console messages (page and workers). */
  violations(): Promise<string[]>;
}

/** Records `securitypolicyviolation` events in the page (from its first script) and in every worker, and CSP messages in any console. */
async function watchCsp(page: Page): Promise<CspWatch> {
  const messages: string[] = [];
  const isCsp = (text: string) => /Content[- ]Security[- ]Policy/i.test(text);
  await page.addInitScript(() => {
    const seen: string[] = [];
    (globalThis as unknown as { __csp: string[] }).__csp = seen;
    document.addEventListener('securitypolicyviolation', (e) => seen.push(`page: ${e.effectiveDirective} ${e.blockedURI} (${e.sourceFile}:${e.lineNumber})`));
  });
  const workers: Worker[] = [];
  const installInWorker = () => {
    const seen: string[] = [];
    (globalThis as unknown as { __csp: string[] }).__csp = seen;
    self.addEventListener('securitypolicyviolation', (e) => seen.push(`worker ${location.href}: ${e.effectiveDirective} ${e.blockedURI}`));
  };
  page.on('worker', (w) => {
    workers.push(w);
    w.evaluate(installInWorker).catch(() => undefined);
  });
  page.on('console', (m) => {
    if (isCsp(m.text())) messages.push(`console: ${m.text()}`);
  });
  // Playwright's console events miss what Chromium logs for a worker; the DevTools log has it.
  const cdp = await page.context().newCDPSession(page);
  cdp.on('Log.entryAdded', ({ entry }) => {
    if (isCsp(entry.text)) messages.push(`log (${entry.source}): ${entry.text}`);
  });
  await cdp.send('Log.enable');
  return {
    async violations() {
      const inPage = await page.evaluate(() => (globalThis as unknown as { __csp?: string[] }).__csp ?? []);
      const inWorkers = await Promise.all(
        workers.map((w) => w.evaluate(() => (globalThis as unknown as { __csp?: string[] }).__csp ?? []).catch(() => [] as string[])),
      );
      return [...inPage, ...inWorkers.flat(), ...messages];
    },
  };
}

async function engineWorker(page: Page): Promise<Worker> {
  await expect.poll(() => page.workers().some((w) => w.url().includes('engine.worker'))).toBe(true);
  return page.workers().find((w) => w.url().includes('engine.worker'))!;
}

async function loadDemoModel(page: Page): Promise<void> {
  await page.locator('input[name="model"][value="demo"]').check();
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('model-info')).toContainText('random-weight demo model');
}

/**
 * Runs `code` from a timer in the page or worker, not inside Playwright's evaluation: DevTools
 * lets the code it evaluates itself use eval whatever the policy says, a timer's callback not.
 */
function later(code: string): string {
  return `new Promise((done) => setTimeout(() => { try { done('ran: ' + String(${code})); } catch (e) { done('threw ' + e.name); } }))`;
}

/** Parses dist/_headers: path → header → value. */
function parseHeadersFile(text: string): Map<string, Map<string, string>> {
  const rules = new Map<string, Map<string, string>>();
  let current: Map<string, string> | null = null;
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    if (!/^\s/.test(line)) {
      current = new Map();
      rules.set(line.trim(), current);
    } else {
      const at = line.indexOf(':');
      current!.set(line.slice(0, at).trim(), line.slice(at + 1).trim());
    }
  }
  return rules;
}

test('the page and the worker scripts are served with the policy; the built index.html and dist/_headers carry it', async ({ page }) => {
  const index = await page.request.get('./');
  expect(index.headers()['content-security-policy']).toBe(DOCUMENT_CSP);
  expect(index.headers()['cross-origin-opener-policy']).toBe(ISOLATION_HEADERS['Cross-Origin-Opener-Policy']);
  expect(index.headers()['cross-origin-embedder-policy']).toBe(ISOLATION_HEADERS['Cross-Origin-Embedder-Policy']);
  // The <meta> tag, before any script (a <meta> policy governs only what follows it).
  const html = await index.text();
  const meta = html.match(/<meta http-equiv="Content-Security-Policy" content="([^"]*)"/);
  expect(meta?.[1]).toBe(DOCUMENT_CSP);
  expect(html.indexOf('http-equiv="Content-Security-Policy"')).toBeLessThan(html.indexOf('<script'));

  await page.goto('./');
  const worker = await engineWorker(page);
  const script = await page.request.get(worker.url());
  expect(script.ok()).toBe(true);
  expect(script.headers()['content-security-policy']).toBe(WORKER_CSP);

  // What static hosts get: the page's policy on the page, the workers' on /assets/*, no path with both.
  const file = readFileSync(resolve(repoRoot, 'dist/_headers'), 'utf8');
  expect(file).toBe(staticHostHeaders());
  const rules = parseHeadersFile(file);
  expect(rules.get('/*')?.get('Cross-Origin-Embedder-Policy')).toBe('require-corp');
  expect(rules.get('/*')?.get('Cross-Origin-Opener-Policy')).toBe('same-origin');
  expect(rules.get('/*')?.has('Content-Security-Policy')).toBe(false);
  expect(rules.get('/')?.get('Content-Security-Policy')).toBe(DOCUMENT_CSP);
  expect(rules.get('/index.html')?.get('Content-Security-Policy')).toBe(DOCUMENT_CSP);
  expect(rules.get('/assets/*')?.get('Content-Security-Policy')).toBe(WORKER_CSP);
  expect(worker.url()).toContain('/assets/');

  // No 'unsafe-eval' or 'unsafe-inline' for scripts, in either policy.
  for (const policy of [DOCUMENT_CSP, WORKER_CSP]) {
    const scriptSrc = policy.split('; ').find((d) => d.startsWith('script-src '))!;
    expect(scriptSrc).not.toMatch(/'unsafe-eval'|'unsafe-inline'|data:|\*/);
  }
});

test('WASM: a built-in pair runs in threads, all its charts draw and the model check runs, with no violation anywhere', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  const csp = await watchCsp(page);
  await page.goto('./?backend=wasm');
  await expect(page.getByTestId('backend-badge')).toHaveAttribute('data-backend', 'wasm');
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  await page.getByTestId('pair-link-pin-bin').click();
  await expect(page.getByTestId('results')).toHaveAttribute('data-partial', 'false', { timeout: 120_000 });
  for (const chart of ['encoder-heatmap', 'decoder-heatmap', 'per-layer', 'grounding', 'listen-vs-guess', 'lens', 'cross-attention', 'attribution']) {
    await expect(page.getByTestId(`chart-${chart}`)).toHaveAttribute('data-drawn', 'true');
  }
  // The mode bar's image exports (plotly renders them through data: and blob: images).
  const chart = page.getByTestId('chart-encoder-heatmap');
  await chart.hover();
  for (const [title, type] of [['Download plot as a PNG', 'png'], ['Download plot as SVG', 'svg']]) {
    const [download] = await Promise.all([page.waitForEvent('download'), chart.locator(`.modebar-btn[data-title="${title}"]`).click()]);
    expect(download.suggestedFilename()).toBe(`earshot-encoder-heatmap.${type}`);
    expect(readFileSync((await download.path())!).length).toBeGreaterThan(1000);
  }
  // "Check this model": onnxruntime-web's own wasm build, under the same policy.
  await page.getByTestId('check-model').click();
  await expect(page.getByTestId('check-report')).toHaveAttribute('data-ok', 'true', { timeout: 180_000 });
  expect(await csp.violations()).toEqual([]);
  expect(pageErrors).toEqual([]);
  // The threaded WASM build ran: its pthread workers are Blob URLs (why the worker policy has blob:) ...
  const pthreads = page.workers().filter((w) => w.url().startsWith('blob:'));
  expect(pthreads.length).toBeGreaterThan(0);
  // ... and they inherit the engine worker's policy: no eval in them either, and the watch sees it.
  expect(await pthreads[0].evaluate(later("eval('1')"))).toBe('threw EvalError');
  expect((await csp.violations()).some((v) => v.startsWith(`worker ${pthreads[0].url()}: script-src eval`))).toBe(true);
});

test('WebGPU: the demo model loads and transcribes a clip with no violation', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  const csp = await watchCsp(page);
  await page.goto('./?backend=webgpu');
  await expect(page.getByTestId('backend-badge')).toHaveAttribute('data-backend', 'webgpu');
  await loadDemoModel(page);
  // Transcripts come once both clips are set.
  await page.getByTestId('file-clean').setInputFiles(resolve(MICRO_DIR, 'clean.wav'));
  await page.getByTestId('file-corrupt').setInputFiles(resolve(MICRO_DIR, 'corrupt.wav'));
  await expect(page.getByTestId('tokens-clean').locator('li').first()).toBeVisible({ timeout: 180_000 });
  expect(await csp.violations()).toEqual([]);
  expect(pageErrors).toEqual([]);
});

test('recording: the microphone worklet loads and a clip plays back, with no violation', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  const csp = await watchCsp(page);
  await page.goto('./');
  await page.getByTestId('record-clean').click();
  const clock = page.getByTestId('rec-seconds-clean');
  await expect.poll(async () => parseFloat((await clock.textContent()) ?? '0'), { timeout: 15_000 }).toBeGreaterThanOrEqual(0.3);
  await page.getByTestId('stop-clean').click();
  await expect(page.getByTestId('clip-clean')).toBeVisible();
  // The clip's player (a Blob URL: media-src blob:) can load it.
  const audio = page.getByTestId('clip-clean').locator('audio');
  await expect.poll(() => audio.evaluate((a: HTMLAudioElement) => a.readyState)).toBeGreaterThanOrEqual(1);
  expect(await csp.violations()).toEqual([]);
  expect(pageErrors).toEqual([]);
});

test.describe('what the policy blocks', () => {
  let other: Server;
  let otherUrl: string;
  let hits = 0;

  // Another origin that would answer a CORS request (and satisfies COEP): only the policy stops a fetch to it.
  test.beforeAll(async () => {
    other = createServer((_req, res) => {
      hits++;
      res.writeHead(200, { 'access-control-allow-origin': '*', 'content-type': 'text/plain' }).end('reachable');
    });
    await new Promise<void>((done) => other.listen(0, '127.0.0.1', done));
    otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}/leak`;
  });
  test.afterAll(async () => {
    await new Promise((done) => other.close(done));
  });

  test('inline scripts, eval, new Function, Blob workers and other hosts are refused; this site is not', async ({ page }) => {
    const csp = await watchCsp(page);
    await page.goto('./');
    const worker = await engineWorker(page);

    // An inline script put into the DOM does not run.
    const ran = await page.evaluate(() => {
      const w = window as unknown as { __inlineRan: boolean };
      w.__inlineRan = false;
      const s = document.createElement('script');
      s.textContent = 'window.__inlineRan = true';
      document.body.append(s);
      return new Promise((done) => setTimeout(() => done(w.__inlineRan), 100));
    });
    expect(ran).toBe(false);
    // Nor does an event-handler attribute.
    await page.evaluate(() => document.body.insertAdjacentHTML('beforeend', '<img id="csp-probe" src="data:," onerror="window.__handlerRan = true">'));
    await page.waitForTimeout(100);
    expect(await page.evaluate(() => (window as unknown as { __handlerRan?: boolean }).__handlerRan ?? false)).toBe(false);

    // No string becomes code, in the page or in the engine worker.
    expect(await page.evaluate(later("eval('1')"))).toBe('threw EvalError');
    expect(await page.evaluate(later("new Function('return 1')()"))).toBe('threw EvalError');
    expect(await worker.evaluate(later("eval('1')"))).toBe('threw EvalError');
    expect(await worker.evaluate(later("new Function('return 1')()"))).toBe('threw EvalError');

    // The page may not start a worker from a Blob (only the engine worker's own threads may).
    const blobWorker = await page.evaluate(
      () =>
        new Promise<string>((done) => {
          try {
            const w = new Worker(URL.createObjectURL(new Blob(['postMessage("ran")'], { type: 'text/javascript' })));
            w.onmessage = () => done('ran');
            w.onerror = () => done('refused');
            setTimeout(() => done('no answer'), 10_000);
          } catch (e) {
            done(`threw ${(e as Error).name}`);
          }
        }),
    );
    expect(blobWorker).toMatch(/^(refused|threw SecurityError)$/);

    // Another host: refused before any request leaves, from the page and from the worker.
    const get = async (u: string) => {
      try {
        return await (await fetch(u, { mode: 'cors' })).text();
      } catch (e) {
        return `failed: ${(e as Error).name}`;
      }
    };
    const fetchFrom = (target: Page | Worker, url: string): Promise<string> => ('goto' in target ? target.evaluate(get, url) : target.evaluate(get, url));
    expect(await fetchFrom(page, otherUrl)).toBe('failed: TypeError');
    expect(await fetchFrom(worker, otherUrl)).toBe('failed: TypeError');
    expect(hits).toBe(0);
    // This site is reachable.
    expect(await fetchFrom(page, new URL('./presets/pin-bin.clean.wav', page.url()).href)).toContain('RIFF');
    expect(await fetchFrom(worker, new URL('./models/demo/config.json', page.url()).href)).toContain('d_model');

    // The hub and the CDN hosts it redirects downloads to are allowed (a stand-in answers for
    // them: this machine is offline); look-alike hosts are not.
    const served: string[] = [];
    await page.context().route(/^https:\/\//, async (route) => {
      served.push(new URL(route.request().url()).host);
      await route.fulfill({ status: 200, headers: { 'access-control-allow-origin': '*', 'content-type': 'text/plain' }, body: 'hub' });
    });
    const hubHosts = ['huggingface.co', 'cdn-lfs.huggingface.co', 'cdn-lfs-us-1.huggingface.co', 'cdn-lfs-us-1.hf.co', 'cas-bridge.xethub.hf.co', 'us.aws.cdn.hf.co', 'us.gcp.cdn.hf.co'];
    for (const host of hubHosts) expect(await fetchFrom(worker, `https://${host}/openai/whisper-tiny/resolve/main/config.json`), host).toBe('hub');
    for (const host of ['huggingface.co.example.net', 'hf.co', 'evilhuggingface.co', 'hf.co.example.net']) {
      expect(await fetchFrom(worker, `https://${host}/x`), host).toBe('failed: TypeError');
    }
    expect(served).toEqual(hubHosts);

    const seen = await csp.violations();
    const directive = (d: string, where: 'page' | 'worker') => seen.filter((v) => v.startsWith(where) && v.includes(`: ${d} `)).length;
    expect(directive('script-src-elem', 'page')).toBeGreaterThan(0);
    expect(directive('script-src-attr', 'page')).toBeGreaterThan(0);
    expect(directive('script-src', 'page')).toBeGreaterThan(0);
    expect(directive('script-src', 'worker')).toBeGreaterThan(0);
    expect(directive('worker-src', 'page')).toBeGreaterThan(0);
    expect(seen.filter((v) => v.startsWith('page') && v.includes(`connect-src ${otherUrl}`)).length).toBeGreaterThan(0);
    expect(seen.filter((v) => v.startsWith('worker') && v.includes(`connect-src ${otherUrl}`)).length).toBeGreaterThan(0);
  });
});

test('a host whose own policy blocks the engine’s Blob-URL threads: the page says why the engine does not start', async ({ page }) => {
  const pageErrors = watchPageErrors(page);
  // A stricter host: the worker scripts get the page's policy (no blob:), which hangs tfjs' threaded WASM start.
  await page.route(/\/assets\/engine\.worker[^/]*\.js$/, async (route) => {
    const response = await route.fetch();
    await route.fulfill({ response, headers: { ...response.headers(), 'content-security-policy': DOCUMENT_CSP } });
  });
  await page.goto('./?backend=wasm');
  await expect(page.getByTestId('backend-badge')).toContainText('no engine', { timeout: 45_000 });
  await expect(page.getByTestId('backend-badge')).toContainText("must allow WebAssembly ('wasm-unsafe-eval') and blob: workers");
  expect(pageErrors).toEqual([]);
});
