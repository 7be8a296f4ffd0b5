/**
 * WebGPU in Node for the CLI, tests and benches, via the npm `webgpu` package (Dawn's
 * node binding, "dawn.node"). Not model code: models/ must never import this.
 *
 * What it takes on this kind of machine (no GPU, Debian, Chromium installed):
 *
 *  - Dawn picks its Vulkan backend and `dlopen("libvulkan.so.1")`. There is no
 *    system Vulkan loader here; the only one is Chromium's private copy in
 *    /usr/lib/chromium (not on the linker path). LD_LIBRARY_PATH would work but
 *    is only read when the process starts, so it cannot be set from inside a
 *    vitest worker. Instead we preload that loader ourselves with
 *    `process.dlopen(..., RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE)`: Node then
 *    throws "Module did not self-register" (it is not a Node addon), but with
 *    RTLD_NODELETE the library stays mapped, and glibc satisfies Dawn's later
 *    `dlopen("libvulkan.so.1")` from the already-loaded object by its SONAME.
 *    If a system libvulkan exists (or LD_LIBRARY_PATH was set), the preload is
 *    skipped / harmless.
 *  - The Vulkan loader then needs an ICD: Chromium's SwiftShader
 *    (`VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json`), which is a
 *    CPU implementation of Vulkan. We set the variable if it is not already set;
 *    the loader reads it with getenv() at vkCreateInstance time, and Node's
 *    `process.env` writes go to the real environment, so setting it here works.
 *  - `globalThis.navigator.gpu` and the WebGPU globals (GPUBufferUsage,
 *    GPUMapMode, ...) must exist BEFORE `@tensorflow/tfjs-backend-webgpu` is
 *    imported (it registers its backend at import time only if navigator.gpu is
 *    there, and uses the enum globals in its kernels).
 *
 * Result here: adapter info vendor "google", architecture "swiftshader",
 * description "SwiftShader driver 5.0.0", isFallbackAdapter true, no `shader-f16`.
 */

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const CHROMIUM_VULKAN_LOADER = '/usr/lib/chromium/libvulkan.so.1';
const SYSTEM_VULKAN_LOADERS = [
  '/usr/lib/x86_64-linux-gnu/libvulkan.so.1',
  '/usr/lib/aarch64-linux-gnu/libvulkan.so.1',
  '/usr/lib64/libvulkan.so.1',
  '/usr/lib/libvulkan.so.1',
];
/** glibc's RTLD_NODELETE; Node's os.constants.dlopen does not expose it. */
const RTLD_NODELETE = 0x1000;

let installed: Promise<boolean> | null = null;
let lastError: string | undefined;

/** Why the last installNodeWebGPU() returned false (undefined if it did not). */
export function nodeWebGPUError(): string | undefined {
  return lastError;
}

/**
 * Sets up `globalThis.navigator.gpu` from the `webgpu` package and checks that
 * an adapter can be obtained. Resolves true when WebGPU is usable, false (with
 * `nodeWebGPUError()` explaining why) otherwise. Idempotent. Node only.
 */
export function installNodeWebGPU(): Promise<boolean> {
  installed ??= doInstall();
  return installed;
}

async function doInstall(): Promise<boolean> {
  try {
    if (typeof process === 'undefined' || !process.versions?.node) {
      lastError = 'not running in Node';
      return false;
    }
    const fs = await import('node:fs');
    const os = await import('node:os');

    if (!process.env.VK_ICD_FILENAMES && fs.existsSync(SWIFTSHADER_ICD)) {
      process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
    }
    const ldPath = process.env.LD_LIBRARY_PATH ?? '';
    const systemLoader = SYSTEM_VULKAN_LOADERS.some((p) => fs.existsSync(p));
    if (!systemLoader && !ldPath.includes('/usr/lib/chromium') && fs.existsSync(CHROMIUM_VULKAN_LOADER)) {
      const c = os.constants.dlopen;
      try {
        process.dlopen({ exports: {} }, CHROMIUM_VULKAN_LOADER, c.RTLD_NOW | c.RTLD_GLOBAL | RTLD_NODELETE);
      } catch {
        // Expected: "Module did not self-register". The library stays loaded.
      }
    }

    const webgpu = await import('webgpu');
    Object.assign(globalThis, webgpu.globals);
    const gpu = webgpu.create([]);
    const g = globalThis as { navigator?: { gpu?: GPU } };
    if (g.navigator === undefined) {
      Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    } else if (!g.navigator.gpu) {
      // Node >= 21 has a global `navigator` (getter on globalThis): add `gpu` to it.
      Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, writable: true });
    }

    const adapter = await g.navigator!.gpu!.requestAdapter();
    if (!adapter) {
      lastError = 'navigator.gpu.requestAdapter() returned null (no Vulkan loader/ICD usable by Dawn?)';
      return false;
    }
    lastError = undefined;
    return true;
  } catch (e) {
    lastError = `webgpu (Dawn) setup failed: ${e instanceof Error ? e.message : String(e)}`;
    return false;
  }
}
