/**
 * tfjs keeps op gradients apart from the ops, and only attribution patching needs
 * them. Under a bundler (Vite, Vitest) the ESM registration module loads them;
 * plain Node resolves tfjs-core to its CommonJS build, whose gradients the CLI
 * registers itself (tools/cli/node-backend.ts) before calling into the lab.
 */
import * as tf from '@tensorflow/tfjs-core';

export async function ensureGradients(): Promise<void> {
  if (tf.getGradient('Sub')) return;
  await import('@tensorflow/tfjs-core/dist/register_all_gradients');
}
