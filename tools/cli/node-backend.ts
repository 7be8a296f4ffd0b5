/** Backend set-up for the CLI in Node: cpu and wasm directly, webgpu through Dawn. */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../../models/backend.ts';
import { EarshotError } from '../../models/errors.ts';
import { installNodeWebGPU, nodeWebGPUError } from '../node-webgpu.ts';

const BACKENDS: readonly BackendName[] = ['cpu', 'wasm', 'webgpu'];

export async function initNodeBackend(name: string): Promise<void> {
  if (!(BACKENDS as readonly string[]).includes(name)) {
    throw new EarshotError(`--backend must be one of ${BACKENDS.join(', ')}, not "${name}".`, 'usage');
  }
  if (name === 'webgpu' && !(await installNodeWebGPU())) {
    throw new EarshotError(`WebGPU is not available in Node here (${nodeWebGPUError()}); use --backend wasm.`, 'no-webgpu');
  }
  // tfjs prints a banner about tfjs-node on first use in Node; the CLI's stderr is for the user.
  tf.env().set('PROD', true);
  await initBackend(name as BackendName);
}

/**
 * Op gradients for attribution patching. In plain Node tfjs-core is its CommonJS build,
 * which ships without them; the umbrella package's Node build registers them on it.
 */
export function registerNodeGradients(): void {
  if (!tf.getGradient('Sub')) createRequire(import.meta.url)('@tensorflow/tfjs');
}
