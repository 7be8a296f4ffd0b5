/**
 * Whisper (encoder–decoder) in TensorFlow.js with a named hook point at every
 * intermediate value (DESIGN.md §3). Mirrors Hugging Face
 * WhisperForConditionalGeneration; tensors carry a leading batch axis.
 *
 * A block's forward fits on a screen and reads like the math:
 *   x = x + attn(ln1(x));  x = x + cross(ln2(x), encoderOut);  x = x + mlp(ln3(x))
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WhisperConfig } from './config.ts';
import { EarshotError } from './errors.ts';
import { HookSession } from './hook-session.ts';
import type { Weights } from './weights.ts';

/** Keys and values of one attention module, heads first: [batch, head, pos, d_head]. */
export type KV = {
  k: tf.Tensor4D;
  v: tf.Tensor4D;
};

export interface DecodeOptions {
  /** Self-attention keys/values of earlier positions (KV cache), one per decoder block. */
  past?: KV[];
  /** Logits only for the last position (greedy steps, sweeps): saves a [T, vocab] matmul. */
  lastOnly?: boolean;
}

export type DecodeResult = {
  /** [batch, pos, vocab], or [batch, 1, vocab] with lastOnly. */
  logits: tf.Tensor3D;
  /** Self-attention keys/values including this call's positions: the next call's `past`. */
  present: KV[];
};

const MASKED = -1e9; // added to masked scores; exp() of it is exactly 0 in float32

export class Whisper {
  readonly config: WhisperConfig;
  readonly #w: Weights;
  /** Conv filters in tfjs layout [width, in, out], derived once from HF's [out, in, width]. */
  readonly #conv1: tf.Tensor3D;
  readonly #conv2: tf.Tensor3D;
  /**
   * Linear weights as [in, out] by HF module name (`…self_attn.q_proj`), transposed
   * once at load: tfjs-wasm's fused matMul adds the bias wrongly with transposeB
   * (measured: errors of order 1), and x·W without a transpose is the faster path anyway.
   */
  readonly #linearW = new Map<string, tf.Tensor2D>();

  constructor(config: WhisperConfig, weights: Weights) {
    this.config = config;
    this.#w = weights;
    const toConv = (name: string) => {
      const w = weights.take(name) as tf.Tensor3D; // [out, in, width]
      const t = tf.transpose(w, [2, 1, 0]);
      w.dispose();
      return t;
    };
    this.#conv1 = toConv('model.encoder.conv1.weight');
    this.#conv2 = toConv('model.encoder.conv2.weight');
    for (const name of linearModules(config)) {
      const w = weights.take(`${name}.weight`) as tf.Tensor2D; // [out, in]
      this.#linearW.set(name, tf.transpose(w));
      w.dispose();
    }
  }

  dispose(): void {
    tf.dispose([this.#conv1, this.#conv2, ...this.#linearW.values()]);
    this.#linearW.clear();
    this.#w.dispose();
  }

  /** A linear module's weight in HF layout [out, in] (for lenses and analysis). */
  linearWeight(name: string): tf.Tensor2D {
    return tf.transpose(this.#linearOf(name));
  }

  #linearOf(name: string): tf.Tensor2D {
    const w = this.#linearW.get(name);
    if (!w) throw new Error(`No linear module named ${name}`);
    return w;
  }

  // ───────────────────────────── encoder ─────────────────────────────

  /** Log-mel [batch, n_mels, frames] → final encoder states [batch, pos, d] (after ln_post). */
  encode(mel: tf.Tensor3D, hooks: HookSession = new HookSession()): tf.Tensor3D {
    return tidy(() => {
      let x = this.encoderEmbed(mel, hooks);
      for (let i = 0; i < this.config.encoderLayers; i++) x = this.encoderBlock(i, x, hooks);
      return this.encoderFinal(x, hooks);
    });
  }

  /**
   * Runs encoder blocks `from`… on a residual stream given at the input of block
   * `from` (its hook_resid_pre), then ln_post. Sweeps use it to recompute only
   * what a patch can change.
   */
  encodeFrom(from: number, residPre: tf.Tensor3D, hooks: HookSession = new HookSession()): tf.Tensor3D {
    return tidy(() => {
      let x = residPre;
      for (let i = from; i < this.config.encoderLayers; i++) x = this.encoderBlock(i, x, hooks);
      return this.encoderFinal(x, hooks);
    });
  }

  encoderEmbed(mel: tf.Tensor3D, hooks: HookSession): tf.Tensor3D {
    const c = this.config;
    const frames = 2 * c.maxSourcePositions;
    if (mel.shape[1] !== c.numMelBins || mel.shape[2] !== frames) {
      throw new EarshotError(
        `The encoder expects log-mel of shape [${c.numMelBins}, ${frames}] but got [${mel.shape.slice(1)}].`,
        'bad-input',
      );
    }
    const input = hooks.at('encoder.hook_input', mel); // [B, n_mels, frames]
    const x0 = tf.transpose(input, [0, 2, 1]); // [B, frames, n_mels]
    // PyTorch pads 1 frame on each side; tfjs 'same' would pad asymmetrically at stride 2.
    const c1 = tf.conv1d(tf.pad(x0, [[0, 0], [1, 1], [0, 0]]), this.#conv1, 1, 'valid'); // [B, frames, d]
    const h1 = gelu(tf.add(c1, this.#w.get('model.encoder.conv1.bias')) as tf.Tensor3D);
    const c2 = tf.conv1d(tf.pad(h1, [[0, 0], [1, 1], [0, 0]]), this.#conv2, 2, 'valid'); // [B, pos, d]
    const h2 = gelu(tf.add(c2, this.#w.get('model.encoder.conv2.bias')));
    const embed = tf.add(h2, this.#w.get('model.encoder.embed_positions.weight')) as tf.Tensor3D; // [B, pos, d]
    return hooks.at('encoder.hook_embed', embed);
  }

  encoderBlock(i: number, x: tf.Tensor3D, hooks: HookSession): tf.Tensor3D {
    const w = `model.encoder.layers.${i}`;
    const h = `encoder.blocks.${i}`;
    const heads = this.config.encoderHeads;
    const residPre = hooks.at(`${h}.hook_resid_pre`, x); // [B, pos, d]
    const attnIn = this.#layerNorm(residPre, `${w}.self_attn_layer_norm`);
    const kv = this.#projectKV(attnIn, `${w}.self_attn`, `${h}.attn`, heads, hooks);
    const attnOut = hooks.at(`${h}.hook_attn_out`, this.#attention(attnIn, kv, `${w}.self_attn`, `${h}.attn`, heads, hooks, null));
    const residMid = hooks.at(`${h}.hook_resid_mid`, tf.add(residPre, attnOut) as tf.Tensor3D);
    const mlpOut = hooks.at(`${h}.hook_mlp_out`, this.#mlp(this.#layerNorm(residMid, `${w}.final_layer_norm`), w, `${h}.mlp`, hooks));
    return hooks.at(`${h}.hook_resid_post`, tf.add(residMid, mlpOut) as tf.Tensor3D);
  }

  encoderFinal(x: tf.Tensor3D, hooks: HookSession): tf.Tensor3D {
    return hooks.at('encoder.hook_ln_post', this.#layerNorm(x, 'model.encoder.layer_norm'));
  }

  // ───────────────────────────── decoder ─────────────────────────────

  /**
   * Cross-attention keys/values of every decoder block from the encoder output:
   * computed once per clip and reused by every decoding step and every decoder patch.
   */
  crossKV(encoderOut: tf.Tensor3D, hooks: HookSession = new HookSession()): KV[] {
    return tidy(() => {
      const kvs: KV[] = [];
      for (let i = 0; i < this.config.decoderLayers; i++) {
        kvs.push(this.#projectKV(encoderOut, `model.decoder.layers.${i}.encoder_attn`, `decoder.blocks.${i}.cross_attn`, this.config.decoderHeads, hooks));
      }
      return kvs;
    });
  }

  /**
   * Decoder pass over `tokens` [batch, T] (int32) placed after `past` positions.
   * Teacher forcing is one call with the whole prefix; greedy decoding feeds one token at a time.
   */
  decode(tokens: tf.Tensor2D, cross: KV[], hooks: HookSession = new HookSession(), opts: DecodeOptions = {}): DecodeResult {
    return tidy(() => {
      const offset = opts.past?.[0]?.k.shape[2] ?? 0;
      let x = this.decoderEmbed(tokens, offset, hooks);
      const present: KV[] = [];
      for (let i = 0; i < this.config.decoderLayers; i++) {
        const out = this.decoderBlock(i, x, cross[i], hooks, opts.past?.[i]);
        x = out.x;
        present.push(out.present);
      }
      return { logits: this.unembed(x, hooks, opts.lastOnly ?? false), present };
    });
  }

  /**
   * Teacher-forced decoder pass that starts at block `from`, given the residual stream at
   * its input (hook_resid_pre; `from` = decoderLayers means only the final LN and
   * unembedding). Decoder patches use it to skip the blocks they cannot change.
   */
  decodeFrom(from: number, residPre: tf.Tensor3D, cross: KV[], hooks: HookSession = new HookSession(), lastOnly = false): tf.Tensor3D {
    return tidy(() => {
      let x = residPre;
      for (let i = from; i < this.config.decoderLayers; i++) x = this.decoderBlock(i, x, cross[i], hooks).x;
      return this.unembed(x, hooks, lastOnly);
    });
  }

  decoderEmbed(tokens: tf.Tensor2D, offset: number, hooks: HookSession): tf.Tensor3D {
    const T = tokens.shape[1];
    const c = this.config;
    if (offset + T > c.maxTargetPositions) {
      throw new EarshotError(`The decoder holds at most ${c.maxTargetPositions} tokens; this pass needs ${offset + T}.`, 'too-long');
    }
    const tok = tf.gather(this.#w.get('model.decoder.embed_tokens.weight'), tokens) as tf.Tensor3D; // [B, T, d]
    const pos = tf.slice(this.#w.get('model.decoder.embed_positions.weight'), [offset, 0], [T, c.dModel]); // [T, d]
    return hooks.at('decoder.hook_embed', tf.add(tok, pos) as tf.Tensor3D);
  }

  decoderBlock(i: number, x: tf.Tensor3D, cross: KV, hooks: HookSession, past?: KV): { x: tf.Tensor3D; present: KV } {
    const w = `model.decoder.layers.${i}`;
    const h = `decoder.blocks.${i}`;
    const heads = this.config.decoderHeads;
    const residPre = hooks.at(`${h}.hook_resid_pre`, x); // [B, T, d]
    const selfIn = this.#layerNorm(residPre, `${w}.self_attn_layer_norm`);
    const fresh = this.#projectKV(selfIn, `${w}.self_attn`, `${h}.self_attn`, heads, hooks);
    const present = past ? { k: tf.concat([past.k, fresh.k], 2) as tf.Tensor4D, v: tf.concat([past.v, fresh.v], 2) as tf.Tensor4D } : fresh;
    const mask = causalMask(x.shape[1], present.k.shape[2]);
    const selfOut = hooks.at(`${h}.hook_self_attn_out`, this.#attention(selfIn, present, `${w}.self_attn`, `${h}.self_attn`, heads, hooks, mask));
    const residMid = hooks.at(`${h}.hook_resid_mid`, tf.add(residPre, selfOut) as tf.Tensor3D);
    const crossIn = this.#layerNorm(residMid, `${w}.encoder_attn_layer_norm`);
    const crossOut = hooks.at(`${h}.hook_cross_attn_out`, this.#attention(crossIn, cross, `${w}.encoder_attn`, `${h}.cross_attn`, heads, hooks, null));
    const residMidCross = hooks.at(`${h}.hook_resid_mid_cross`, tf.add(residMid, crossOut) as tf.Tensor3D);
    const mlpOut = hooks.at(`${h}.hook_mlp_out`, this.#mlp(this.#layerNorm(residMidCross, `${w}.final_layer_norm`), w, `${h}.mlp`, hooks));
    return { x: hooks.at(`${h}.hook_resid_post`, tf.add(residMidCross, mlpOut) as tf.Tensor3D), present };
  }

  /** Final LayerNorm and the tied unembedding → logits [B, T, vocab]. */
  unembed(x: tf.Tensor3D, hooks: HookSession, lastOnly = false): tf.Tensor3D {
    const lnFinal = hooks.at('decoder.hook_ln_final', this.#layerNorm(x, 'model.decoder.layer_norm')); // [B, T, d]
    const [B, T, d] = lnFinal.shape;
    const rows = lastOnly ? tf.slice(lnFinal, [0, T - 1, 0], [B, 1, d]) : lnFinal;
    const logits = tf.matMul(tf.reshape(rows, [-1, d]), this.#w.get('proj_out.weight'), false, true); // [B*T, vocab]
    const shaped = tf.reshape(logits, [B, lastOnly ? 1 : T, this.config.vocabSize]) as tf.Tensor3D;
    // With lastOnly the hook sees only the last row; patches on hook_logits expect the full shape otherwise.
    return hooks.at('hook_logits', shaped);
  }

  // ───────────────────────────── pieces ─────────────────────────────

  #linear(x: tf.Tensor3D, name: string, bias = true): tf.Tensor3D {
    const [B, T, din] = x.shape;
    const W = this.#linearOf(name); // [in, out]
    const y = tf.fused.matMul({
      a: tf.reshape(x, [B * T, din]),
      b: W,
      bias: bias ? this.#w.get(`${name}.bias`) : undefined,
    }); // [B*T, out]
    return tf.reshape(y, [B, T, W.shape[1]]);
  }

  #layerNorm(x: tf.Tensor3D, name: string): tf.Tensor3D {
    const { mean, variance } = tf.moments(x, -1, true);
    const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.config.layerNormEps)));
    return tf.add(tf.mul(normed, this.#w.get(`${name}.weight`)), this.#w.get(`${name}.bias`));
  }

  #mlp(x: tf.Tensor3D, w: string, h: string, hooks: HookSession): tf.Tensor3D {
    const pre = hooks.at(`${h}.hook_pre`, this.#linear(x, `${w}.fc1`)); // [B, pos, d_mlp]
    const post = hooks.at(`${h}.hook_post`, gelu(pre));
    return this.#linear(post, `${w}.fc2`); // [B, pos, d]
  }

  /** Key/value projections, hooked per head, returned heads-first for the attention product. */
  #projectKV(x: tf.Tensor3D, w: string, h: string, heads: number, hooks: HookSession): KV {
    const k = hooks.at(`${h}.hook_k`, splitHeads(this.#linear(x, `${w}.k_proj`, false), heads)); // [B, S, H, dh]
    const v = hooks.at(`${h}.hook_v`, splitHeads(this.#linear(x, `${w}.v_proj`), heads)); // [B, S, H, dh]
    return { k: tf.transpose(k, [0, 2, 1, 3]), v: tf.transpose(v, [0, 2, 1, 3]) }; // [B, H, S, dh]
  }

  /** softmax(q·kᵀ/√dh + mask)·v, then the output projection. `x` gives the queries. */
  #attention(x: tf.Tensor3D, kv: KV, w: string, h: string, heads: number, hooks: HookSession, mask: tf.Tensor2D | null): tf.Tensor3D {
    const [, T, d] = x.shape;
    const dHead = d / heads;
    const q = hooks.at(`${h}.hook_q`, splitHeads(this.#linear(x, `${w}.q_proj`), heads)); // [B, T, H, dh]
    const qh = tf.mul(tf.transpose(q, [0, 2, 1, 3]), 1 / Math.sqrt(dHead)); // [B, H, T, dh]
    let scores = headMatMul(qh, kv.k, true); // [B, H, T, S]
    if (mask) scores = tf.add(scores, mask);
    const pattern = hooks.at(`${h}.hook_pattern`, tf.softmax(scores)); // [B, H, T, S]
    const zh = headMatMul(pattern, kv.v, false); // [B, H, T, dh]
    const z = hooks.at(`${h}.hook_z`, tf.transpose(zh, [0, 2, 1, 3]) as tf.Tensor4D); // [B, T, H, dh]
    // Keys/values may carry more rows than the queries (patched variants): z has the wider batch.
    return this.#linear(tf.reshape(z, [z.shape[0], T, d]), `${w}.out_proj`); // [B, T, d]
  }
}

/**
 * a·b (or a·bᵀ) per batch row and head: [B, H, M, K] × [B, H, K, N] → [B, H, M, N], where
 * either side may have one batch row shared by all of the other's (patched variants).
 * tfjs-wasm runs batched matMul and transposeB through a slow generic loop (measured on
 * whisper-tiny's encoder, 1500 positions: ~950 ms per QKᵀ, against ~30 ms for the same
 * work as six 2-D products with b transposed up front), so on wasm each head is a 2-D product.
 */
function headMatMul(a: tf.Tensor4D, b: tf.Tensor4D, transposeB: boolean): tf.Tensor4D {
  if (tf.getBackend() !== 'wasm') return tf.matMul(a, b, false, transposeB);
  const [, H, M] = a.shape;
  const B = Math.max(a.shape[0], b.shape[0]);
  const rows: tf.Tensor[] = [];
  for (let i = 0; i < B; i++) {
    const bi = b.shape[0] === 1 ? 0 : i;
    for (let j = 0; j < H; j++) {
      const ai = tf.reshape(tf.slice(a, [a.shape[0] === 1 ? 0 : i, j, 0, 0], [1, 1, -1, -1]), [M, a.shape[3]]);
      const bij = tf.reshape(tf.slice(b, [bi, j, 0, 0], [1, 1, -1, -1]), [b.shape[2], b.shape[3]]);
      rows.push(tf.matMul(ai, transposeB ? tf.transpose(bij) : bij));
    }
  }
  const N = rows[0].shape[1]!;
  return tf.reshape(tf.stack(rows), [B, H, M, N]);
}

/** HF names of every nn.Linear in the model except the tied output projection. */
function linearModules(c: WhisperConfig): string[] {
  const names: string[] = [];
  const attention = (p: string) => ['q_proj', 'k_proj', 'v_proj', 'out_proj'].map((m) => `${p}.${m}`);
  for (let i = 0; i < c.encoderLayers; i++) {
    const p = `model.encoder.layers.${i}`;
    names.push(...attention(`${p}.self_attn`), `${p}.fc1`, `${p}.fc2`);
  }
  for (let i = 0; i < c.decoderLayers; i++) {
    const p = `model.decoder.layers.${i}`;
    names.push(...attention(`${p}.self_attn`), ...attention(`${p}.encoder_attn`), `${p}.fc1`, `${p}.fc2`);
  }
  return names;
}

/** tf.tidy that keeps the scope function's return type. */
function tidy<T extends tf.TensorContainer>(fn: () => T): T {
  return tf.tidy(fn) as T;
}

/** [B, T, d] → [B, T, H, d/H] */
function splitHeads(x: tf.Tensor3D, heads: number): tf.Tensor4D {
  const [B, T, d] = x.shape;
  return tf.reshape(x, [B, T, heads, d / heads]);
}

/** Exact GELU, 0.5·x·(1 + erf(x/√2)), as torch.nn.GELU() and HF "gelu". */
export function gelu<T extends tf.Tensor>(x: T): T {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))) as T;
}

/** Additive mask for T new queries placed after S − T cached keys: query i sees keys ≤ S − T + i. */
function causalMask(T: number, S: number): tf.Tensor2D {
  const offset = S - T;
  const data = new Float32Array(T * S);
  for (let i = 0; i < T; i++) for (let j = offset + i + 1; j < S; j++) data[i * S + j] = MASKED;
  return tf.tensor2d(data, [T, S]);
}
