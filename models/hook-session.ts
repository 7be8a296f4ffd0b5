/**
 * A HookSession is what a forward pass calls at every hook point: it records the
 * values asked for and applies replacement functions (patches). The model never
 * knows why a value is recorded or replaced; that is the lab's business.
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * Replaces a hook's value. Receives and returns a tensor with the batch axis first; it may
 * turn a batch of 1 into a batch of B (patched variants stacked on the batch axis).
 */
export type HookFn = (value: tf.Tensor, name: string) => tf.Tensor;

export interface HookSpec {
  /** Hook names (or a predicate) whose values should be kept after the pass. */
  capture?: Iterable<string> | ((name: string) => boolean);
  /** Replacement functions by hook name; applied before capture, so the cache holds what flowed on. */
  replace?: ReadonlyMap<string, HookFn> | Readonly<Record<string, HookFn>>;
}

export class HookSession {
  /** Captured values, batch axis first; kept alive outside tf.tidy until `dispose()`. */
  readonly cache = new Map<string, tf.Tensor>();
  readonly #capture: (name: string) => boolean;
  readonly #replace: (name: string) => HookFn | undefined;

  constructor(spec: HookSpec = {}) {
    const c = spec.capture;
    if (c === undefined) this.#capture = () => false;
    else if (typeof c === 'function') this.#capture = c;
    else {
      const set = new Set(c);
      this.#capture = (n) => set.has(n);
    }
    const r = spec.replace;
    if (r === undefined) this.#replace = () => undefined;
    else if (r instanceof Map) this.#replace = (n) => r.get(n);
    else this.#replace = (n) => (Object.hasOwn(r, n) ? (r as Record<string, HookFn>)[n] : undefined);
  }

  /** True when this name is captured or replaced (lets the model skip optional work). */
  wants(name: string): boolean {
    return this.#capture(name) || this.#replace(name) !== undefined;
  }

  /** The hook point itself: returns the (possibly replaced) value. */
  at<T extends tf.Tensor>(name: string, value: T): T {
    const fn = this.#replace(name);
    let out = value;
    if (fn) {
      out = fn(value, name) as T;
      // A patch may widen a batch of 1 into B variants; everything downstream broadcasts.
      const batchOk = out.shape[0] === value.shape[0] || value.shape[0] === 1;
      if (!batchOk || !arraysEqual(out.shape.slice(1), value.shape.slice(1))) {
        throw new Error(`Hook ${name} replacement has shape [${out.shape}] but the model expects [${value.shape}].`);
      }
    }
    if (this.#capture(name)) {
      const old = this.cache.get(name);
      if (old) old.dispose();
      this.cache.set(name, tf.keep(out.clone()));
    }
    return out;
  }

  dispose(): void {
    for (const t of this.cache.values()) t.dispose();
    this.cache.clear();
  }
}

function arraysEqual(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
