/// <reference types="vite/client" />
/**
 * TensorFlow.js backend selection and initialisation, for Node and the browser.
 *
 * Backends are imported lazily (dynamic `import()`), so the cpu path never
 * loads the wasm or webgpu packages, and a bundler puts each in its own chunk.
 *
 * ## Where the wasm backend finds its .wasm binaries
 *
 * - Node (vitest node project, tsx tools): nothing to do. `@tensorflow/tfjs-backend-wasm`
 *   has no "exports" map, so Node resolves its "main", `dist/tf-backend-wasm.node.js`,
 *   whose Emscripten loader looks next to itself (`__dirname`), and the three
 *   `tfjs-backend-wasm*.wasm` files ship in that same `dist/` folder.
 * - Browser under Vite (dev server AND `vite build`): the backend gets pre-bundled /
 *   bundled away from its .wasm files, and Emscripten's default (the page's or the
 *   chunk's directory) 404s. We therefore import the three binaries with Vite's
 *   `?url` suffix and pass an explicit file map to `setWasmPaths`:
 *     dev:   `?url` yields `/node_modules/@tensorflow/tfjs-backend-wasm/dist/<name>.wasm`,
 *            served as-is by the dev server (also inside the vitest browser project);
 *     build: Vite emits each binary as `assets/<name>-<hash>.wasm` and `?url` yields
 *            that hashed URL (respecting `base`). No copy step or public/ dir needed.
 *   These `?url` imports are dynamic and only executed outside Node, so plain Node
 *   (tsx) never sees them. `opts.wasmPaths` (a prefix ending in '/') overrides this,
 *   e.g. for a CDN or a non-Vite host.
 * - Threads: tfjs picks the threaded-SIMD binary only in a crossOriginIsolated page
 *   (COOP/COEP headers -> SharedArrayBuffer); otherwise, and always in Node (tfjs
 *   reports WASM_HAS_MULTITHREAD_SUPPORT=false there), it uses the single-threaded
 *   SIMD binary. `opts.threads` calls `setThreadsCount` before init and only has an
 *   effect with the threaded binary. The vitest browser page is not isolated: 1 thread.
 */
import * as tf from '@tensorflow/tfjs-core';
import { noteAdapterF16 } from './ops.ts';

export type BackendName = 'cpu' | 'wasm' | 'webgpu';

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  description: string;
  isFallbackAdapter: boolean;
}

export interface BackendInfo {
  name: BackendName;
  adapterInfo?: AdapterSummary;
  hasShaderF16?: boolean;
  /** Human-readable notes (e.g. "fallback (software) adapter", thread count). */
  reason?: string;
}

export interface InitBackendOptions {
  /** wasm only: URL/path prefix (ending in '/') holding the tfjs-backend-wasm*.wasm files. */
  wasmPaths?: string;
  /** wasm only: number of threads (effective only in a crossOriginIsolated page). */
  threads?: number;
}

const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

const infoCache = new Map<BackendName, BackendInfo>();
let wasmConfigured = false;

/** The WebGPU globals typed loosely enough for both spec versions of isFallbackAdapter. */
type AdapterWithLegacy = GPUAdapter & { isFallbackAdapter?: boolean; info?: GPUAdapterInfo & { isFallbackAdapter?: boolean } };

function getGPU(): GPU | undefined {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return nav?.gpu ?? undefined;
}

/** Adapter fallback flag: `adapter.info.isFallbackAdapter` (current spec), else legacy `adapter.isFallbackAdapter`. */
export function isFallbackAdapter(adapter: GPUAdapter): boolean {
  const a = adapter as AdapterWithLegacy;
  return Boolean(a.info?.isFallbackAdapter ?? a.isFallbackAdapter ?? false);
}

export function summarizeAdapter(adapter: GPUAdapter): AdapterSummary {
  const info = (adapter as AdapterWithLegacy).info;
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    description: info?.description ?? '',
    isFallbackAdapter: isFallbackAdapter(adapter),
  };
}

function describeAdapter(s: AdapterSummary): string {
  const what = [s.vendor, s.architecture, s.description].filter((x) => x).join(' / ') || 'unnamed adapter';
  return s.isFallbackAdapter ? `${what} (fallback/software adapter)` : what;
}

/**
 * Requests a real adapter first; if there is none, the fallback (software) adapter.
 * Chromium without a GPU returns null for a plain request and only hands out
 * SwiftShader when `forceFallbackAdapter` is set.
 */
async function requestAnyAdapter(gpu: GPU): Promise<GPUAdapter | null> {
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (adapter) return adapter;
  return gpu.requestAdapter({ forceFallbackAdapter: true });
}

/**
 * Initialises a tfjs backend and makes it current. Safe to call repeatedly
 * (switching back to an already initialised backend reuses it).
 * Throws if the backend cannot be initialised (e.g. webgpu with no navigator.gpu).
 */
export async function initBackend(name: BackendName, opts: InitBackendOptions = {}): Promise<BackendInfo> {
  const cached = infoCache.get(name);
  if (cached && tf.engine().registry[name]) {
    if (tf.getBackend() !== name) {
      await setAndCheck(name);
    }
    return cached;
  }

  let info: BackendInfo;
  switch (name) {
    case 'cpu': {
      await import('@tensorflow/tfjs-backend-cpu');
      await setAndCheck('cpu');
      info = { name };
      break;
    }
    case 'wasm': {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      if (!wasmConfigured) {
        if (opts.wasmPaths) {
          wasm.setWasmPaths(opts.wasmPaths);
        } else if (!isNode) {
          wasm.setWasmPaths(await viteWasmFileMap());
        }
        if (opts.threads && opts.threads > 0) wasm.setThreadsCount(opts.threads);
        wasmConfigured = true;
      }
      await setAndCheck('wasm');
      guardWasmMalloc();
      const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
      info = { name, reason: `wasm (simd: ${simd}, threads: ${wasm.getThreadsCount()})` };
      break;
    }
    case 'webgpu': {
      info = await initWebGPU();
      break;
    }
    default: {
      const never: never = name;
      throw new Error(`unknown backend ${String(never)}`);
    }
  }
  infoCache.set(name, info);
  return info;
}

/**
 * tfjs-wasm's threaded browser build returns 0 from malloc when its heap cannot grow, and
 * tfjs then writes the tensor at address 0, over other data: silent garbage. This turns that
 * into an "Out of memory" error, which a sweep answers by halving its batch (lab/sweep.ts);
 * the heap itself stays intact. (The single-threaded build aborts instead: see the worker.)
 */
function guardWasmMalloc(): void {
  const wasm = (tf.backend() as unknown as { wasm?: { _malloc: (bytes: number) => number } }).wasm;
  if (!wasm || typeof wasm._malloc !== 'function' || guardedHeaps.has(wasm)) return;
  guardedHeaps.add(wasm);
  // Emscripten's first _malloc call replaces Module._malloc with the raw export: keep the
  // guard in front of whatever is assigned.
  let malloc = wasm._malloc;
  const guarded = (bytes: number) => {
    const address = malloc(bytes);
    if (address === 0 && bytes > 0) throw new Error(`Out of memory: the WASM heap could not grow by ${bytes} bytes`);
    return address;
  };
  Object.defineProperty(wasm, '_malloc', {
    configurable: true,
    enumerable: true,
    get: () => guarded,
    set: (f: (bytes: number) => number) => (malloc = f),
  });
}
const guardedHeaps = new WeakSet<object>();

async function setAndCheck(name: BackendName): Promise<void> {
  const ok = await tf.setBackend(name);
  await tf.ready();
  if (!ok || tf.getBackend() !== name) {
    throw new Error(`tf.setBackend('${name}') failed (current backend: ${tf.getBackend()})`);
  }
}

async function initWebGPU(): Promise<BackendInfo> {
  const gpu = getGPU();
  if (!gpu) {
    throw new Error('WebGPU unavailable: navigator.gpu is missing (in Node, call installNodeWebGPU() from tools/node-webgpu.ts first)');
  }
  const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');

  let adapterSummary: AdapterSummary | undefined;
  let hasShaderF16 = false;

  // The package registers its own 'webgpu' factory on import, which only does a
  // plain requestAdapter() (null on SwiftShader-only machines). Replace it with
  // ours: real adapter first, fallback adapter otherwise, and record the info.
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend(
    'webgpu',
    async () => {
      const adapter = await requestAnyAdapter(gpu);
      if (!adapter) throw new Error('navigator.gpu.requestAdapter() returned null (also with forceFallbackAdapter)');
      adapterSummary = summarizeAdapter(adapter);
      hasShaderF16 = adapter.features.has('shader-f16');
      noteAdapterF16(hasShaderF16);
      const requiredFeatures: GPUFeatureName[] = [];
      for (const f of ['timestamp-query', 'bgra8unorm-storage', 'shader-f16'] as const) {
        if (adapter.features.has(f)) requiredFeatures.push(f);
      }
      const l = adapter.limits;
      const device = await adapter.requestDevice({
        requiredFeatures,
        requiredLimits: {
          maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
          maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
          maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
          maxBufferSize: l.maxBufferSize,
          maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
          maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
        },
      });
      return new WebGPUBackend(device, (adapter as AdapterWithLegacy).info);
    },
    3,
  );
  try {
    await setAndCheck('webgpu');
  } catch (e) {
    tf.removeBackend('webgpu');
    throw e;
  }
  const reason = adapterSummary ? `webgpu on ${describeAdapter(adapterSummary)}` : 'webgpu';
  return { name: 'webgpu', adapterInfo: adapterSummary, hasShaderF16, reason };
}

/** Browser/Vite only: URLs of the three wasm binaries (see the header comment). */
async function viteWasmFileMap(): Promise<Record<string, string>> {
  const [plain, simd, threadedSimd] = await Promise.all([
    import('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url'),
    import('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url'),
    import('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url'),
  ]);
  return {
    'tfjs-backend-wasm.wasm': plain.default,
    'tfjs-backend-wasm-simd.wasm': simd.default,
    'tfjs-backend-wasm-threaded-simd.wasm': threadedSimd.default,
  };
}

export interface ChooseBackendOptions {
  /** Use webgpu even when the only adapter is a fallback (software) one. */
  allowFallbackAdapter?: boolean;
  /** Skip detection and return this backend. */
  force?: BackendName;
}

/**
 * Picks the browser backend: webgpu on a real adapter; wasm when navigator.gpu
 * is missing, no adapter is returned, or the only adapter is a fallback
 * (software, e.g. SwiftShader) one — unless `allowFallbackAdapter` is set.
 * Does not initialise anything; pass the result to initBackend().
 * Override also via the URL query `?backend=webgpu|wasm|cpu` (`force` wins).
 */
export async function chooseBrowserBackend(opts: ChooseBackendOptions = {}): Promise<{ name: BackendName; reason: string }> {
  const forced = opts.force ?? backendFromUrl();
  if (forced) return { name: forced, reason: `forced: ${forced}` };

  const gpu = getGPU();
  if (!gpu) return { name: 'wasm', reason: 'WebGPU not available in this browser (navigator.gpu missing); using wasm' };
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    return { name: 'wasm', reason: `WebGPU requestAdapter() threw (${e instanceof Error ? e.message : String(e)}); using wasm` };
  }
  if (adapter && !isFallbackAdapter(adapter)) {
    return { name: 'webgpu', reason: `WebGPU adapter: ${describeAdapter(summarizeAdapter(adapter))}` };
  }
  const fallback = adapter ?? (await gpu.requestAdapter({ forceFallbackAdapter: true }).catch(() => null));
  if (!fallback) {
    return { name: 'wasm', reason: 'WebGPU present but no adapter was returned (GPU blocked or absent); using wasm' };
  }
  // Name the adapter without describeAdapter's "(fallback/software adapter)": the sentence says it.
  const desc = describeAdapter({ ...summarizeAdapter(fallback), isFallbackAdapter: false });
  if (opts.allowFallbackAdapter) {
    return { name: 'webgpu', reason: `only a fallback adapter (${desc}); webgpu allowed on it by override` };
  }
  return { name: 'wasm', reason: `only a fallback (software) WebGPU adapter (${desc}), which is slower than wasm; using wasm` };
}

function backendFromUrl(): BackendName | undefined {
  const loc = (globalThis as { location?: { search?: string } }).location;
  if (!loc?.search) return undefined;
  const v = new URLSearchParams(loc.search).get('backend');
  return v === 'cpu' || v === 'wasm' || v === 'webgpu' ? v : undefined;
}
