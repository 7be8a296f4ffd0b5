/**
 * `npm run bench`: Earshot's engine against plain tfjs ops and onnxruntime on one
 * whisper-tiny-shaped random model (30 s window), in Node and in headless Chromium, in one run.
 *
 *   npm run bench                      # everything (~15–20 min here: SwiftShader is slow)
 *   npm run bench -- --quick           # fewer repetitions, no tfjs sweep on WebGPU
 *   npm run bench -- --no-browser      # Node only (wasm, onnxruntime-node, PyTorch)
 *   npm run bench -- --no-node         # Chromium only
 *
 * The model (tools/reference/make_fixtures.py) and its ONNX export (make_onnx.py) are made
 * once into $EARSHOT_BENCH_DIR (default: <tmp>/earshot-bench-tiny) with the Python venv.
 * Results: bench-results/bench-<date>.json, the table on stdout, and the tables in
 * docs/benchmarks.md between the `bench:begin`/`bench:end` markers.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../models/backend.ts';
import { samplesToMel } from '../../models/clip.ts';
import { loadAudio16k } from '../../models/audio.ts';
import { loadCheckpoint } from '../../models/load.ts';
import type { PagePlan, PageResult } from './page.ts';
import { formatTables, type BenchReport } from './report.ts';
import { benchDecoder, benchEncoder, benchMatmulPeak, benchOrtDecoder, benchOrtEncoder, benchSweep, benchTokens, decoderFlops, encoderFlops, type Measurement, type OrtLike } from './workloads.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
/** `--backends=wasm` (or webgpu): Chromium backends to run (default both). */
const backendsArg = process.argv.find((a) => a.startsWith('--backends='))?.slice('--backends='.length).split(',') as ('webgpu' | 'wasm')[] | undefined;
const modelDir = resolve(process.env.EARSHOT_BENCH_DIR ?? join(tmpdir(), 'earshot-bench-tiny'));
const python = join(repoRoot, '.venv/bin/python');
const log = (m: string) => console.error(m);

const TINY = ['--d-model', '384', '--encoder-layers', '4', '--decoder-layers', '4', '--encoder-heads', '6', '--decoder-heads', '6', '--ffn', '1536', '--max-source-positions', '1500', '--max-target-positions', '448', '--dtype', 'f32', '--no-goldens'];

function ensureModel(): void {
  if (existsSync(join(modelDir, 'onnx/decoder_model.onnx'))) return;
  if (!existsSync(python)) throw new Error(`The benchmark model is made with the Python venv (${python}); see tools/reference/README.md for its setup.`);
  log(`making the whisper-tiny-shaped random model in ${modelDir} …`);
  execFileSync(python, ['tools/reference/make_fixtures.py', '--out', modelDir, ...TINY], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync(python, ['tools/reference/make_onnx.py', '--dir', modelDir], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] });
}

async function nodeSection(report: BenchReport): Promise<void> {
  const reps = quick ? 2 : 5;
  const info = await initBackend('wasm');
  tf.env().set('PROD', true);
  report.info['wasm (Node)'] = info.reason ?? 'wasm';
  const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
  const loaded = await loadCheckpoint({ config, safetensors: new Uint8Array(readFileSync(join(modelDir, 'model.safetensors'))) });
  const c = loaded.config;
  const mel = samplesToMel(loadAudio16k(new Uint8Array(readFileSync(join(modelDir, 'clean.wav')))), c).mel;
  const corruptMel = samplesToMel(loadAudio16k(new Uint8Array(readFileSync(join(modelDir, 'corrupt.wav')))), c).mel;
  const tokens = benchTokens(c);
  const e = { model: loaded.model, mel, corruptMel, tokens };
  const backend = 'wasm (Node)';
  const push = (engine: string, m: Omit<Measurement, 'engine' | 'backend'>) => {
    report.measurements.push({ ...m, engine, backend });
    log(`${backend} ${engine} ${m.workload}: ${m.ms.toFixed(0)} ms`);
  };

  report.peaks.push({ backend, ...(await benchMatmulPeak(1, reps)) });
  // On wasm "our kernels" is the custom plan of tfjs ops (models/ops.ts: per-head attention, unembedding).
  for (const path of ['custom', 'tfjs'] as const) {
    const engine = path === 'custom' ? 'earshot (our kernels)' : 'earshot (tfjs ops)';
    push(engine, await benchEncoder(e, path, 1, reps, log));
    push(engine, await benchDecoder(e, path, 1, reps, log));
    push(engine, await benchSweep(e, path, 1, quick ? 1 : 3, log));
  }
  loaded.model.dispose();

  const encOnnx = readFileSync(join(modelDir, 'onnx/encoder_model.onnx'));
  const decOnnx = readFileSync(join(modelDir, 'onnx/decoder_model.onnx'));
  const hiddenFor = async (ort: OrtLike, opts: Record<string, unknown>) => {
    const s = await ort.InferenceSession.create(encOnnx, opts);
    const h = (await s.run({ input_features: new ort.Tensor('float32', mel, [1, c.numMelBins, 2 * c.maxSourcePositions]) })).last_hidden_state.data as Float32Array;
    await s.release?.();
    return h;
  };

  // onnxruntime-web's wasm build in Node, one thread like tfjs-wasm here.
  const ortWeb = (await import('onnxruntime-web')) as unknown as OrtLike & { env: { wasm: { numThreads: number } } };
  ortWeb.env.wasm.numThreads = 1;
  const webOpts = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };
  const encWeb = await ortWeb.InferenceSession.create(encOnnx, webOpts);
  push('onnxruntime-web (wasm, 1 thread)', await benchOrtEncoder(ortWeb, encWeb, c, mel, 1, reps, log));
  await encWeb.release?.();
  const hidden = await hiddenFor(ortWeb, webOpts);
  const decWeb = await ortWeb.InferenceSession.create(decOnnx, webOpts);
  push('onnxruntime-web (wasm, 1 thread)', await benchOrtDecoder(ortWeb, decWeb, c, hidden, tokens, 1, reps, log));
  await decWeb.release?.();

  // Outside anchors on this machine: onnxruntime-node (native CPU EP) and PyTorch.
  const ortNode = (await import('onnxruntime-node')) as unknown as OrtLike;
  for (const threads of [1, 2]) {
    const opts = { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
    const enc = await ortNode.InferenceSession.create(encOnnx, opts);
    report.measurements.push({ ...(await benchOrtEncoder(ortNode, enc, c, mel, 1, reps, log)), engine: `onnxruntime-node (cpu, ${threads} thread${threads > 1 ? 's' : ''})`, backend: 'native CPU (anchor)' });
    await enc.release?.();
    const dec = await ortNode.InferenceSession.create(decOnnx, opts);
    report.measurements.push({ ...(await benchOrtDecoder(ortNode, dec, c, hidden, tokens, 1, reps, log)), engine: `onnxruntime-node (cpu, ${threads} thread${threads > 1 ? 's' : ''})`, backend: 'native CPU (anchor)' });
    await dec.release?.();
  }
  if (existsSync(python)) {
    const melFile = join(modelDir, 'bench-mel.f32');
    writeFileSync(melFile, Buffer.from(mel.buffer, mel.byteOffset, mel.byteLength));
    const r = spawnSync(python, ['tools/bench/torch_bench.py', '--dir', modelDir, '--mel', melFile, '--tokens', tokens.join(','), '--reps', String(reps)], { cwd: repoRoot, encoding: 'utf8' });
    if (r.status === 0) {
      const t = JSON.parse(r.stdout) as { torch: string; results: { threads: number; encoder: { ms: number; runs: number[] }; decoder: { ms: number; runs: number[] } }[] };
      for (const x of t.results) {
        const engine = `PyTorch ${t.torch} (cpu, ${x.threads} thread${x.threads > 1 ? 's' : ''})`;
        const encG = encoderFlops(c) / 1e9;
        const decG = decoderFlops(c, tokens.length) / 1e9;
        report.measurements.push({ workload: 'encoder forward', engine, backend: 'native CPU (anchor)', ms: x.encoder.ms, runs: x.encoder.runs, warmup: 1, gflop: encG, gflops: encG / (x.encoder.ms / 1000), peakBytes: null });
        report.measurements.push({ workload: `decoder pass (${tokens.length} tokens, cross K/V incl.)`, engine, backend: 'native CPU (anchor)', ms: x.decoder.ms, runs: x.decoder.runs, warmup: 1, gflop: decG, gflops: decG / (x.decoder.ms / 1000), peakBytes: null });
      }
    } else log(`PyTorch anchor failed: ${r.stderr.slice(-500)}`);
  }
}

async function browserSection(report: BenchReport): Promise<void> {
  const { createServer } = await import('vite');
  const { chromium } = await import('playwright-core');
  const server = await createServer({
    configFile: false,
    root: repoRoot,
    logLevel: 'warn',
    server: {
      port: 0,
      host: '127.0.0.1',
      headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
      fs: { allow: [repoRoot, modelDir] },
      // A benchmark must not reload itself when a source file changes under it.
      hmr: false,
      watch: { ignored: ['**/*'] },
    },
  });
  await server.listen();
  const address = server.httpServer?.address();
  const port = typeof address === 'object' && address ? address.port : 5173;
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu'],
  });
  try {
    const page = await browser.newPage();
    page.on('console', (m) => {
      if (m.text().startsWith('[bench]')) log(`chromium ${m.text()}`);
    });
    page.on('pageerror', (e) => log(`chromium page error: ${e.message}`));
    await page.goto(`http://127.0.0.1:${port}/tools/bench/page.html`);
    await page.waitForFunction(() => (globalThis as { __benchReady?: boolean }).__benchReady === true, undefined, { timeout: 120_000 });
    const plan: PagePlan = {
      modelUrl: `/@fs${modelDir}`,
      backends: backendsArg ?? ['webgpu', 'wasm'],
      reps: { webgpu: quick ? 1 : 3, wasm: quick ? 2 : 5 },
      tfjsSweepOnWebGPU: !quick,
      threads: 2,
    };
    page.setDefaultTimeout(0);
    const r = (await page.evaluate((p) => (globalThis as unknown as { __runBench(p: PagePlan): Promise<PageResult> }).__runBench(p), plan)) as PageResult;
    report.measurements.push(...r.measurements);
    report.peaks.push(...r.peaks);
    Object.assign(report.info, r.info);
  } finally {
    await browser.close();
    await server.close();
  }
}

async function main(): Promise<void> {
  ensureModel();
  const started = new Date();
  const report: BenchReport = {
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    date: started.toISOString(),
    model: `${modelDir} (whisper-tiny shape: d 384, 4+4 layers, 6 heads, 1500 frames; random f32 weights)`,
    machine: `${process.platform} ${process.arch}, ${(await import('node:os')).cpus().length} cores, Node ${process.versions.node}`,
    measurements: [],
    peaks: [],
    info: {},
  };
  const os = await import('node:os');
  const load = () => os.loadavg().map((x) => x.toFixed(1)).join(' / ');
  report.info['load average at start (1/5/15 min)'] = load();
  if (!args.has('--no-node')) await nodeSection(report);
  report.info['load average after Node'] = load();
  if (!args.has('--no-browser')) await browserSection(report);
  report.info['load average at end'] = load();
  report.seconds = (Date.now() - started.getTime()) / 1000;
  const outDir = join(repoRoot, 'bench-results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(report, null, 1));
  const tables = formatTables(report);
  console.log(tables);
  const doc = join(repoRoot, 'docs/benchmarks.md');
  // Only a full run replaces the doc's tables; partial runs (--quick, --no-*, --backends=) leave them.
  const partial = quick || args.has('--no-node') || args.has('--no-browser') || backendsArg !== undefined;
  if (existsSync(doc) && !partial) {
    const text = readFileSync(doc, 'utf8');
    const begin = '<!-- bench:begin -->';
    const end = '<!-- bench:end -->';
    if (text.includes(begin) && text.includes(end)) {
      writeFileSync(doc, `${text.slice(0, text.indexOf(begin) + begin.length)}\n${tables}\n${text.slice(text.indexOf(end))}`);
      log(`updated ${doc}`);
    }
  }
  log(`wrote ${file} (${report.seconds.toFixed(0)} s)`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  },
);
