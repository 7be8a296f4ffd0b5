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
import type { KVCache } from './kv-cache.ts';
import * as ops from './ops.ts';
import type { KV, LinearWeight } from './ops.ts';
import type { Weights } from './weights.ts';

/** Keys and values of one attention module in the hook layout [batch, pos, head, d_head]. */
export type { KV };

export interface DecodeOptions {
  /** Self-attention keys/values of earlier positions (KV cache), one per decoder block. */
  past?: KV[];
  /**
   * A preallocated self-attention cache (models/kv-cache.ts): this call's keys/values are
   * written into it in place after its `length` filled rows, instead of concatenating `past`.
   * `present` is then empty; the cache is the state.
   */
  cache?: KVCache;
  /** Logits only for the last position (greedy steps, sweeps): saves a [T, vocab] matmul. */
  lastOnly?: boolean;
}

export type DecodeResult = {
  /** [batch, pos, vocab], or [batch, 1, vocab] with lastOnly. */
  logits: tf.Tensor3D;
  /** Self-attention keys/values including this call's positions: the next call's `past` (empty with `cache`). */
  present: KV[];
};

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
   * With f16 weight storage (models/ops.ts) each also carries a packed f16 copy.
   */
  readonly #linearW = new Map<string, LinearWeight>();
  /** Encoder self-attention projections cut per head (wasm plan, models/ops.ts), made on first use. */
  readonly #headW = new Map<string, ops.HeadWeights>();

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
      this.#linearW.set(name, ops.linearWeight(tf.transpose(w), weights.storedAsF16));
      w.dispose();
    }
  }

  dispose(): void {
    tf.dispose([this.#conv1, this.#conv2, ...[...this.#linearW.values()].flatMap((l) => (l.f16 ? [l.w, l.f16] : [l.w]))]);
    tf.dispose([...this.#headW.values()].flatMap((p) => Object.values(p).flat()));
    this.#linearW.clear();
    this.#headW.clear();
    this.#w.dispose();
  }

  /** A linear module's weight in HF layout [out, in] (for lenses and analysis). */
  linearWeight(name: string): tf.Tensor2D {
    return tf.transpose(this.#linearOf(name).w);
  }

  #linearOf(name: string): LinearWeight {
    const w = this.#linearW.get(name);
    if (!w) throw new Error(`No linear module named ${name}`);
    return w;
  }

  // ───────────────────────────── encoder ─────────────────────────────

  /** Log-mel [batch, n_mels, frames] → final encoder states [batch, pos, d] (after ln_post). */
  encode(mel: tf.Tensor3D, hooks: HookSession = new HookSession()): tf.Tensor3D {
    return tidy(() => {
      let x = this.encoderEmbed(mel, hooks);
      // A tidy per block frees its intermediates as it ends: peak memory is one block's, not the stack's.
      for (let i = 0; i < this.config.encoderLayers; i++) x = tidy(() => this.encoderBlock(i, x, hooks));
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
      for (let i = from; i < this.config.encoderLayers; i++) x = tidy(() => this.encoderBlock(i, x, hooks));
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
    // GELU(conv2(GELU(conv1(x)))) + positions; PyTorch pads 1 frame on each side of both convs.
    const embed = ops.convStem(input, {
      w1: this.#conv1,
      b1: this.#w.get('model.encoder.conv1.bias') as tf.Tensor1D,
      w2: this.#conv2,
      b2: this.#w.get('model.encoder.conv2.bias') as tf.Tensor1D,
      positions: this.#w.get('model.encoder.embed_positions.weight') as tf.Tensor2D,
    }); // [B, pos, d]
    return hooks.at('encoder.hook_embed', embed);
  }

  encoderBlock(i: number, x: tf.Tensor3D, hooks: HookSession): tf.Tensor3D {
    const w = `model.encoder.layers.${i}`;
    const h = `encoder.blocks.${i}`;
    const heads = this.config.encoderHeads;
    const residPre = hooks.at(`${h}.hook_resid_pre`, x); // [B, pos, d]
    const attnIn = this.#layerNorm(residPre, `${w}.self_attn_layer_norm`);
    const attnOut = hooks.at(`${h}.hook_attn_out`, this.#encoderSelfAttention(attnIn, `${w}.self_attn`, `${h}.attn`, heads, hooks));
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
      const offset = opts.cache ? opts.cache.length : opts.past?.[0] ? ops.kvLength(opts.past[0]) : 0;
      let x = this.decoderEmbed(tokens, offset, hooks);
      const present: KV[] = [];
      for (let i = 0; i < this.config.decoderLayers; i++) {
        const out = tidy(() => this.decoderBlock(i, x, cross[i], hooks, opts.cache ? opts.cache.layer(i) : opts.past?.[i], opts.cache !== undefined));
        x = out.x;
        if (!opts.cache) present.push(out.present);
      }
      opts.cache?.advance(tokens.shape[1]);
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
      for (let i = from; i < this.config.decoderLayers; i++) x = tidy(() => this.decoderBlock(i, x, cross[i], hooks).x);
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

  /**
   * One decoder block. `past`: keys/values of earlier positions; with `inPlace` it is a
   * preallocated cache layer whose filled rows are `past.length`, and this block writes its
   * new rows into it instead of concatenating.
   */
  decoderBlock(i: number, x: tf.Tensor3D, cross: KV, hooks: HookSession, past?: KV, inPlace = false): { x: tf.Tensor3D; present: KV } {
    const w = `model.decoder.layers.${i}`;
    const h = `decoder.blocks.${i}`;
    const heads = this.config.decoderHeads;
    const residPre = hooks.at(`${h}.hook_resid_pre`, x); // [B, T, d]
    const selfIn = this.#layerNorm(residPre, `${w}.self_attn_layer_norm`);
    const fresh = this.#projectKV(selfIn, `${w}.self_attn`, `${h}.self_attn`, heads, hooks);
    const present = past ? appendKV(past, fresh, inPlace) : fresh; // [B, S, H, dh]
    const selfOut = hooks.at(`${h}.hook_self_attn_out`, this.#attention(selfIn, present, `${w}.self_attn`, `${h}.self_attn`, heads, hooks, true));
    const residMid = hooks.at(`${h}.hook_resid_mid`, tf.add(residPre, selfOut) as tf.Tensor3D);
    const crossIn = this.#layerNorm(residMid, `${w}.encoder_attn_layer_norm`);
    const crossOut = hooks.at(`${h}.hook_cross_attn_out`, this.#attention(crossIn, cross, `${w}.encoder_attn`, `${h}.cross_attn`, heads, hooks, false));
    const residMidCross = hooks.at(`${h}.hook_resid_mid_cross`, tf.add(residMid, crossOut) as tf.Tensor3D);
    const mlpOut = hooks.at(`${h}.hook_mlp_out`, this.#mlp(this.#layerNorm(residMidCross, `${w}.final_layer_norm`), w, `${h}.mlp`, hooks));
    return { x: hooks.at(`${h}.hook_resid_post`, tf.add(residMidCross, mlpOut) as tf.Tensor3D), present };
  }

  /** Final LayerNorm and the tied unembedding → logits [B, T, vocab]. */
  unembed(x: tf.Tensor3D, hooks: HookSession, lastOnly = false): tf.Tensor3D {
    const lnFinal = hooks.at('decoder.hook_ln_final', this.#layerNorm(x, 'model.decoder.layer_norm')); // [B, T, d]
    const [B, T, d] = lnFinal.shape;
    const rows = lastOnly ? tf.slice(lnFinal, [0, T - 1, 0], [B, 1, d]) : lnFinal;
    const logits = ops.matMulTransposed(tf.reshape(rows, [-1, d]), this.#w.get('proj_out.weight') as tf.Tensor2D); // [B*T, vocab]
    const shaped = tf.reshape(logits, [B, lastOnly ? 1 : T, this.config.vocabSize]) as tf.Tensor3D;
    // With lastOnly the hook sees only the last row; patches on hook_logits expect the full shape otherwise.
    return hooks.at('hook_logits', shaped);
  }

  // ───────────────────────────── pieces ─────────────────────────────

  #linear(x: tf.Tensor3D, name: string, bias = true, act: 'none' | 'gelu' = 'none'): tf.Tensor3D {
    return ops.linear(x, this.#linearOf(name), bias ? (this.#w.get(`${name}.bias`) as tf.Tensor1D) : null, act); // [B, T, out]
  }

  #layerNorm(x: tf.Tensor3D, name: string): tf.Tensor3D {
    return ops.layerNorm(x, this.#w.get(`${name}.weight`), this.#w.get(`${name}.bias`), this.config.layerNormEps);
  }

  #mlp(x: tf.Tensor3D, w: string, h: string, hooks: HookSession): tf.Tensor3D {
    // fc1 and GELU fuse into one kernel unless a hook wants fc1's own output.
    const post = hooks.wants(`${h}.hook_pre`)
      ? hooks.at(`${h}.hook_post`, ops.gelu(hooks.at(`${h}.hook_pre`, this.#linear(x, `${w}.fc1`)))) // [B, pos, d_mlp]
      : hooks.at(`${h}.hook_post`, this.#linear(x, `${w}.fc1`, true, 'gelu'));
    return this.#linear(post, `${w}.fc2`); // [B, pos, d]
  }

  /** Key/value projections, hooked per head; the attention reads them in this layout. */
  #projectKV(x: tf.Tensor3D, w: string, h: string, heads: number, hooks: HookSession): KV {
    const k = hooks.at(`${h}.hook_k`, splitHeads(this.#linear(x, `${w}.k_proj`, false), heads)); // [B, S, H, dh]
    const v = hooks.at(`${h}.hook_v`, splitHeads(this.#linear(x, `${w}.v_proj`), heads)); // [B, S, H, dh]
    return { k, v };
  }

  /** An encoder block's self-attention; on wasm, with no hook inside it, projected per head. */
  #encoderSelfAttention(x: tf.Tensor3D, w: string, h: string, heads: number, hooks: HookSession): tf.Tensor3D {
    const inside = ['hook_q', 'hook_k', 'hook_v', 'hook_z', 'hook_pattern'].some((n) => hooks.wants(`${h}.${n}`));
    if (inside || !ops.byHeadSelfAttention()) return this.#attention(x, this.#projectKV(x, w, h, heads, hooks), w, h, heads, hooks, false);
    let byHead = this.#headW.get(w);
    if (!byHead) {
      const bias = (m: string) => this.#w.get(`${w}.${m}.bias`) as tf.Tensor1D;
      byHead = ops.headWeights(this.#linearOf(`${w}.q_proj`), bias('q_proj'), this.#linearOf(`${w}.k_proj`), this.#linearOf(`${w}.v_proj`), bias('v_proj'), heads);
      // Made inside the caller's tidy, kept for the model's lifetime (disposed with it).
      for (const t of Object.values(byHead).flat()) tf.keep(t);
      this.#headW.set(w, byHead);
    }
    return this.#linear(ops.selfAttentionByHead(x, byHead), `${w}.out_proj`);
  }

  /** softmax(q·kᵀ/√dh (+ causal mask))·v, then the output projection. `x` gives the queries. */
  #attention(x: tf.Tensor3D, kv: KV, w: string, h: string, heads: number, hooks: HookSession, causal: boolean): tf.Tensor3D {
    const [, T, d] = x.shape;
    const q = hooks.at(`${h}.hook_q`, splitHeads(this.#linear(x, `${w}.q_proj`), heads)); // [B, T, H, dh]
    // The pattern [B, H, T, S] is only materialised when a hook captures or replaces it.
    const onPattern = hooks.wants(`${h}.hook_pattern`) ? (p: tf.Tensor4D) => hooks.at(`${h}.hook_pattern`, p) : undefined;
    const z = hooks.at(`${h}.hook_z`, ops.attention(q, kv, causal, onPattern)); // [B, T, H, dh]
    // Keys/values may carry more rows than the queries (patched variants): z has the wider batch.
    return this.#linear(tf.reshape(z, [z.shape[0], T, d]), `${w}.out_proj`); // [B, T, d]
  }
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
export const gelu = ops.gelu;

/**
 * Self-attention keys/values after this step: `past` plus `fresh` along positions. In place,
 * `past` is a preallocated cache layer and the new rows are written into it (no allocation).
 */
function appendKV(past: KV, fresh: KV, inPlace: boolean): KV {
  if (!inPlace) return { k: tf.concat([past.k, fresh.k], 1) as tf.Tensor4D, v: tf.concat([past.v, fresh.v], 1) as tf.Tensor4D };
  const filled = ops.kvLength(past);
  ops.writeKVRows(past.k, fresh.k, filled);
  ops.writeKVRows(past.v, fresh.v, filled);
  return { k: past.k, v: past.v, length: filled + fresh.k.shape[1] };
}
