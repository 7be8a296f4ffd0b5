/**
 * Linear layer with a fused epilogue: y = act(x·W + bias), x [M, K], W [K, N] (pre-transposed
 * at load, as models/whisper.ts keeps it), bias [N], act ∈ {identity, erf-GELU}.
 *
 * Version history (measured on SwiftShader in Chromium, [1500,384]×[384,1536]; see
 * docs/benchmarks.md for the current figures):
 *  v1  tfjs's MatMulPacked (shared-memory tiles + workgroupBarrier): the baseline.
 *  v2  this kernel: no shared memory and no barriers (SwiftShader runs a workgroup's
 *      invocations as coroutines, so every barrier is a context switch); each invocation
 *      keeps a ROWS × (4·COLS) tile in registers, reads x as vec4 along K and W as vec4
 *      along N, and applies bias and GELU before its only store.
 *
 * Weights in f16 storage: W packed two halves per u32 ([K, N/2] int32), unpacked with
 * `unpack2x16float` — core WGSL, so it runs on any adapter; it halves weight traffic and
 * memory. Arithmetic stays f32.
 *
 * The vec4 path needs K % 4 == 0 and N % 4 == 0 (every Whisper size); other shapes take the
 * scalar variant (same tiling, one column per invocation), which tests exercise with 1, 7, ….
 */
import { GELU_WGSL, i32s, type ProgramUniform, type WebGPUProgram } from '../webgpu.ts';

export type WeightStorage = 'f32' | 'f16';

export interface MatMulOptions {
  bias: boolean;
  gelu: boolean;
  weights: WeightStorage;
  /** W stored [N, K] (y = x·Wᵀ): the tied unembedding, whose [vocab, d] table is also the token embedding. */
  transposed?: boolean;
}

/** Rows of x per invocation and vec4 columns per invocation (the register tile). */
export const TILE = { rows: 4, cols: 1, wg: [16, 4, 1] as [number, number, number] };

export class LinearProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [1], y: [0] };
  dispatch: [number, number, number];
  variableNames: string[];
  variableComponents: number[];
  outputComponent: number;
  uniforms = 'M : i32, K : i32, N : i32,';
  workgroupSize: [number, number, number];
  readonly #opts: MatMulOptions;
  readonly #vec4: boolean;
  readonly #rows: number;
  readonly #cols: number;

  constructor(M: number, K: number, N: number, opts: MatMulOptions) {
    this.#opts = opts;
    this.#rows = TILE.rows;
    this.#cols = TILE.cols;
    this.workgroupSize = TILE.wg;
    const WG = TILE.wg;
    this.#vec4 = K % 4 === 0 && N % 4 === 0;
    if (opts.weights === 'f16' && !this.#vec4) throw new Error('f16 weight storage needs K and N divisible by 4');
    if (opts.transposed && (opts.weights === 'f16' || !this.#vec4)) throw new Error('transposed weights: f32 storage and K, N divisible by 4 only');
    this.outputShape = [M, N];
    this.variableNames = opts.bias ? ['X', 'W', 'Bias'] : ['X', 'W'];
    const wComp = opts.weights === 'f16' ? 2 : 4; // two u32 words hold four halves
    this.variableComponents = this.#vec4 ? (opts.bias ? [4, wComp, 4] : [4, wComp]) : opts.bias ? [1, 1, 1] : [1, 1];
    this.outputComponent = this.#vec4 ? 4 : 1;
    const colsPerInvocation = opts.transposed ? 4 : this.#vec4 ? 4 * this.#cols : 1;
    this.dispatch = [Math.ceil(N / colsPerInvocation / WG[0]), Math.ceil(M / this.#rows / WG[1]), 1];
    this.shaderKey = `earshot_linear${opts.transposed ? '_t' : ''}_${this.#rows}x${this.#cols}_${WG.join('.')}_${this.#vec4 ? 'v4' : 's'}_${opts.bias ? 'b' : 'nb'}_${opts.gelu ? 'gelu' : 'id'}_${opts.weights}`;
  }

  static uniforms(M: number, K: number, N: number): ProgramUniform[] {
    return i32s(M, K, N);
  }

  getUserCode(): string {
    if (this.#opts.transposed) return this.#transposedCode();
    return this.#vec4 ? this.#vec4Code() : this.#scalarCode();
  }

  /** y[m, n] = Σ_k x[m, k]·W[n, k]: rows of W are contiguous along K, so each output is a chain of vec4 dots. */
  #transposedCode(): string {
    const { bias, gelu } = this.#opts;
    const rows = Array.from({ length: this.#rows }, (_, r) => r);
    const cols = [0, 1, 2, 3];
    return /* wgsl */ `
      ${GELU_WGSL}
      fn main() {
        let K4 = uniforms.K / 4;
        let N4 = uniforms.N / 4;
        let c4 = i32(globalId.x);
        let row0 = i32(globalId.y) * ${this.#rows};
        if (c4 >= N4 || row0 >= uniforms.M) { return; }
        ${rows.map((r) => `let xr${r} = min(row0 + ${r}, uniforms.M - 1) * K4;`).join('\n        ')}
        ${cols.map((j) => `let wr${j} = (c4 * 4 + ${j}) * K4;`).join('\n        ')}
        ${rows.map((r) => `var acc${r} = vec4<f32>(0.0);`).join('\n        ')}
        for (var k4 = 0; k4 < K4; k4++) {
          ${cols.map((j) => `let w${j} = W[wr${j} + k4];`).join(' ')}
          ${rows.map((r) => `{ let x = X[xr${r} + k4]; acc${r} = acc${r} + vec4<f32>(dot(x, w0), dot(x, w1), dot(x, w2), dot(x, w3)); }`).join('\n          ')}
        }
        let b = ${bias ? 'Bias[c4]' : 'vec4<f32>(0.0)'};
        ${rows.map((r) => `if (row0 + ${r} < uniforms.M) { result[(row0 + ${r}) * N4 + c4] = ${gelu ? `gelu4(acc${r} + b)` : `acc${r} + b`}; }`).join('\n        ')}
      }
    `;
  }

  #vec4Code(): string {
    const { bias, gelu, weights } = this.#opts;
    // W row k, vec4 column c: four consecutive outputs' weights.
    const loadW =
      weights === 'f16'
        ? `fn loadW(k : i32, c : i32) -> vec4<f32> {
             let p = W[k * (uniforms.N / 4) + c];
             return vec4<f32>(unpack2x16float(bitcast<u32>(p.x)), unpack2x16float(bitcast<u32>(p.y)));
           }`
        : `fn loadW(k : i32, c : i32) -> vec4<f32> { return W[k * (uniforms.N / 4) + c]; }`;
    const ROWS = this.#rows;
    const COLS = this.#cols;
    const rows = Array.from({ length: ROWS }, (_, r) => r);
    const cols = Array.from({ length: COLS }, (_, c) => c);
    return /* wgsl */ `
      ${GELU_WGSL}
      ${loadW}
      fn main() {
        let K4 = uniforms.K / 4;
        let N4 = uniforms.N / 4;
        let col0 = i32(globalId.x) * ${COLS};
        let row0 = i32(globalId.y) * ${ROWS};
        if (col0 >= N4 || row0 >= uniforms.M) { return; }
        // Rows past M repeat the last row (their results are never stored).
        ${rows.map((r) => `let xr${r} = min(row0 + ${r}, uniforms.M - 1) * K4;`).join('\n        ')}
        // Columns past N read column N4 - 1 (never stored).
        ${cols.map((c) => `let wc${c} = min(col0 + ${c}, N4 - 1);`).join('\n        ')}
        ${rows.flatMap((r) => cols.map((c) => `var acc${r}_${c} = vec4<f32>(0.0);`)).join('\n        ')}
        for (var k4 = 0; k4 < K4; k4++) {
          ${rows.map((r) => `let x${r} = X[xr${r} + k4];`).join('\n          ')}
          let k = k4 * 4;
          ${[0, 1, 2, 3]
            .map((j) => {
              const comp = 'xyzw'[j];
              return cols
                .map((c) => `{ let w = loadW(k + ${j}, wc${c}); ${rows.map((r) => `acc${r}_${c} = fma(vec4<f32>(x${r}.${comp}), w, acc${r}_${c});`).join(' ')} }`)
                .join('\n          ');
            })
            .join('\n          ')}
        }
        ${cols
          .map(
            (c) => `if (col0 + ${c} < N4) {
          ${bias ? `let b${c} = Bias[col0 + ${c}];` : `let b${c} = vec4<f32>(0.0);`}
          ${rows.map((r) => `if (row0 + ${r} < uniforms.M) { result[(row0 + ${r}) * N4 + col0 + ${c}] = ${gelu ? `gelu4(acc${r}_${c} + b${c})` : `acc${r}_${c} + b${c}`}; }`).join('\n          ')}
        }`,
          )
          .join('\n        ')}
      }
    `;
  }

  #scalarCode(): string {
    const { bias, gelu } = this.#opts;
    const ROWS = this.#rows;
    const rows = Array.from({ length: ROWS }, (_, r) => r);
    return /* wgsl */ `
      ${GELU_WGSL}
      fn main() {
        let col = i32(globalId.x);
        let row0 = i32(globalId.y) * ${ROWS};
        if (col >= uniforms.N || row0 >= uniforms.M) { return; }
        ${rows.map((r) => `let xr${r} = min(row0 + ${r}, uniforms.M - 1) * uniforms.K;`).join('\n        ')}
        ${rows.map((r) => `var acc${r} = 0.0;`).join('\n        ')}
        for (var k = 0; k < uniforms.K; k++) {
          let w = W[k * uniforms.N + col];
          ${rows.map((r) => `acc${r} = fma(X[xr${r} + k], w, acc${r});`).join('\n          ')}
        }
        let b = ${bias ? 'Bias[col]' : '0.0'};
        ${rows.map((r) => `if (row0 + ${r} < uniforms.M) { result[(row0 + ${r}) * uniforms.N + col] = ${gelu ? `gelu_f32(acc${r} + b)` : `acc${r} + b`}; }`).join('\n        ')}
      }
    `;
  }
}

/** Packs float32 weights [K, N] as f16 pairs in int32 words [K, N/2] (round to nearest even). */
export function packF16(w: Float32Array): Int32Array {
  if (w.length % 2 !== 0) throw new Error('packF16 needs an even number of values');
  const out = new Int32Array(w.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = (toHalf(w[2 * i]) | (toHalf(w[2 * i + 1]) << 16)) | 0;
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits of a float32, rounded to nearest even (overflow → ±inf, tiny → subnormal/0). */
export function toHalf(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, which is the correct rounding (up to inf).
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** float32 value of IEEE half bits (for references and tolerances). */
export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Packs float32 values into f16 pairs on the device: result[i] = pack2x16float(x[2i], x[2i+1]) as int32. */
export class PackF16Program implements WebGPUProgram {
  outputShape: number[];
  shaderKey = 'earshot_pack_f16';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  variableNames = ['X'];
  variableComponents = [2];
  outputComponent = 1;
  uniforms = 'pairs : i32,';
  workgroupSize: [number, number, number] = [256, 1, 1];

  constructor(n: number) {
    if (n % 2 !== 0) throw new Error('f16 packing needs an even number of values');
    this.outputShape = [n / 2];
    this.dispatch = [Math.ceil(n / 2 / 256), 1, 1];
  }

  static uniforms(n: number): ProgramUniform[] {
    return i32s(n / 2);
  }

  getUserCode(): string {
    return /* wgsl */ `
      fn main(index : i32) {
        if (index >= uniforms.pairs) { return; }
        result[index] = bitcast<i32>(pack2x16float(X[index]));
      }
    `;
  }
}
