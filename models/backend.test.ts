import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { chooseBrowserBackend, initBackend, isFallbackAdapter, summarizeAdapter } from './backend.ts';

type FakeAdapter = { info?: Record<string, unknown>; isFallbackAdapter?: boolean; features: Set<string> };

function fakeAdapter(info: Record<string, unknown> | undefined, legacyFallback?: boolean): GPUAdapter {
  const a: FakeAdapter = { features: new Set() };
  if (info) a.info = info;
  if (legacyFallback !== undefined) a.isFallbackAdapter = legacyFallback;
  return a as unknown as GPUAdapter;
}

/** Installs a fake navigator.gpu whose requestAdapter answers from `pick`. */
function fakeGPU(pick: (opts?: GPURequestAdapterOptions) => GPUAdapter | null): void {
  const gpu = { requestAdapter: async (opts?: GPURequestAdapterOptions) => pick(opts) };
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
}

const originalNavigator = Object.getOwnPropertyDescriptor(globalThis, 'navigator');

afterEach(() => {
  if (originalNavigator) Object.defineProperty(globalThis, 'navigator', originalNavigator);
  else delete (globalThis as { navigator?: unknown }).navigator;
});

describe('adapter helpers', () => {
  it('reads isFallbackAdapter from adapter.info, else the legacy adapter field', () => {
    expect(isFallbackAdapter(fakeAdapter({ isFallbackAdapter: true }))).toBe(true);
    expect(isFallbackAdapter(fakeAdapter({ isFallbackAdapter: false }, true))).toBe(false);
    expect(isFallbackAdapter(fakeAdapter({ vendor: 'x' }, true))).toBe(true);
    expect(isFallbackAdapter(fakeAdapter(undefined))).toBe(false);
    expect(summarizeAdapter(fakeAdapter({ vendor: 'google', architecture: 'swiftshader', isFallbackAdapter: true }))).toEqual({
      vendor: 'google',
      architecture: 'swiftshader',
      description: '',
      isFallbackAdapter: true,
    });
  });
});

describe('chooseBrowserBackend', () => {
  it('wasm when navigator.gpu is missing', async () => {
    Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
    const c = await chooseBrowserBackend();
    expect(c.name).toBe('wasm');
    expect(c.reason).toMatch(/navigator\.gpu missing/);
  });

  it('wasm when no adapter is returned', async () => {
    fakeGPU(() => null);
    const c = await chooseBrowserBackend({ allowFallbackAdapter: true });
    expect(c.name).toBe('wasm');
    expect(c.reason).toMatch(/no adapter/);
  });

  it('webgpu on a real adapter', async () => {
    fakeGPU(() => fakeAdapter({ vendor: 'nvidia', architecture: 'ampere', description: 'RTX', isFallbackAdapter: false }));
    const c = await chooseBrowserBackend();
    expect(c.name).toBe('webgpu');
    expect(c.reason).toMatch(/nvidia/);
  });

  it('wasm on a fallback-only adapter (new and legacy flag), unless overridden', async () => {
    fakeGPU(() => fakeAdapter({ vendor: 'google', architecture: 'swiftshader', isFallbackAdapter: true }));
    expect((await chooseBrowserBackend()).name).toBe('wasm');
    expect((await chooseBrowserBackend({ allowFallbackAdapter: true })).name).toBe('webgpu');

    fakeGPU((o) => (o?.forceFallbackAdapter ? fakeAdapter({ vendor: 'google' }, true) : null));
    const c = await chooseBrowserBackend();
    expect(c.name).toBe('wasm');
    expect(c.reason).toMatch(/fallback/);
    expect((await chooseBrowserBackend({ allowFallbackAdapter: true })).name).toBe('webgpu');
  });

  it('force wins', async () => {
    fakeGPU(() => null);
    expect(await chooseBrowserBackend({ force: 'cpu' })).toEqual({ name: 'cpu', reason: 'forced: cpu' });
  });
});

describe('initBackend', () => {
  it('cpu: sets the backend and is idempotent', async () => {
    expect(await initBackend('cpu')).toEqual({ name: 'cpu' });
    expect(tf.getBackend()).toBe('cpu');
    expect(await initBackend('cpu')).toEqual({ name: 'cpu' });
  });

  it('webgpu without navigator.gpu throws a clear error', async () => {
    Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
    await expect(initBackend('webgpu')).rejects.toThrow(/navigator\.gpu is missing/);
    expect(tf.getBackend()).toBe('cpu');
  });

  it('works under plain Node (tsx) and the cpu path loads neither wasm nor webgpu', async () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const script = [
      "import * as tf from '@tensorflow/tfjs-core';",
      "import { initBackend } from './models/backend.ts';",
      "const info = await initBackend('cpu');",
      "console.log(JSON.stringify({ info, wasm: !!tf.findBackendFactory('wasm'), webgpu: !!tf.findBackendFactory('webgpu') }));",
    ].join('\n');
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root,
      timeout: 60_000,
    });
    const line = stdout.trim().split('\n').pop() ?? '';
    expect(JSON.parse(line)).toEqual({ info: { name: 'cpu' }, wasm: false, webgpu: false });
  });
});
