/**
 * Binary fixture loading that works in both vitest projects.
 *
 * - node project: `fs.readFile` relative to the repo root (derived from this
 *   file's location, not from process.cwd()).
 * - browser project: plain `fetch()` from the Vite dev server that vitest
 *   browser mode runs, using Vite's `/@fs/<absolute path>` URL scheme. The repo
 *   root's absolute path comes from `server.config.root` (`vitest/browser`).
 *   This streams raw bytes over HTTP, so multi-MB (and much larger, e.g.
 *   weights) files are cheap — unlike `commands.readFile`, which goes over the
 *   websocket RPC as a (base64) string. Vite only serves paths inside
 *   `server.fs.allow`; the browser project in vitest.config.ts allows the repo
 *   root and `../shared`. A missing file or a denied path (404/403) yields null.
 *   Measured: 704 kB in ~10 ms, a 21.5 MB file in ~115 ms.
 *   Caveat: Vite transforms JS/TS-like files (.ts, .js, .svelte, ...) even on
 *   /@fs/ URLs, so use this for data files (.f32, .bin, .json, .wav, ...), not sources.
 *
 * All functions return null when the file is absent so tests can skip with a
 * clear message (see `skipMessage`).
 */

const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

/** Absolute path of the repo root, without trailing slash. */
async function repoRoot(): Promise<string> {
  if (isNode) {
    const { fileURLToPath } = await import('node:url');
    const path = await import('node:path');
    return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  }
  const { server } = await import('vitest/browser');
  return server.config.root.replace(/\/+$/, '');
}

function joinPosix(base: string, rel: string): string {
  const parts = `${base}/${rel}`.split('/');
  const out: string[] = [];
  for (const p of parts) {
    if (p === '' || p === '.') continue;
    if (p === '..') out.pop();
    else out.push(p);
  }
  return `/${out.join('/')}`;
}

async function readAbsolute(absPath: string): Promise<Uint8Array | null> {
  if (isNode) {
    const fs = await import('node:fs/promises');
    try {
      const buf = await fs.readFile(absPath);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }
  const url = `/@fs${absPath.split('/').map(encodeURIComponent).join('/')}`;
  const res = await fetch(url);
  if (res.status === 404 || res.status === 403) return null;
  if (!res.ok) throw new Error(`fetch ${url}: HTTP ${res.status}`);
  // The dev server answers unknown paths under the root with index.html
  // (SPA fallback); a real file never comes back as text/html unless asked for.
  const type = res.headers.get('content-type') ?? '';
  if (type.startsWith('text/html') && !/\.html?$/i.test(absPath)) return null;
  return new Uint8Array(await res.arrayBuffer());
}

/** Absolute path of a repo-relative path (posix separators). */
export async function repoPath(relPath: string): Promise<string> {
  return joinPosix(await repoRoot(), relPath);
}

/** Reads `relPath` relative to the repo root; null if it does not exist. */
export async function readRepoFile(relPath: string): Promise<Uint8Array | null> {
  return readAbsolute(await repoPath(relPath));
}

/** Path prefix of the shared reference data, relative to the repo root. */
export const SHARED_REFERENCE_DIR = '../shared/reference';

/**
 * Reads `relPath` relative to `../shared/reference` (e.g. 'jfk_16k.f32');
 * null if the shared reference data (or that file) is absent.
 */
export async function readSharedReference(relPath: string): Promise<Uint8Array | null> {
  return readRepoFile(`${SHARED_REFERENCE_DIR}/${relPath}`);
}

let sharedAvailable: Promise<boolean> | null = null;

/** True when ../shared/reference is present (probes its README.md). */
export function sharedReferenceAvailable(): Promise<boolean> {
  sharedAvailable ??= readSharedReference('README.md').then((b) => b !== null, () => false);
  return sharedAvailable;
}

/** A uniform message for `it.skipIf` / `ctx.skip()` when a fixture is missing. */
export function skipMessage(what: string): string {
  return `fixture missing: ${what} (expected under the repo or ${SHARED_REFERENCE_DIR}); test skipped`;
}

/** Views bytes as little-endian float32 (copies if unaligned). */
export function asFloat32(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw new Error(`byte length ${bytes.byteLength} is not a multiple of 4`);
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return new Float32Array(bytes.slice().buffer);
}
