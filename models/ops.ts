/**
 * The hot operations of the model, dispatched to Earshot's WGSL kernels (kernels/) on the
 * WebGPU backend and to plain tfjs ops everywhere else — or everywhere, when the kernel path
 * is forced to 'tfjs'. models/whisper.ts calls only these for its linear layers, LayerNorms,
 * attention and conv stem, so both paths see the same hook points with the same values.
 *
 * Choosing the path (first that is set wins):
 *  1. `setKernelPath('tfjs' | 'custom')` (tests, benchmarks);
 *  2. the URL query `?kernels=tfjs|custom` (browser);
 *  3. the environment variable `EARSHOT_KERNELS=tfjs|custom` (Node: CLI, tests, bench), or
 *     `VITE_EARSHOT_KERNELS` in anything Vite serves or builds (browser tests, the app);
 *  4. default 'custom'.
 * 'custom' means "our kernels where the backend has them": the WGSL kernels on WebGPU; on
 * wasm, where we have no kernels of our own, a different plan of tfjs ops for attention
 * (per-head 2-D chains, see attentionPerHead); on cpu both settings run the same ops.
 *
 * Weight storage: linear weights get an f16 copy, packed two halves per 32-bit word and
 * unpacked by the matmul kernel with core WGSL (half the weight reads), when the WebGPU
 * adapter has `shader-f16` and the checkpoint itself is stored in F16, so it loses nothing;
 * an F32 checkpoint stays f32 (f16 would cost ~1e-3 relative in every activation, more than
 * the parity tolerances). `setWeightStorage('f16' | 'f32')` forces either. SwiftShader has
 * no shader-f16, so this machine runs f32 unless forced (the kernel tests force f16).
 */
import * as tf from '@tensorflow/tfjs-core';
import { AttentionProbsProgram, AttentionPVProgram, FlashAttentionProgram, attentionUniforms, type AttentionShape } from '../kernels/attention/attention.wgsl.ts';
import { ConvStemProgram } from '../kernels/conv-stem/conv-stem.wgsl.ts';
import { KVWriteProgram } from '../kernels/kv-cache/kv-write.wgsl.ts';
import { LayerNormProgram } from '../kernels/layernorm/layernorm.wgsl.ts';
import { LinearProgram, PackF16Program } from '../kernels/matmul/matmul.wgsl.ts';
import { PatchScatterProgram, type ScatterGeometry } from '../kernels/patch-scatter/patch-scatter.wgsl.ts';
import { runProgram, runProgramInto, webgpuBackend } from '../kernels/webgpu.ts';

export type KernelPath = 'custom' | 'tfjs';
export type WeightStorage = 'f32' | 'f16';

let forcedPath: KernelPath | null = null;
let forcedStorage: WeightStorage | null = null;
let adapterHasF16 = false;

/** Forces the kernel path (null: back to URL/env/default). */
export function setKernelPath(path: KernelPath | null): void {
  forcedPath = path;
}

export function kernelPath(): KernelPath {
  if (forcedPath) return forcedPath;
  const fromUrl = (globalThis as { location?: { search?: string } }).location?.search;
  const q = fromUrl ? new URLSearchParams(fromUrl).get('kernels') : null;
  if (q === 'tfjs' || q === 'custom') return q;
  const env = (typeof process !== 'undefined' ? process.env?.EARSHOT_KERNELS : undefined) ?? viteEnv('VITE_EARSHOT_KERNELS');
  if (env === 'tfjs' || env === 'custom') return env;
  return 'custom';
}

function viteEnv(name: string): string | undefined {
  return (import.meta as { env?: Record<string, string | undefined> }).env?.[name];
}

/** True when the current backend runs our WGSL kernels. */
export function customKernelsActive(): boolean {
  return kernelPath() === 'custom' && webgpuBackend() !== null;
}

/** Called by models/backend.ts when a WebGPU device is created. */
export function noteAdapterF16(has: boolean): void {
  adapterHasF16 = has;
}

/** Forces f16 or f32 weight storage for models built afterwards (null: the default rule above). */
export function setWeightStorage(s: WeightStorage | null): void {
  forcedStorage = s;
}

/** Storage for the linear weights of a checkpoint (stored as F16 or not). */
export function weightStorage(checkpointIsF16 = false): WeightStorage {
  return forcedStorage ?? (adapterHasF16 && checkpointIsF16 ? 'f16' : 'f32');
}

// ───────────────────────────── linear ─────────────────────────────

/** A linear layer's weight [in, out], with an f16-packed copy [in, out/2] (int32) when stored as f16. */
export interface LinearWeight {
  w: tf.Tensor2D;
  f16?: tf.Tensor2D;
}

/** Prepares a weight for `linear` (packs an f16 copy on WebGPU when weights are stored as f16). */
export function linearWeight(w: tf.Tensor2D, checkpointIsF16 = false): LinearWeight {
  const [K, N] = w.shape;
  if (weightStorage(checkpointIsF16) !== 'f16' || !webgpuBackend() || K % 4 !== 0 || N % 4 !== 0) return { w };
  const packed = runProgram(new PackF16Program(K * N), [w], PackF16Program.uniforms(K * N), 'int32');
  const f16 = tf.reshape(packed, [K, N / 2]) as tf.Tensor2D;
  packed.dispose();
  return { w, f16 };
}

/** y = act(x·W + bias), x [B, T, in] → [B, T, out]. */
export function linear(x: tf.Tensor3D, W: LinearWeight, bias: tf.Tensor1D | null, act: 'none' | 'gelu' = 'none'): tf.Tensor3D {
  const [B, T, K] = x.shape;
  const N = W.w.shape[1];
  const x2 = tf.reshape(x, [B * T, K]);
  let y: tf.Tensor2D;
  if (customKernelsActive()) {
    const f16 = W.f16 !== undefined;
    const program = new LinearProgram(B * T, K, N, { bias: bias !== null, gelu: act === 'gelu', weights: f16 ? 'f16' : 'f32' });
    const inputs = [x2, f16 ? W.f16! : W.w, ...(bias ? [bias] : [])];
    y = runProgram<tf.Rank.R2>(program, inputs, LinearProgram.uniforms(B * T, K, N));
  } else {
    // W is [in, out]: tfjs-wasm's fused matMul adds the bias wrongly with transposeB.
    y = tf.fused.matMul({ a: x2, b: W.w, bias: bias ?? undefined }) as tf.Tensor2D;
    if (act === 'gelu') y = gelu(y) as tf.Tensor2D;
  }
  return tf.reshape(y, [B, T, N]);
}

/** x [M, K] · Wᵀ with W [N, K] (the tied unembedding: logits = ln_final · embed_tokensᵀ) → [M, N]. */
export function matMulTransposed(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const [M, K] = x.shape;
  const N = w.shape[0];
  if (customKernelsActive() && K % 4 === 0 && N % 4 === 0) {
    return runProgram(new LinearProgram(M, K, N, { bias: false, gelu: false, weights: 'f32', transposed: true }), [x, w], LinearProgram.uniforms(M, K, N));
  }
  // tfjs-wasm multiplies with transposeB through a slow generic loop: (W·xᵀ)ᵀ runs on XNNPACK,
  // and only the small x and the [N, M] result are transposed.
  if (kernelPath() === 'custom' && tf.getBackend() === 'wasm') return tf.transpose(tf.matMul(w, tf.transpose(x)));
  return tf.matMul(x, w, false, true);
}

/** Exact GELU, 0.5·x·(1 + erf(x/√2)), as torch.nn.GELU() and HF "gelu". */
export function gelu<T extends tf.Tensor>(x: T): T {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))) as T;
}

// ───────────────────────────── LayerNorm ─────────────────────────────

export function layerNorm(x: tf.Tensor3D, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor3D {
  if (customKernelsActive()) {
    const [B, T, d] = x.shape;
    const y = runProgram(new LayerNormProgram(B * T, d), [tf.reshape(x, [B * T, d]), gamma, beta], LayerNormProgram.uniforms(B * T, d, eps));
    return tf.reshape(y, [B, T, d]);
  }
  const { mean, variance } = tf.moments(x, -1, true);
  const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
  return tf.add(tf.mul(normed, gamma), beta);
}

// ───────────────────────────── conv stem ─────────────────────────────

export interface ConvStemWeights {
  /** [3, in, out] (tfjs layout) and [out] for conv1 and conv2; positions [pos, d]. */
  w1: tf.Tensor3D;
  b1: tf.Tensor1D;
  w2: tf.Tensor3D;
  b2: tf.Tensor1D;
  positions: tf.Tensor2D;
}

/** Log-mel [B, n_mels, frames] → GELU(conv2(GELU(conv1(x)))) + positions, [B, frames/2, d]. */
export function convStem(mel: tf.Tensor3D, c: ConvStemWeights): tf.Tensor3D {
  const [B, nMels, F] = mel.shape;
  const d = c.w1.shape[2];
  if (customKernelsActive()) {
    const h1 = runProgram<tf.Rank.R3>(new ConvStemProgram(B, nMels, F, d, 1, 'channels-first', false), [mel, c.w1, c.b1], ConvStemProgram.uniforms(B, nMels, F, d, 1));
    return runProgram<tf.Rank.R3>(new ConvStemProgram(B, d, F, d, 2, 'channels-last', true), [h1, c.w2, c.b2, c.positions], ConvStemProgram.uniforms(B, d, F, d, 2));
  }
  const x0 = tf.transpose(mel, [0, 2, 1]); // [B, frames, n_mels]
  // PyTorch pads 1 frame on each side; tfjs 'same' would pad asymmetrically at stride 2.
  const c1 = tf.conv1d(tf.pad(x0, [[0, 0], [1, 1], [0, 0]]), c.w1, 1, 'valid'); // [B, frames, d]
  const h1 = gelu(tf.add(c1, c.b1) as tf.Tensor3D);
  const c2 = tf.conv1d(tf.pad(h1, [[0, 0], [1, 1], [0, 0]]), c.w2, 2, 'valid'); // [B, pos, d]
  return tf.add(gelu(tf.add(c2, c.b2)), c.positions) as tf.Tensor3D;
}

// ───────────────────────────── attention ─────────────────────────────

/**
 * Keys and values of one attention module in the hook layout, positions first:
 * [batch, pos, head, d_head]. `length` (when set) is how many leading positions are filled:
 * a preallocated decoder cache holds more.
 */
export type KV = {
  k: tf.Tensor4D;
  v: tf.Tensor4D;
  length?: number;
};

export function kvLength(kv: KV): number {
  return kv.length ?? kv.k.shape[1];
}

const MASKED = -1e9; // added to masked scores; exp() of it is exactly 0 in float32

/**
 * z = softmax(q·kᵀ/√dh (+ causal mask))·v in the hook layout: q [Bq, T, H, dh] → z [B, T, H, dh]
 * (B = the widest of q's, k's and v's batch; a batch of 1 broadcasts). With `causal`, query t sees keys ≤ S − T + t.
 * `onPattern` is given only when a hook wants `hook_pattern`: it sees the probabilities
 * [B, H, T, S] and returns what z is computed from. Without it, the WebGPU path never
 * writes the pattern to memory.
 */
export function attention(q: tf.Tensor4D, kv: KV, causal: boolean, onPattern?: (p: tf.Tensor4D) => tf.Tensor4D): tf.Tensor4D {
  const [Bq, T, H, dh] = q.shape;
  const S = kvLength(kv);
  if (customKernelsActive() && dh % 4 === 0) {
    const s: AttentionShape = { Bq, Bk: kv.k.shape[0], Bv: kv.v.shape[0], T, S, Smax: kv.k.shape[1], H, dh, causal };
    if (!onPattern) return runProgram(new FlashAttentionProgram(s), [q, kv.k, kv.v], attentionUniforms(s));
    const pattern = onPattern(runProgram<tf.Rank.R4>(new AttentionProbsProgram(s), [q, kv.k], attentionUniforms(s)));
    const pv: AttentionShape = { ...s, Bq: pattern.shape[0] };
    return runProgram(new AttentionPVProgram(pv), [pattern, kv.v], attentionUniforms(pv));
  }
  const filled = (t: tf.Tensor4D) => (S === t.shape[1] ? t : tf.slice(t, [0, 0, 0, 0], [-1, S, -1, -1]));
  if (kernelPath() === 'custom' && tf.getBackend() === 'wasm' && !onPattern) return attentionPerHead(q, filled(kv.k), filled(kv.v), causal);
  const kh = tf.transpose(filled(kv.k), [0, 2, 1, 3]) as tf.Tensor4D; // [B, H, S, dh]
  const vh = tf.transpose(filled(kv.v), [0, 2, 1, 3]) as tf.Tensor4D; // [B, H, S, dh]
  const qh = tf.mul(tf.transpose(q, [0, 2, 1, 3]), 1 / Math.sqrt(dh)) as tf.Tensor4D; // [B, H, T, dh]
  let scores = headMatMul(qh, kh, true); // [B, H, T, S]
  if (causal) scores = tf.add(scores, causalMask(T, S));
  const probs = tf.softmax(scores) as tf.Tensor4D;
  const pattern = onPattern ? onPattern(probs) : probs; // [B, H, T, S]
  const zh = headMatMul(pattern, vh, false); // [B, H, T, dh]
  return tf.transpose(zh, [0, 2, 1, 3]); // [B, T, H, dh]
}

/**
 * Attention as one chain of 2-D products per (batch row, head), for tfjs-wasm (the 'custom'
 * plan there, where there is no WGSL): q_h·k_hᵀ → softmax → ·v_h stays [T, S] per head, so
 * the [B, H, T, S] scores are never stacked, sliced apart again or transposed; only z is
 * stacked. Used when no hook wants the pattern (then the tfjs path below materialises it).
 */
function attentionPerHead(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, causal: boolean): tf.Tensor4D {
  const [Bq, T, H, dh] = q.shape;
  const S = k.shape[1];
  const B = Math.max(Bq, k.shape[0], v.shape[0]);
  const qh = tf.transpose(tf.mul(q, 1 / Math.sqrt(dh)) as tf.Tensor4D, [0, 2, 1, 3]); // [Bq, H, T, dh]
  const kt = tf.transpose(k, [0, 2, 3, 1]); // [Bk, H, dh, S]
  const vh = tf.transpose(v, [0, 2, 1, 3]); // [Bv, H, S, dh]
  const mask = causal ? causalMask(T, S) : null;
  const head = (t: tf.Tensor4D, b: number, h: number) => tf.reshape(tf.slice(t, [t.shape[0] === 1 ? 0 : b, h, 0, 0], [1, 1, -1, -1]), [t.shape[2], t.shape[3]]) as tf.Tensor2D;
  const zs: tf.Tensor2D[] = [];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      let scores = tf.matMul(head(qh, b, h), head(kt, b, h)); // [T, S]
      if (mask) scores = tf.add(scores, mask);
      zs.push(tf.matMul(tf.softmax(scores), head(vh, b, h))); // [T, dh]
    }
  }
  return tf.transpose(tf.reshape(tf.stack(zs), [B, H, T, dh]), [0, 2, 1, 3]); // [B, T, H, dh]
}

/** One attention module's projections cut per head, for selfAttentionByHead (wasm). */
export interface HeadWeights {
  /** q_proj columns of each head, pre-scaled by 1/√dh: [d, dh]; and its bias, scaled: [dh]. */
  q: tf.Tensor2D[];
  qBias: tf.Tensor1D[];
  /** k_proj rows of each head (k_proj has no bias): [dh, d], so Wₖₕ·xᵀ is kₕᵀ directly. */
  kT: tf.Tensor2D[];
  v: tf.Tensor2D[];
  vBias: tf.Tensor1D[];
}

/** Cuts q/k/v projections ([in, out] layout) per head once; the caller keeps and disposes them. */
export function headWeights(q: LinearWeight, qBias: tf.Tensor1D, k: LinearWeight, v: LinearWeight, vBias: tf.Tensor1D, heads: number): HeadWeights {
  return tf.tidy(() => {
    const d = q.w.shape[0];
    const dh = q.w.shape[1] / heads;
    const scale = 1 / Math.sqrt(dh);
    const cols = (w: tf.Tensor2D, h: number) => tf.slice(w, [0, h * dh], [d, dh]) as tf.Tensor2D;
    const part = (b: tf.Tensor1D, h: number) => tf.slice(b, [h * dh], [dh]) as tf.Tensor1D;
    const range = Array.from({ length: heads }, (_, h) => h);
    return {
      q: range.map((h) => tf.mul(cols(q.w, h), scale) as tf.Tensor2D),
      qBias: range.map((h) => tf.mul(part(qBias, h), scale) as tf.Tensor1D),
      kT: range.map((h) => tf.transpose(cols(k.w, h)) as tf.Tensor2D),
      v: range.map((h) => cols(v.w, h)),
      vBias: range.map((h) => part(vBias, h)),
    };
  });
}

/** True where selfAttentionByHead is the faster plan: tfjs-wasm on the 'custom' path. */
export function byHeadSelfAttention(): boolean {
  return kernelPath() === 'custom' && tf.getBackend() === 'wasm';
}

/**
 * Non-causal self-attention of x [B, T, d] with the projections fused per head, for
 * tfjs-wasm: qₕ = x·Wqₕ/√dh, kₕᵀ = Wkₕ·xᵀ and vₕ = x·Wvₕ come out of 2-D products already
 * in the layout the next product wants, so q, k and v are never stacked, transposed or
 * sliced apart per head (measured on whisper-tiny's encoder shape: 60 ms against 83 ms per
 * layer for the projections and their reshuffling). Returns z [B, T, d] (heads side by side,
 * as splitHeads lays them out), ready for out_proj. Only when no hook wants q, k, v, z or
 * the pattern: the caller checks.
 */
export function selfAttentionByHead(x: tf.Tensor3D, w: HeadWeights): tf.Tensor3D {
  const [B, T, d] = x.shape;
  const rows: tf.Tensor2D[] = [];
  for (let b = 0; b < B; b++) {
    const xb = B === 1 ? (tf.reshape(x, [T, d]) as tf.Tensor2D) : (tf.reshape(tf.slice(x, [b, 0, 0], [1, -1, -1]), [T, d]) as tf.Tensor2D);
    const xt = tf.transpose(xb); // [d, T]
    const zs = w.q.map((wq, h) => {
      const q = tf.fused.matMul({ a: xb, b: wq, bias: w.qBias[h] }) as tf.Tensor2D; // [T, dh], scaled
      const kT = tf.matMul(w.kT[h], xt); // [dh, T]
      const v = tf.fused.matMul({ a: xb, b: w.v[h], bias: w.vBias[h] }) as tf.Tensor2D; // [T, dh]
      return tf.matMul(tf.softmax(tf.matMul(q, kT)), v); // [T, dh]
    });
    rows.push(tf.concat(zs, 1) as tf.Tensor2D); // [T, d]
  }
  return tf.reshape(B === 1 ? rows[0] : tf.stack(rows), [B, T, d]);
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

/** Additive mask for T new queries placed after S − T cached keys: query i sees keys ≤ S − T + i. */
function causalMask(T: number, S: number): tf.Tensor2D {
  const offset = S - T;
  const data = new Float32Array(T * S);
  for (let i = 0; i < T; i++) for (let j = offset + i + 1; j < S; j++) data[i * S + j] = MASKED;
  return tf.tensor2d(data, [T, S]);
}

// ───────────────────────────── KV cache ─────────────────────────────

/**
 * Writes `fresh` [B, T, H, dh] into `cache` [B, Smax, H, dh] at rows offset… in place. The
 * cache tensor must be owned by the caller (a KVCache) and never handed out as a value.
 * WebGPU: one kernel whose output binding is the cache's buffer; wasm: a copy inside the wasm
 * heap; cpu: a typed-array copy. Any other backend: not supported (callers fall back to concat).
 */
export function writeKVRows(cache: tf.Tensor4D, fresh: tf.Tensor4D, offset: number): void {
  const [B, Smax, H, dh] = cache.shape;
  const T = fresh.shape[1];
  if (fresh.shape[0] !== B || fresh.shape[2] !== H || fresh.shape[3] !== dh) throw new Error(`KV write: fresh [${fresh.shape}] does not fit cache [${cache.shape}]`);
  if (offset + T > Smax) throw new Error(`KV write: ${offset + T} rows exceed the cache's ${Smax}`);
  const row = H * dh;
  const backendName = tf.getBackend();
  if (backendName === 'webgpu') {
    runProgramInto(new KVWriteProgram(cache.shape, fresh.size), [fresh], KVWriteProgram.uniforms(fresh.size, T, Smax, row, offset), cache);
    return;
  }
  const dst = hostView(cache);
  const src = hostView(fresh);
  if (!dst || !src) throw new Error(`KV write in place is not supported on the ${backendName} backend`);
  for (let b = 0; b < B; b++) dst.set(src.subarray(b * T * row, (b + 1) * T * row), (b * Smax + offset) * row);
}

/** The live Float32Array behind a tensor on the cpu or wasm backend (not a copy), or null. */
function hostView(t: tf.Tensor): Float32Array | null {
  const backend = tf.backend() as unknown as {
    data?: { get(id: object): { values?: Float32Array } };
    dataIdMap?: { get(id: object): { memoryOffset: number } };
    wasm?: { HEAPU8: Uint8Array };
  };
  if (tf.getBackend() === 'cpu') return backend.data?.get(t.dataId)?.values ?? null;
  if (tf.getBackend() === 'wasm' && backend.dataIdMap && backend.wasm) {
    const { memoryOffset } = backend.dataIdMap.get(t.dataId);
    return new Float32Array(backend.wasm.HEAPU8.buffer, memoryOffset, t.size);
  }
  return null;
}

/** Backends on which `writeKVRows` works in place. */
export function inPlaceKVSupported(): boolean {
  return ['webgpu', 'wasm', 'cpu'].includes(tf.getBackend());
}

// ───────────────────────────── patch scatter ─────────────────────────────

/** Where a hook's positions and heads are (axes of its value without the batch axis). */
export interface PatchAxes {
  posAxis: number;
  headAxis: number | null;
}

/** One patched variant: output row `row` takes `positions` × `heads` (null = all) from the source. */
export interface ScatterRow {
  row: number;
  positions: readonly number[] | null;
  heads: readonly number[] | null;
}

/**
 * Builds `batch` patched variants of a hook value: value [1 or batch, …] with the chosen
 * positions × heads of each listed row replaced by `source` [1 or batch, …] (null: zeros).
 * Rows not listed pass the value through. Exact copies (no value + (src − value) rounding).
 */
export function patchScatter(value: tf.Tensor, source: tf.Tensor | null, batch: number, rows: readonly ScatterRow[], axes: PatchAxes): tf.Tensor {
  const shape = value.shape.slice(1);
  const nPos = shape[axes.posAxis];
  const nHead = axes.headAxis === null ? 1 : shape[axes.headAxis];
  const stride = (axis: number) => shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const rowSize = shape.reduce((a, b) => a * b, 1);
  const sel = new Int32Array(batch * (nPos + nHead));
  for (const r of rows) {
    const o = r.row * (nPos + nHead);
    for (const p of r.positions ?? range(nPos)) sel[o + p] = 1;
    for (const h of r.heads ?? range(nHead)) sel[o + nPos + h] = 1;
  }
  if (customKernelsActive()) {
    const g: ScatterGeometry = {
      B: batch,
      Bv: value.shape[0],
      Bs: source?.shape[0] ?? 1,
      rowSize,
      posStride: stride(axes.posAxis),
      nPos,
      headStride: axes.headAxis === null ? rowSize : stride(axes.headAxis),
      nHead,
    };
    const selT = tf.tensor2d(sel, [batch, nPos + nHead], 'int32');
    const inputs = source ? [value, selT, source] : [value, selT];
    return runProgram(new PatchScatterProgram([batch, ...shape], g, source === null), inputs, PatchScatterProgram.uniforms(g));
  }
  // The same choice as a boolean mask [batch, …] with size-1 axes other than positions/heads.
  const maskShape = shape.map((n, axis) => (axis === axes.posAxis || axis === axes.headAxis ? n : 1));
  const mask = new Uint8Array(batch * nPos * nHead);
  for (let b = 0; b < batch; b++) {
    for (let p = 0; p < nPos; p++) {
      for (let h = 0; h < nHead; h++) {
        const on = sel[b * (nPos + nHead) + p] && sel[b * (nPos + nHead) + nPos + h];
        // Position axis before the head axis (patterns: heads first).
        const idx = axes.headAxis !== null && axes.headAxis < axes.posAxis ? h * nPos + p : p * nHead + h;
        mask[b * nPos * nHead + idx] = on ? 1 : 0;
      }
    }
  }
  const m = tf.tensor(mask, [batch, ...maskShape], 'bool');
  const src = source ?? tf.zerosLike(value);
  const full = [batch, ...shape];
  return tf.where(tf.broadcastTo(m, full), tf.broadcastTo(src, full), tf.broadcastTo(value, full));
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
