/**
 * Downloads one file with byte progress, optionally through Cache Storage so that a
 * checkpoint fetched once loads again offline. Failures become EarshotErrors that say
 * what to do next (check the repo id, go online, use local files).
 */
import { EarshotError } from '../models/errors.ts';
import { HUB_CACHE_NAME } from './protocol.ts';

export interface FetchFileOptions {
  /** How to name the file in messages: "model.safetensors of openai/whisper-tiny". */
  what: string;
  signal: AbortSignal;
  onProgress: (done: number, total: number) => void;
  /** Read from and write to Cache Storage (hub files); off for files this site serves. */
  useCache: boolean;
  /** A 404 yields null instead of an error (tokenizer.json is optional). */
  optional?: boolean;
}

export interface FetchedFile {
  bytes: Uint8Array<ArrayBuffer>;
  fromCache: boolean;
  /** Why the file could not be stored in Cache Storage (quota full, …); the bytes are fine. */
  cacheError?: string;
}

/** Progress messages at most this often; the last one always goes out. */
const PROGRESS_INTERVAL_MS = 100;

export async function fetchFile(url: string, opts: FetchFileOptions): Promise<FetchedFile | null> {
  const cache = opts.useCache ? await openCache() : null;
  const cached = await cache?.match(url).catch(() => undefined);
  if (cached) {
    // A cached 404 records that an optional file does not exist, so offline visits need not ask.
    if (cached.status === 404) return null;
    const bytes = new Uint8Array(await cached.arrayBuffer());
    opts.onProgress(bytes.byteLength, bytes.byteLength);
    return { bytes, fromCache: true };
  }

  opts.onProgress(0, 0);
  let response: Response;
  try {
    response = await fetch(url, { signal: opts.signal, mode: 'cors', credentials: 'omit' });
  } catch (e) {
    throwIfAborted(opts.signal);
    throw new EarshotError(
      `Could not download ${opts.what}: the request failed (${errorText(e)}). Check the internet connection; a model downloaded once loads offline afterwards.`,
      'network',
    );
  }
  if (response.status === 404 && opts.optional) {
    await cache?.put(url, new Response(null, { status: 404 })).catch(() => undefined);
    return null;
  }
  if (!response.ok) throw httpError(response, opts.what);

  const bytes = await readWithProgress(response, opts);
  let cacheError: string | undefined;
  if (cache) {
    // Best effort: a full disk or a quota error must not fail a load that already succeeded.
    // Written only once every byte is here, so a cancelled or broken download leaves no entry.
    const headers = { 'content-type': response.headers.get('content-type') ?? 'application/octet-stream' };
    await cache.put(url, new Response(bytes, { headers })).catch((e: unknown) => {
      cacheError = e instanceof DOMException && e.name === 'QuotaExceededError' ? 'the browser storage is full' : errorText(e);
      console.warn(`Earshot: could not store ${opts.what} in Cache Storage (${errorText(e)}); it will be downloaded again next time.`);
    });
  }
  return cacheError === undefined ? { bytes, fromCache: false } : { bytes, fromCache: false, cacheError };
}

async function openCache(): Promise<Cache | null> {
  // Cache Storage exists only in secure contexts (https, localhost).
  if (typeof caches === 'undefined') return null;
  return caches.open(HUB_CACHE_NAME).catch(() => null);
}

async function readWithProgress(response: Response, opts: FetchFileOptions): Promise<Uint8Array<ArrayBuffer>> {
  // Content-Length counts encoded bytes; with gzip the decoded body is longer, so the
  // total only grows to match what arrives and is never trusted to size a buffer.
  const declared = Number(response.headers.get('content-length') ?? 0);
  let total = Number.isFinite(declared) && declared > 0 ? declared : 0;
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    opts.onProgress(bytes.byteLength, bytes.byteLength);
    return bytes;
  }
  const chunks: Uint8Array[] = [];
  let done = 0;
  let lastReport = 0;
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { value, done: finished } = await reader.read();
      if (finished) break;
      chunks.push(value);
      done += value.byteLength;
      if (done > total && total > 0) total = done;
      const now = performance.now();
      if (now - lastReport >= PROGRESS_INTERVAL_MS) {
        opts.onProgress(done, total);
        lastReport = now;
      }
    }
  } catch (e) {
    throwIfAborted(opts.signal);
    throw new EarshotError(`The download of ${opts.what} broke off after ${formatMB(done)} (${errorText(e)}); try again.`, 'network');
  }
  opts.onProgress(done, done);
  const bytes = new Uint8Array(done);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

function httpError(response: Response, what: string): EarshotError {
  const status = response.status;
  if (status === 404) {
    return new EarshotError(
      `${what} was not found (HTTP 404). Check the repo id and revision; Earshot needs config.json and model.safetensors (repos with only pytorch_model.bin do not load).`,
      'http-404',
    );
  }
  if (status === 401 || status === 403) {
    return new EarshotError(
      `${what} needs a signed-in Hugging Face account (HTTP ${status}: a gated or private repo). Download the files yourself and load them as local files.`,
      `http-${status}`,
    );
  }
  return new EarshotError(`Could not download ${what}: the server answered HTTP ${status} ${response.statusText}. Try again later.`, `http-${status}`);
}

export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new EarshotError('Cancelled.', 'cancelled');
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function formatMB(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
}
