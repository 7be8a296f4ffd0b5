/**
 * A preallocated decoder self-attention cache: per block, keys and values [B, maxLen, H, dh]
 * allocated once, each decoding step writing its new rows in place (models/ops.ts
 * writeKVRows) and the attention reading only the filled rows. Nothing grows or is copied
 * per token, unlike concatenating `past` with each step's keys (O(T²) copying over a decode).
 *
 * In-place writes work on webgpu, wasm and cpu; elsewhere `KVCache.supported()` is false and
 * callers use `past`/`present`.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WhisperConfig } from './config.ts';
import { inPlaceKVSupported, type KV } from './ops.ts';

export class KVCache {
  readonly maxLength: number;
  #length = 0;
  readonly #layers: { k: tf.Tensor4D; v: tf.Tensor4D }[];

  constructor(c: WhisperConfig, batch = 1, maxLength = c.maxTargetPositions) {
    const dh = c.dModel / c.decoderHeads;
    this.maxLength = maxLength;
    this.#layers = Array.from({ length: c.decoderLayers }, () => ({
      k: tf.keep(tf.zeros([batch, maxLength, c.decoderHeads, dh])) as tf.Tensor4D,
      v: tf.keep(tf.zeros([batch, maxLength, c.decoderHeads, dh])) as tf.Tensor4D,
    }));
  }

  static supported(): boolean {
    return inPlaceKVSupported();
  }

  /** Positions filled so far (the next token's position). */
  get length(): number {
    return this.#length;
  }

  /** Block i's cache with its filled length (what the decoder block appends to). */
  layer(i: number): KV {
    return { ...this.#layers[i], length: this.#length };
  }

  /** Called by the decoder after every block has written `n` new rows. */
  advance(n: number): void {
    if (this.#length + n > this.maxLength) throw new Error(`KV cache overflow: ${this.#length + n} > ${this.maxLength}`);
    this.#length += n;
  }

  /** Forgets the filled rows (the buffers are reused). */
  reset(): void {
    this.#length = 0;
  }

  dispose(): void {
    for (const { k, v } of this.#layers) tf.dispose([k, v]);
    this.#layers.length = 0;
  }
}
