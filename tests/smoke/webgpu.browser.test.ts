/**
 * Browser smoke test (headless Chromium, vitest browser project): webgpu forced
 * onto the SwiftShader fallback adapter, wasm via Vite-served binaries, and
 * binary fixture loading through tests/util/fixtures.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { chooseBrowserBackend, initBackend, type BackendName } from '../../models/backend.ts';
import { asFloat32, readRepoFile, readSharedReference, sharedReferenceAvailable, skipMessage } from '../util/fixtures.ts';
import { matmulRef, maxAbsDiff, seededRandom } from '../util/reference-math.ts';

const M = 64;
const K = 32;
const N = 48;
const a = seededRandom(M * K, 11);
const b = seededRandom(K * N, 12);
const ref = matmulRef(a, b, M, K, N);

async function matmulOn(name: BackendName): Promise<Float32Array> {
  await initBackend(name);
  expect(tf.getBackend()).toBe(name);
  const y = tf.tidy(() => tf.matMul(tf.tensor2d(a, [M, K]), tf.tensor2d(b, [K, N])));
  const out = (await y.data()) as Float32Array;
  y.dispose();
  return out;
}

describe('browser backends (headless Chromium)', () => {
  afterAll(async () => {
    await initBackend('cpu');
  });

  it('chooseBrowserBackend explains its choice', async () => {
    const auto = await chooseBrowserBackend();
    console.log(`[smoke] chooseBrowserBackend(): ${auto.name} — ${auto.reason}`);
    expect(['webgpu', 'wasm']).toContain(auto.name);
    expect(auto.reason.length).toBeGreaterThan(0);
    const forced = await chooseBrowserBackend({ allowFallbackAdapter: true });
    console.log(`[smoke] chooseBrowserBackend({allowFallbackAdapter}): ${forced.name} — ${forced.reason}`);
    expect(forced.name).toBe('webgpu');
  });

  it('webgpu (forced onto the fallback adapter): matmul [64,32]x[32,48] matches a JS loop', async () => {
    const info = await initBackend('webgpu');
    console.log('[smoke] webgpu info:', JSON.stringify(info));
    expect(info.adapterInfo).toBeDefined();
    const out = await matmulOn('webgpu');
    const err = maxAbsDiff(out, ref);
    console.log(`[smoke] webgpu matmul max|diff| vs JS: ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);
  });

  it('wasm: matmul matches the JS loop and webgpu', async () => {
    const info = await initBackend('wasm');
    console.log('[smoke] wasm info:', JSON.stringify(info), 'crossOriginIsolated:', globalThis.crossOriginIsolated);
    const out = await matmulOn('wasm');
    const gpuOut = await matmulOn('webgpu');
    const err = maxAbsDiff(out, ref);
    console.log(`[smoke] wasm matmul max|diff| vs JS: ${err.toExponential(2)}, vs webgpu: ${maxAbsDiff(out, gpuOut).toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);
    expect(maxAbsDiff(out, gpuOut)).toBeLessThan(1e-4);
  });
});

describe('fixture loading in the browser', () => {
  it('reads package.json from the repo as bytes', async () => {
    const bytes = await readRepoFile('package.json');
    expect(bytes).not.toBeNull();
    const pkg = JSON.parse(new TextDecoder().decode(bytes!)) as { name: string };
    expect(pkg.name).toBe('earshot');
  });

  it('returns null for a missing file', async () => {
    expect(await readRepoFile('tests/fixtures/does-not-exist.bin')).toBeNull();
    expect(await readSharedReference('does-not-exist.f32')).toBeNull();
  });

  it('reads ../shared/reference/jfk_16k.f32 (704000 bytes)', async (ctx) => {
    if (!(await sharedReferenceAvailable())) {
      ctx.skip(skipMessage('../shared/reference'));
      return;
    }
    const t0 = performance.now();
    const bytes = await readSharedReference('jfk_16k.f32');
    const ms = performance.now() - t0;
    if (!bytes) {
      ctx.skip(skipMessage('jfk_16k.f32'));
      return;
    }
    expect(bytes.byteLength).toBe(704000);
    const pcm = asFloat32(bytes);
    expect(pcm.length).toBe(176000);
    let peak = 0;
    for (const v of pcm) peak = Math.max(peak, Math.abs(v));
    expect(peak).toBeGreaterThan(0.1);
    expect(peak).toBeLessThanOrEqual(1);
    console.log(`[smoke] jfk_16k.f32: ${bytes.byteLength} bytes in ${ms.toFixed(1)} ms, peak ${peak.toFixed(3)}`);
  });
});
