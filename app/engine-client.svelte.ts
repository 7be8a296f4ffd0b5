/**
 * The UI's handle on the engine worker: one promise per request id, progress callbacks,
 * and the running backend as reactive state. A newer transcription or model load
 * supersedes (cancels) an older one still in flight. If the worker dies it is started
 * again, every pending request fails with a message saying so, and `onRestart` tells
 * the page that the loaded model is gone.
 */
import type { BackendName } from '../models/backend.ts';
import type {
  BackendReport,
  EngineRequest,
  EngineResponse,
  ModelInfo,
  ModelSource,
  ProgressPayload,
  RequestKind,
  RequestPayloads,
  ResultPayloads,
  Transcript,
} from '../workers/protocol.ts';

/** A failed request, with the worker's one-line message and a stable code. */
export class EngineError extends Error {
  readonly code: string;

  constructor(message: string, code: string) {
    super(message);
    this.name = 'EngineError';
    this.code = code;
  }
}

export function isCancelled(e: unknown): boolean {
  return e instanceof EngineError && e.code === 'cancelled';
}

type OnProgress = (p: ProgressPayload) => void;

interface Pending {
  resolve: (value: never) => void;
  reject: (error: EngineError) => void;
  onProgress?: OnProgress;
}

export interface EngineClientOptions {
  /** Force a backend (from `?backend=` in the page URL); the worker cannot see the page URL. */
  backend?: BackendName;
  /** Called after the worker died and was started again; the model must be loaded anew. */
  onRestart?: (message: string) => void;
  /** Called when the engine changed backend by itself (the WebGPU device was lost: now wasm). */
  onBackendChange?: (report: BackendReport) => void;
}

/** More restarts than this within RESTART_WINDOW_MS means the engine cannot start at all. */
const MAX_RESTARTS = 3;
const RESTART_WINDOW_MS = 30_000;
/**
 * An engine that has not started by then is stuck, not slow (it starts in a few seconds even
 * on a busy machine): typically a host whose own Content-Security-Policy blocks WebAssembly or
 * the WASM backend's Blob-URL threads, which hangs instead of failing. Said, not fatal: if it
 * starts after all, the message goes away.
 */
const START_TIMEOUT_MS = 30_000;

export class EngineClient {
  /** The running backend, once the worker has started it. */
  backend = $state.raw<BackendReport | null>(null);
  /** Why the engine could not start, when it could not. */
  startError = $state<string | null>(null);

  #worker: Worker | null = null;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  /** The in-flight request of each supersedable kind (or view). */
  readonly #latest = new Map<string, number>();
  readonly #options: EngineClientOptions;
  #restartTimes: number[] = [];

  constructor(options: EngineClientOptions = {}) {
    this.#options = options;
    this.#start();
  }

  loadModel(source: ModelSource, onProgress?: OnProgress): Promise<ModelInfo> {
    const transfer = source.type === 'files' ? [source.safetensors] : [];
    return this.#supersede('load-model', 'load-model', { source }, transfer, onProgress);
  }

  /** `samples`: mono 16 kHz. Its buffer is transferred: the caller's copy becomes empty. */
  transcribe(samples: Float32Array, label: string, onProgress?: OnProgress): Promise<Transcript> {
    const buffer = samples.buffer as ArrayBuffer;
    return this.#supersede('transcribe', 'transcribe', { samples: buffer, label }, [buffer], onProgress);
  }

  /**
   * Any other request. With `view`, a newer request for the same view cancels an older one
   * still queued or running (DESIGN.md §6); buffers in `transfer` are moved to the worker.
   */
  request<K extends Exclude<RequestKind, 'init' | 'cancel' | 'load-model' | 'transcribe'>>(
    kind: K,
    payload: RequestPayloads[K],
    opts: { view?: string; transfer?: Transferable[]; onProgress?: OnProgress } = {},
  ): Promise<ResultPayloads[K]> {
    if (opts.view) return this.#supersede(opts.view, kind, payload, opts.transfer ?? [], opts.onProgress);
    return this.#post(kind, payload, opts.transfer ?? [], opts.onProgress).promise;
  }

  /** Cancels the in-flight request of this kind or view, if any; its promise rejects with code 'cancelled'. */
  cancel(kind: string): void {
    const target = this.#latest.get(kind);
    if (target !== undefined) void this.#send('cancel', { target }).catch(() => undefined);
  }

  dispose(): void {
    this.#worker?.terminate();
    this.#worker = null;
    this.#failAll('The engine was shut down.', 'disposed');
  }

  #start(): void {
    const worker = new Worker(new URL('../workers/engine.worker.ts', import.meta.url), { type: 'module', name: 'earshot-engine' });
    worker.onmessage = (event: MessageEvent<EngineResponse>) => this.#receive(event.data);
    // One failure can raise several error events (e.g. from the backend's own threads):
    // only the first, from the current worker, restarts it.
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      if (this.#worker === worker) this.#restart(event.message?.replace(/^Uncaught (?:\w*Error: )?/, '') || 'the worker script failed to run');
    };
    worker.onmessageerror = () => {
      if (this.#worker === worker) this.#restart('a message from the worker could not be read');
    };
    this.#worker = worker;
    this.backend = null;
    setTimeout(() => {
      if (this.#worker !== worker || this.backend || this.startError) return;
      this.startError = `The engine has not started after ${START_TIMEOUT_MS / 1000} s. If this site is hosted with its own Content-Security-Policy, it must allow WebAssembly ('wasm-unsafe-eval') and blob: workers for the engine (see the README, "Security headers"); otherwise reload the page.`;
    }, START_TIMEOUT_MS);
    this.#send('init', { backend: this.#options.backend }).then(
      (report) => {
        this.backend = report;
        this.startError = null;
      },
      (e: unknown) => {
        if (e instanceof EngineError && e.code === 'engine-restarted') return;
        this.startError = e instanceof Error ? e.message : String(e);
      },
    );
  }

  #restart(why: string): void {
    this.#worker?.terminate();
    this.#worker = null;
    const now = Date.now();
    this.#restartTimes = [...this.#restartTimes.filter((t) => now - t < RESTART_WINDOW_MS), now];
    const message = `The engine stopped unexpectedly (${why}).`;
    this.#failAll(`${message} It has been restarted; load the model again.`, 'engine-restarted');
    if (this.#restartTimes.length > MAX_RESTARTS) {
      this.backend = null;
      this.startError = `${message} It failed ${this.#restartTimes.length} times in a row; reload the page, or try another browser.`;
      return;
    }
    this.#start();
    this.#options.onRestart?.(`${message} It has been restarted; load the model again.`);
  }

  async #supersede<K extends RequestKind>(
    view: string,
    kind: K,
    payload: RequestPayloads[K],
    transfer: Transferable[],
    onProgress?: OnProgress,
  ): Promise<ResultPayloads[K]> {
    this.cancel(view);
    const { id, promise } = this.#post(kind, payload, transfer, onProgress);
    this.#latest.set(view, id);
    try {
      return await promise;
    } finally {
      if (this.#latest.get(view) === id) this.#latest.delete(view);
    }
  }

  #send<K extends RequestKind>(kind: K, payload: RequestPayloads[K]): Promise<ResultPayloads[K]> {
    return this.#post(kind, payload, []).promise;
  }

  #post<K extends RequestKind>(
    kind: K,
    payload: RequestPayloads[K],
    transfer: Transferable[],
    onProgress?: OnProgress,
  ): { id: number; promise: Promise<ResultPayloads[K]> } {
    const id = this.#nextId++;
    const promise = new Promise<ResultPayloads[K]>((resolve, reject) => {
      if (!this.#worker) {
        reject(new EngineError(this.startError ?? 'The engine is not running; reload the page.', 'not-running'));
        return;
      }
      this.#pending.set(id, { resolve: resolve as (value: never) => void, reject, onProgress });
      this.#worker.postMessage({ kind, id, payload } as EngineRequest, transfer);
    });
    return { id, promise };
  }

  #receive(message: EngineResponse): void {
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    switch (message.kind) {
      case 'progress':
        if (message.payload.backend) {
          this.backend = message.payload.backend;
          this.#options.onBackendChange?.(message.payload.backend);
        }
        pending.onProgress?.(message.payload);
        return;
      case 'result':
        this.#pending.delete(message.id);
        pending.resolve(message.payload as never);
        return;
      case 'error':
        this.#pending.delete(message.id);
        pending.reject(new EngineError(message.payload.message, message.payload.code));
        return;
      default: {
        const never: never = message;
        console.warn('Earshot: unknown message from the engine', never);
      }
    }
  }

  #failAll(message: string, code: string): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#latest.clear();
    for (const p of pending) p.reject(new EngineError(message, code));
  }
}
