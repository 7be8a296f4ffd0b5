/**
 * Attention in the hook layout, with no transposes: q [Bq, T, H, dh], k [Bk, Smax, H, dh], v [Bv, Smax, H, dh]
 * (positions first, as `hook_q/k/v` hold them), z [B, T, H, dh] (as `hook_z` holds it), where
 * B = max(Bq, Bk, Bv) and a batch of 1 broadcasts (patched variants share the other side).
 * Only the first `S` key rows are read (`S ≤ Smax`: a preallocated KV cache holds more rows
 * than are filled). With `causal`, query i sees keys j ≤ S − T + i (queries placed after the
 * cached keys), as the decoder's self-attention.
 *
 * Three programs:
 *  - FlashAttentionProgram: scores, mask, online softmax and the weighted sum of v in one
 *    pass over the keys, one query row per invocation; q and the accumulator live in
 *    registers (dh/4 vec4 each), so the [T, S] score matrix never reaches memory.
 *  - AttentionProbsProgram + AttentionPVProgram: used only when a hook asks for
 *    `hook_pattern` (capture or replace): the probabilities [B, H, T, S] are written out,
 *    the hook sees (and may replace) them, and z is computed from what the hook returned.
 *
 * Masked probabilities are exactly 0, like tfjs softmax of scores + (−1e9).
 */
import { i32s, type ProgramUniform, type WebGPUProgram } from '../webgpu.ts';

const WG = 64;

export interface AttentionShape {
  Bq: number;
  /** Batch of the keys and of the values: a patch may widen one and not the other. */
  Bk: number;
  Bv: number;
  T: number;
  /** Key rows in use. */
  S: number;
  /** Key rows allocated (the k/v tensors' second axis). */
  Smax: number;
  H: number;
  dh: number;
  causal: boolean;
}

function batchOut(s: AttentionShape): number {
  return Math.max(s.Bq, s.Bk, s.Bv);
}

/** Uniforms shared by the three programs, in their declared order. */
export function attentionUniforms(s: AttentionShape): ProgramUniform[] {
  return [...i32s(batchOut(s), s.Bq, s.Bk, s.Bv, s.T, s.S, s.Smax, s.H, s.causal ? s.S - s.T : -1), { type: 'float32', data: [1 / Math.sqrt(s.dh)] }];
}

const UNIFORMS = 'B : i32, Bq : i32, Bk : i32, Bv : i32, T : i32, S : i32, Smax : i32, H : i32, causalOffset : i32, scale : f32,';

/** Index helpers: row offsets (in vec4 units for q/k/v) of one (batch, position, head). */
function indexing(dh: number): string {
  const D4 = dh / 4;
  return /* wgsl */ `
    const D4 : i32 = ${D4};
    fn qRow(b : i32, t : i32, h : i32) -> i32 {
      let bq = select(b, 0, uniforms.Bq == 1);
      return ((bq * uniforms.T + t) * uniforms.H + h) * D4;
    }
    fn kRow(b : i32, j : i32, h : i32) -> i32 {
      let bk = select(b, 0, uniforms.Bk == 1);
      return ((bk * uniforms.Smax + j) * uniforms.H + h) * D4;
    }
    fn vRow(b : i32, j : i32, h : i32) -> i32 {
      let bv = select(b, 0, uniforms.Bv == 1);
      return ((bv * uniforms.Smax + j) * uniforms.H + h) * D4;
    }
    // Keys a query row may see: all S, or up to S − T + t with the causal mask.
    fn keysFor(t : i32) -> i32 {
      return select(uniforms.S, min(uniforms.S, uniforms.causalOffset + t + 1), uniforms.causalOffset >= 0);
    }
  `;
}

function checkHead(dh: number): void {
  if (dh % 4 !== 0) throw new Error(`attention kernels need d_head divisible by 4 (got ${dh})`);
}

/**
 * Query rows per invocation: each key/value row loaded is reused this many times. Measured on
 * SwiftShader in Chromium (whisper-tiny encoder self-attention, 1500 × 1500 × 6 heads × 64):
 *  v1  one row, running max updated per key: 0.38 GFLOP/s (tfjs ops: 0.16);
 *  v2  2 / 4 / 8 rows per invocation: 0.62 / 0.94 / 1.20;
 *  v3  8 rows, keys in blocks of 4 with one max update and rescale per block (this kernel):
 *      2.0 — the per-key rescale was a divergent branch over 16 vec4 accumulators.
 * Short query blocks (decoder steps) use 1 row so their few invocations still spread over the cores.
 */
export const FLASH = { rows: 8, shortRows: 1, shortBelow: 64 };

/** Keys per running-max update (see getUserCode). */
const KEY_BLOCK = 4;

export class FlashAttentionProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [1], y: [2], z: [0] };
  dispatch: [number, number, number];
  variableNames = ['Q', 'K', 'V'];
  variableComponents = [4, 4, 4];
  outputComponent = 4;
  uniforms = UNIFORMS;
  workgroupSize: [number, number, number] = [WG, 1, 1];
  readonly #dh: number;
  readonly #rows: number;

  constructor(s: AttentionShape) {
    checkHead(s.dh);
    this.#dh = s.dh;
    this.#rows = s.T >= FLASH.shortBelow ? FLASH.rows : FLASH.shortRows;
    this.outputShape = [batchOut(s), s.T, s.H, s.dh];
    this.dispatch = [Math.ceil(s.T / this.#rows / WG), s.H, batchOut(s)];
    this.shaderKey = `earshot_flash_attention_${s.dh}_${this.#rows}`;
  }

  getUserCode(): string {
    const D4 = this.#dh / 4;
    const d = Array.from({ length: D4 }, (_, i) => i);
    const R = Array.from({ length: this.#rows }, (_, r) => r);
    const U = Array.from({ length: KEY_BLOCK }, (_, u) => u);
    return /* wgsl */ `
      ${indexing(this.#dh)}
      fn main() {
        let t0 = i32(globalId.x) * ${this.#rows};
        let h = i32(globalId.y);
        let b = i32(globalId.z);
        if (t0 >= uniforms.T) { return; }
        // Rows past T repeat the last query row (never stored).
        ${R.map((r) => `let qo${r} = qRow(b, min(t0 + ${r}, uniforms.T - 1), h);`).join('\n        ')}
        ${R.map((r) => d.map((i) => `let q${r}_${i} = Q[qo${r} + ${i}] * uniforms.scale;`).join(' ')).join('\n        ')}
        ${R.map((r) => d.map((i) => `var acc${r}_${i} = vec4<f32>(0.0);`).join(' ')).join('\n        ')}
        ${R.map((r) => `var m${r} = -3.4e38; var l${r} = 0.0; let n${r} = keysFor(min(t0 + ${r}, uniforms.T - 1));`).join('\n        ')}
        let n = n${this.#rows - 1};
        // Keys in blocks of ${KEY_BLOCK}: one running-max update (and rescale) per block, not per key.
        for (var j0 = 0; j0 < n; j0 += ${KEY_BLOCK}) {
          ${U.map((u) => `let ko${u} = kRow(b, min(j0 + ${u}, n - 1), h);`).join(' ')}
          ${U.map((u) => `var s${u} : array<f32, ${this.#rows}>;`).join(' ')}
          ${U.map(
            (u) => `{
            ${d.map((i) => `let k${i} = K[ko${u} + ${i}];`).join(' ')}
            ${R.map((r) => `s${u}[${r}] = select(-3.4e38, ${d.map((i) => `dot(q${r}_${i}, k${i})`).join(' + ')}, j0 + ${u} < n${r});`).join('\n            ')}
          }`,
          ).join('\n          ')}
          ${R.map(
            (r) => `{
            let mb = max(max(${U.map((u) => `s${u}[${r}]`).slice(0, 2).join(', ')}), max(${U.map((u) => `s${u}[${r}]`).slice(2).join(', ')}));
            if (mb > m${r}) {
              let c = exp(m${r} - mb);
              l${r} = l${r} * c;
              ${d.map((i) => `acc${r}_${i} = acc${r}_${i} * c;`).join(' ')}
              m${r} = mb;
            }
            ${U.map((u) => `s${u}[${r}] = exp(s${u}[${r}] - m${r});`).join(' ')}
            l${r} = l${r} + ${U.map((u) => `s${u}[${r}]`).join(' + ')};
          }`,
          ).join('\n          ')}
          ${U.map(
            (u) => `{
            let vo = vRow(b, min(j0 + ${u}, n - 1), h);
            ${R.map((r) => `let p${r} = vec4<f32>(s${u}[${r}]);`).join(' ')}
            ${d.map((i) => `{ let v = V[vo + ${i}]; ${R.map((r) => `acc${r}_${i} = fma(p${r}, v, acc${r}_${i});`).join(' ')} }`).join('\n            ')}
          }`,
          ).join('\n          ')}
        }
        ${R.map(
          (r) => `if (t0 + ${r} < uniforms.T) {
          let inv = 1.0 / l${r};
          let zo = ((b * uniforms.T + t0 + ${r}) * uniforms.H + h) * D4;
          ${d.map((i) => `result[zo + ${i}] = acc${r}_${i} * inv;`).join(' ')}
        }`,
        ).join('\n        ')}
      }
    `;
  }
}

/** softmax(q·kᵀ·scale + mask) → pattern [B, H, T, S]; one invocation per (b, h, t) row. */
export class AttentionProbsProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [2], y: [1], z: [0] };
  dispatch: [number, number, number];
  variableNames = ['Q', 'K'];
  variableComponents = [4, 4];
  outputComponent = 1;
  uniforms = UNIFORMS;
  workgroupSize: [number, number, number] = [WG, 1, 1];
  readonly #dh: number;

  constructor(s: AttentionShape) {
    checkHead(s.dh);
    this.#dh = s.dh;
    this.outputShape = [batchOut(s), s.H, s.T, s.S];
    this.dispatch = [Math.ceil(s.T / WG), s.H, batchOut(s)];
    this.shaderKey = `earshot_attention_probs_${s.dh}`;
  }

  getUserCode(): string {
    const d = Array.from({ length: this.#dh / 4 }, (_, i) => i);
    return /* wgsl */ `
      ${indexing(this.#dh)}
      fn main() {
        let t = i32(globalId.x);
        let h = i32(globalId.y);
        let b = i32(globalId.z);
        if (t >= uniforms.T) { return; }
        let qo = qRow(b, t, h);
        ${d.map((i) => `let q${i} = Q[qo + ${i}] * uniforms.scale;`).join('\n        ')}
        let n = keysFor(t);
        let row = ((b * uniforms.H + h) * uniforms.T + t) * uniforms.S;
        // Pass 1: scores into the output row, and their max.
        var m = -3.4e38;
        for (var j = 0; j < n; j++) {
          let ko = kRow(b, j, h);
          let s = ${d.map((i) => `dot(q${i}, K[ko + ${i}])`).join(' + ')};
          result[row + j] = s;
          m = max(m, s);
        }
        // Pass 2: exponentials and their sum; pass 3: normalise. Masked keys are exactly 0.
        var l = 0.0;
        for (var j = 0; j < n; j++) {
          let e = exp(result[row + j] - m);
          result[row + j] = e;
          l = l + e;
        }
        let inv = 1.0 / l;
        for (var j = 0; j < n; j++) { result[row + j] = result[row + j] * inv; }
        for (var j = n; j < uniforms.S; j++) { result[row + j] = 0.0; }
      }
    `;
  }
}

/** z [B, T, H, dh] = pattern [Bp, H, T, S] · v [Bv, Smax, H, dh] (first S rows). */
export class AttentionPVProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [1], y: [2], z: [0] };
  dispatch: [number, number, number];
  variableNames = ['P', 'V'];
  variableComponents = [1, 4];
  outputComponent = 4;
  // Bq here is the pattern's batch (the hook may have widened it).
  uniforms = UNIFORMS;
  workgroupSize: [number, number, number] = [WG, 1, 1];
  readonly #dh: number;

  constructor(s: AttentionShape) {
    checkHead(s.dh);
    this.#dh = s.dh;
    this.outputShape = [batchOut(s), s.T, s.H, s.dh];
    this.dispatch = [Math.ceil(s.T / WG), s.H, batchOut(s)];
    this.shaderKey = `earshot_attention_pv_${s.dh}`;
  }

  getUserCode(): string {
    const d = Array.from({ length: this.#dh / 4 }, (_, i) => i);
    return /* wgsl */ `
      ${indexing(this.#dh)}
      fn main() {
        let t = i32(globalId.x);
        let h = i32(globalId.y);
        let b = i32(globalId.z);
        if (t >= uniforms.T) { return; }
        let bp = select(b, 0, uniforms.Bq == 1);
        let row = ((bp * uniforms.H + h) * uniforms.T + t) * uniforms.S;
        ${d.map((i) => `var acc${i} = vec4<f32>(0.0);`).join('\n        ')}
        // A replaced pattern may put weight anywhere: sum over every key row in use.
        for (var j = 0; j < uniforms.S; j++) {
          let p = vec4<f32>(P[row + j]);
          let vo = vRow(b, j, h);
          ${d.map((i) => `acc${i} = fma(p, V[vo + ${i}], acc${i});`).join(' ')}
        }
        let zo = ((b * uniforms.T + t) * uniforms.H + h) * D4;
        ${d.map((i) => `result[zo + ${i}] = acc${i};`).join('\n        ')}
      }
    `;
  }
}
