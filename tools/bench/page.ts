/**
 * The Chromium half of `npm run bench`: run.ts serves this page with Vite (COOP/COEP, so
 * wasm may use threads), opens it in Debian's headless Chromium and calls `__runBench`.
 * Every number is measured here, on this page's backends, in one run.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../../models/backend.ts';
import { samplesToMel } from '../../models/clip.ts';
import { loadAudio16k } from '../../models/audio.ts';
import { loadCheckpoint } from '../../models/load.ts';
import { setKernelPath } from '../../models/ops.ts';
import {
  benchDecoder,
  benchEncoder,
  benchMatmulPeak,
  benchOrtDecoder,
  benchOrtEncoder,
  benchSweep,
  benchTokens,
  type Measurement,
  type OrtLike,
  type OrtSession,
} from './workloads.ts';

export interface PagePlan {
  /** URL prefix of the model folder (config.json, model.safetensors, clean.wav, corrupt.wav, onnx/). */
  modelUrl: string;
  backends: BackendName[];
  /** Repetitions per backend (after one warm-up). */
  reps: Record<string, number>;
  /** Also time the tfjs-op path's sweep on webgpu (slow on SwiftShader). */
  tfjsSweepOnWebGPU: boolean;
  threads: number;
}

export interface PageResult {
  measurements: (Measurement & Partial<Record<'variants' | 'blockEvals' | 'naiveBlockEvals', number>>)[];
  peaks: { backend: string; ours: number | null; tfjs: number; shape: number[] }[];
  info: Record<string, unknown>;
}

const log = (m: string) => console.log(`[bench] ${m}`);

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function ortFor(backend: BackendName, threads: number): Promise<{ ort: OrtLike; ep: string; note: string }> {
  const ort = (await import('onnxruntime-web/webgpu')) as unknown as OrtLike & { env: { wasm: Record<string, unknown>; webgpu: Record<string, unknown> } };
  ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
  ort.env.wasm.numThreads = threads;
  if (backend === 'wasm') return { ort, ep: 'wasm', note: `${threads} thread(s)` };
  const gpu = navigator.gpu;
  const adapter = (await gpu.requestAdapter({ powerPreference: 'high-performance' })) ?? (await gpu.requestAdapter({ forceFallbackAdapter: true }));
  if (!adapter) throw new Error('no WebGPU adapter for onnxruntime-web');
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    },
  });
  ort.env.webgpu.device = device;
  return { ort, ep: 'webgpu', note: 'same adapter' };
}

async function runBench(plan: PagePlan): Promise<PageResult> {
  const out: PageResult = { measurements: [], peaks: [], info: { crossOriginIsolated: globalThis.crossOriginIsolated, userAgent: navigator.userAgent } };
  const config = JSON.parse(new TextDecoder().decode(await fetchBytes(`${plan.modelUrl}/config.json`)));
  const st = await fetchBytes(`${plan.modelUrl}/model.safetensors`);
  const encOnnx = await fetchBytes(`${plan.modelUrl}/onnx/encoder_model.onnx`);
  const decOnnx = await fetchBytes(`${plan.modelUrl}/onnx/decoder_model.onnx`);
  const clean = await fetchBytes(`${plan.modelUrl}/clean.wav`);
  const corrupt = await fetchBytes(`${plan.modelUrl}/corrupt.wav`);

  for (const backend of plan.backends) {
    const info = await initBackend(backend, { threads: plan.threads });
    out.info[backend] = info.reason ?? backend;
    // onnxruntime-web gets as many threads as tfjs-wasm really runs with (same backend, same cores).
    let ortThreads = plan.threads;
    if (backend === 'wasm') {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      ortThreads = wasm.getThreadsCount();
      out.info['wasm multithread support'] = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    }
    log(`${backend}: ${info.reason ?? ''}`);
    const reps = plan.reps[backend] ?? 3;
    const loaded = await loadCheckpoint({ config, safetensors: st });
    const c = loaded.config;
    const mel = samplesToMel(loadAudio16k(clean), c).mel;
    const corruptMel = samplesToMel(loadAudio16k(corrupt), c).mel;
    const tokens = benchTokens(c);
    const e = { model: loaded.model, mel, corruptMel, tokens };
    const push = (engine: string, m: Omit<Measurement, 'engine' | 'backend'> & Partial<Record<'variants' | 'blockEvals' | 'naiveBlockEvals', number>>) => {
      out.measurements.push({ ...m, engine, backend: `${backend} (Chromium)` });
      log(`${backend} ${engine} ${m.workload}: ${m.ms.toFixed(0)} ms`);
    };

    out.peaks.push({ backend: `${backend} (Chromium)`, ...(await benchMatmulPeak(1, reps)) });
    // On wasm "our kernels" is the custom plan of tfjs ops (models/ops.ts); on WebGPU the WGSL kernels.
    const paths = ['custom', 'tfjs'] as const;
    for (const path of paths) {
      const engine = path === 'custom' ? 'earshot (our kernels)' : 'earshot (tfjs ops)';
      const r = path === 'tfjs' && backend === 'webgpu' ? Math.max(1, reps - 1) : reps;
      log(`${engine} encoder…`);
      push(engine, await benchEncoder(e, path, 1, r, log));
      log(`${engine} decoder…`);
      push(engine, await benchDecoder(e, path, 1, r, log));
      if (path === 'custom' || backend !== 'webgpu' || plan.tfjsSweepOnWebGPU) {
        log(`${engine} sweep…`);
        push(engine, await benchSweep(e, path, 0, backend === 'webgpu' ? 1 : r, log));
      }
    }
    setKernelPath(null);
    loaded.model.dispose();

    // onnxruntime-web on the same backend and weights.
    try {
      const { ort, ep, note } = await ortFor(backend, ortThreads);
      const opts = { executionProviders: [ep], graphOptimizationLevel: 'all' };
      log(`onnxruntime-web ${ep} encoder…`);
      const enc = await ort.InferenceSession.create(encOnnx, opts);
      const ortEnc = await benchOrtEncoder(ort, enc, c, mel, 1, reps, log);
      push(`onnxruntime-web (${ep}, ${note})`, ortEnc);
      const hidden = (await enc.run({ input_features: new ort.Tensor('float32', mel, [1, c.numMelBins, 2 * c.maxSourcePositions]) })).last_hidden_state.data as Float32Array;
      await enc.release?.();
      log(`onnxruntime-web ${ep} decoder…`);
      const dec: OrtSession = await ort.InferenceSession.create(decOnnx, opts);
      push(`onnxruntime-web (${ep}, ${note})`, await benchOrtDecoder(ort, dec, c, hidden, tokens, 1, reps, log));
      await dec.release?.();
    } catch (err) {
      log(`onnxruntime-web on ${backend} failed: ${err instanceof Error ? err.message : String(err)}`);
      out.info[`ort-${backend}-error`] = String(err);
    }
    log(`tensors alive after ${backend}: ${tf.memory().numTensors}`);
  }
  return out;
}

(globalThis as { __runBench?: typeof runBench }).__runBench = runBench;
(globalThis as { __benchReady?: boolean }).__benchReady = true;
