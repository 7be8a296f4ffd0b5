/**
 * Surviving a lost WebGPU device (driver reset, GPU process crash, tab in the background on
 * some systems): the device's `lost` promise resolves, every later GPU command fails or
 * reads back zeros, and the tensors on it are gone. What survives is the work done so far.
 *
 * The recovery has three parts, kept apart so each layer does its own:
 *  - `watchDevice()` follows the current WebGPU backend's `device.lost`;
 *  - `fallBackToWasm()` makes wasm the backend (and drops the dead WebGPU one);
 *  - `runBatchesWithFallback()` runs a long job as batches (a sweep's variant batches), and
 *    when the device is lost during a batch, discards that batch's results, falls back,
 *    lets the caller rebuild its state on wasm (`recover`: reload the weights, re-run the
 *    base runs) and runs the same batch again. Finished batches are kept.
 * The engine worker's sweep uses it through lab/sweep.ts sweepInChunks (one chunk per planned
 * batch; workers/lab-requests.ts); tests/device-loss.browser.test.ts destroys the device in the
 * middle of a chunk, tests/e2e/faults.spec.ts in the middle of a sweep in the app.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendInfo, type InitBackendOptions } from './backend.ts';

export interface DeviceWatch {
  /** True once the device is lost. */
  readonly lost: boolean;
  /** The loss message (e.g. "destroyed"), once lost. */
  readonly reason: string | undefined;
  /** Resolves with the reason when the device is lost. */
  readonly whenLost: Promise<string>;
}

const watches = new WeakMap<GPUDevice, DeviceWatch>();

/**
 * tfjs-webgpu maps staging buffers with promises nobody awaits; when the device dies those
 * reject ("Buffer was unmapped before mapping was resolved", "device lost") as unhandled
 * rejections. They carry no information beyond the loss itself, which `device.lost` reports,
 * so once a device is being watched they are marked handled.
 */
let rejectionFilterInstalled = false;
function installRejectionFilter(): void {
  const target = globalThis as { addEventListener?: (type: string, fn: (e: PromiseRejectionEvent) => void) => void };
  if (rejectionFilterInstalled || typeof target.addEventListener !== 'function') return;
  rejectionFilterInstalled = true;
  target.addEventListener('unhandledrejection', (e) => {
    const r = e.reason as { name?: string; message?: string } | undefined;
    if (r && (r.name === 'AbortError' || r.name === 'OperationError') && /mapAsync|unmapped|destroyed|lost/i.test(r.message ?? '')) e.preventDefault();
  });
}

/** The current WebGPU backend's device, or null on any other backend. */
export function currentDevice(): GPUDevice | null {
  if (tf.getBackend() !== 'webgpu') return null;
  return (tf.backend() as unknown as { device?: GPUDevice }).device ?? null;
}

/** Follows the current WebGPU device's loss; null when the backend is not WebGPU. */
export function watchDevice(): DeviceWatch | null {
  const device = currentDevice();
  if (!device) return null;
  const known = watches.get(device);
  if (known) return known;
  installRejectionFilter();
  const state: { lost: boolean; reason: string | undefined } = { lost: false, reason: undefined };
  const whenLost = device.lost.then((info) => {
    state.lost = true;
    state.reason = info.message || info.reason || 'lost';
    return state.reason;
  });
  const watch: DeviceWatch = {
    get lost() {
      return state.lost;
    },
    get reason() {
      return state.reason;
    },
    whenLost,
  };
  watches.set(device, watch);
  return watch;
}

/** Makes wasm the backend and removes the (dead) WebGPU backend so nothing runs on it again. */
export async function fallBackToWasm(opts: InitBackendOptions = {}): Promise<BackendInfo> {
  const info = await initBackend('wasm', opts);
  if (tf.findBackend('webgpu')) {
    try {
      tf.removeBackend('webgpu');
    } catch {
      // Disposing buffers of a lost device may throw; the backend is gone either way.
    }
  }
  return info;
}

/** How long a failed batch waits for `device.lost` before its error counts as the caller's. */
const LOSS_GRACE_MS = 2000;

export interface FallbackOptions {
  /** Rebuilds the caller's state (model, base runs) on the new backend before the failed batch re-runs. */
  recover: (reason: string) => Promise<void>;
  /** Told once when the job moves to wasm (e.g. to tell the user why it got slower). */
  onFallback?: (reason: string, info: BackendInfo) => void;
  /** Options for the wasm backend (threads). */
  wasm?: InitBackendOptions;
  /** Errors that are surely not the device's (a cancel): thrown at once, without waiting for a loss. */
  isOwnError?: (e: unknown) => boolean;
}

/**
 * Runs `batches` in order with `run`. If the WebGPU device is lost while a batch runs (or was
 * lost before it), the batch's result is discarded, the backend falls back to wasm, `recover`
 * rebuilds the caller's state, and the batch runs again. Errors while the device is healthy
 * are the caller's and propagate.
 */
export async function runBatchesWithFallback<B, R>(batches: readonly B[], run: (batch: B, index: number) => Promise<R>, opts: FallbackOptions): Promise<R[]> {
  const results: R[] = [];
  let watch = watchDevice();
  for (let i = 0; i < batches.length; i++) {
    let result: R | undefined;
    let failure: unknown;
    try {
      result = await run(batches[i], i);
    } catch (e) {
      failure = e;
    }
    // Give a pending `lost` a chance to resolve before trusting what the batch read back; a
    // failed batch waits longer (the failure may be the loss, reported a moment later).
    if (failure !== undefined && opts.isOwnError?.(failure)) throw failure;
    if (watch) await Promise.race([watch.whenLost, new Promise((r) => setTimeout(r, failure === undefined ? 0 : LOSS_GRACE_MS))]);
    if (watch?.lost) {
      const reason = watch.reason ?? 'lost';
      const info = await fallBackToWasm(opts.wasm);
      opts.onFallback?.(reason, info);
      await opts.recover(reason);
      watch = null;
      i--; // the same batch again, on wasm
      continue;
    }
    if (failure !== undefined) throw failure;
    results.push(result as R);
  }
  return results;
}
