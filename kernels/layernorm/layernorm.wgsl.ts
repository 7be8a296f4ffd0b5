/**
 * LayerNorm over the last axis: y = (x − mean) / √(var + eps) · γ + β, x [rows, d].
 * One invocation per row, three passes over the row (mean, centred variance, write): the
 * two-pass variance matches tfjs's moments() and PyTorch to float32 rounding, where the
 * one-pass E[x²] − E[x]² loses digits on rows with a large mean (residual streams do).
 * No shared memory or barriers (see kernels/matmul on SwiftShader). d % 4 == 0 reads vec4.
 */
import { i32s, type ProgramUniform, type WebGPUProgram } from '../webgpu.ts';

const WG = 64;

export class LayerNormProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  variableNames = ['X', 'Gamma', 'Beta'];
  variableComponents: number[];
  outputComponent: number;
  uniforms = 'rows : i32, d : i32, eps : f32,';
  workgroupSize: [number, number, number] = [WG, 1, 1];
  readonly #c: number;

  constructor(rows: number, d: number) {
    this.#c = d % 4 === 0 ? 4 : 1;
    this.variableComponents = [this.#c, this.#c, this.#c];
    this.outputComponent = this.#c;
    this.outputShape = [rows, d];
    this.dispatch = [Math.ceil(rows / WG), 1, 1];
    this.shaderKey = `earshot_layernorm_${this.#c}`;
  }

  static uniforms(rows: number, d: number, eps: number): ProgramUniform[] {
    return [...i32s(rows, d), { type: 'float32', data: [eps] }];
  }

  getUserCode(): string {
    const c = this.#c;
    const T = c === 4 ? 'vec4<f32>' : 'f32';
    const sum = c === 4 ? (v: string) => `dot(${v}, vec4<f32>(1.0))` : (v: string) => v;
    return /* wgsl */ `
      fn main(row : i32) {
        if (row >= uniforms.rows) { return; }
        let n = uniforms.d / ${c};
        let o = row * n;
        var s = ${T}(0.0);
        for (var i = 0; i < n; i++) { s = s + X[o + i]; }
        let mean = ${sum('s')} / f32(uniforms.d);
        var q = ${T}(0.0);
        for (var i = 0; i < n; i++) { let e = X[o + i] - mean; q = fma(e, e, q); }
        let inv = inverseSqrt(${sum('q')} / f32(uniforms.d) + uniforms.eps);
        for (var i = 0; i < n; i++) { result[o + i] = fma((X[o + i] - mean) * inv, Gamma[i], Beta[i]); }
      }
    `;
  }
}
