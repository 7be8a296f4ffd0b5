/**
 * One layer of Whisper's convolutional stem: y = GELU(conv1d(x, W, stride, pad 1) + bias)
 * (+ positions), width 3, as `encoder.conv1`/`conv2` + GELU (+ `embed_positions` after conv2).
 *
 * x is read in either layout, so neither layer needs a transpose:
 *  - 'channels-first' [B, Cin, F] (the log-mel as the model receives it, conv1),
 *  - 'channels-last'  [B, F, Cin] (conv1's output, conv2).
 * W is [3, Cin, Cout] (tfjs conv layout, derived once at load from HF's [Cout, Cin, 3]).
 * Output [B, P, Cout], P = ⌊(F − 1) / stride⌋ + 1. Each invocation computes ROWS output
 * positions × 4 output channels in registers (no shared memory; Cout % 4 == 0).
 */
import { GELU_WGSL, i32s, type ProgramUniform, type WebGPUProgram } from '../webgpu.ts';

export type ConvLayout = 'channels-first' | 'channels-last';

const ROWS = 4;
const WG: [number, number, number] = [16, 4, 1];

export function convOutLength(frames: number, stride: number): number {
  return Math.floor((frames - 1) / stride) + 1;
}

export class ConvStemProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [2], y: [1], z: [0] };
  dispatch: [number, number, number];
  variableNames: string[];
  variableComponents: number[];
  outputComponent = 4;
  uniforms = 'B : i32, Cin : i32, F : i32, P : i32, Cout : i32, stride : i32,';
  workgroupSize = WG;
  readonly #layout: ConvLayout;
  readonly #positions: boolean;

  constructor(B: number, Cin: number, F: number, Cout: number, stride: number, layout: ConvLayout, positions: boolean) {
    if (Cout % 4 !== 0) throw new Error(`conv stem needs output channels divisible by 4 (got ${Cout})`);
    this.#layout = layout;
    this.#positions = positions;
    const P = convOutLength(F, stride);
    this.outputShape = [B, P, Cout];
    this.variableNames = positions ? ['X', 'W', 'Bias', 'Pos'] : ['X', 'W', 'Bias'];
    this.variableComponents = positions ? [1, 4, 4, 4] : [1, 4, 4];
    this.dispatch = [Math.ceil(Cout / 4 / WG[0]), Math.ceil(P / ROWS / WG[1]), B];
    this.shaderKey = `earshot_conv_stem_${layout}_${positions ? 'pos' : 'nopos'}`;
  }

  static uniforms(B: number, Cin: number, F: number, Cout: number, stride: number): ProgramUniform[] {
    return i32s(B, Cin, F, convOutLength(F, stride), Cout, stride);
  }

  getUserCode(): string {
    const rows = Array.from({ length: ROWS }, (_, r) => r);
    const xAt =
      this.#layout === 'channels-first'
        ? 'X[(b * uniforms.Cin + ci) * uniforms.F + f]'
        : 'X[(b * uniforms.F + f) * uniforms.Cin + ci]';
    return /* wgsl */ `
      ${GELU_WGSL}
      // Input sample at frame f (zero outside [0, F): the padding of 1 on each side).
      fn xAt(b : i32, ci : i32, f : i32) -> f32 {
        if (f < 0 || f >= uniforms.F) { return 0.0; }
        return ${xAt};
      }
      fn main() {
        let co4 = i32(globalId.x);
        let p0 = i32(globalId.y) * ${ROWS};
        let b = i32(globalId.z);
        let C4 = uniforms.Cout / 4;
        if (co4 >= C4 || p0 >= uniforms.P) { return; }
        ${rows.map((r) => `var acc${r} = vec4<f32>(0.0);`).join('\n        ')}
        for (var k = 0; k < 3; k++) {
          for (var ci = 0; ci < uniforms.Cin; ci++) {
            let w = W[(k * uniforms.Cin + ci) * C4 + co4];
            ${rows.map((r) => `acc${r} = fma(vec4<f32>(xAt(b, ci, (p0 + ${r}) * uniforms.stride + k - 1)), w, acc${r});`).join('\n            ')}
          }
        }
        let bias = Bias[co4];
        ${rows
          .map(
            (r) => `if (p0 + ${r} < uniforms.P) {
          result[(b * uniforms.P + p0 + ${r}) * C4 + co4] = gelu4(acc${r} + bias)${this.#positions ? ` + Pos[(p0 + ${r}) * C4 + co4]` : ''};
        }`,
          )
          .join('\n        ')}
      }
    `;
  }
}
