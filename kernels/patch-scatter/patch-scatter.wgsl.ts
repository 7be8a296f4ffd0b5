/**
 * Patch scatter: builds a batch of B patched variants of one hook value in one pass.
 * Row b of the output is the hook's value (row b, or its only row) with the chosen positions
 * × heads of row b replaced by the source (its row b or its only row; zeros for zero
 * ablation). This is what lab/patch.ts computes with a 0/1 mask (value + M ⊙ (src − value));
 * here the choice travels as a small [B, nPos + nHead] int32 table instead of a [B, …] mask,
 * and patched elements are exact copies of the source (value + (src − value) can be off by
 * one rounding).
 *
 * The hook's value (batch axis excluded) is addressed flat: the position of element i is
 * (i / posStride) % nPos, its head (i / headStride) % nHead (nHead = 1 without a head axis).
 */
import { dispatch1D, i32s, type ProgramUniform, type WebGPUProgram } from '../webgpu.ts';

const WG = 256;

export interface ScatterGeometry {
  /** Output batch (number of variants). */
  B: number;
  /** Batch of the value (1 or B) and of the source (1 or B). */
  Bv: number;
  Bs: number;
  /** Elements of one row (the hook's shape without the batch axis). */
  rowSize: number;
  posStride: number;
  nPos: number;
  headStride: number;
  nHead: number;
}

export class PatchScatterProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  variableNames: string[];
  uniforms = 'B : i32, Bv : i32, Bs : i32, rowSize : i32, posStride : i32, nPos : i32, headStride : i32, nHead : i32,';
  workgroupSize: [number, number, number] = [WG, 1, 1];
  size = true;
  readonly #zero: boolean;

  /** `outShape` is the value's shape with the batch axis set to B. `zero`: no source tensor. */
  constructor(outShape: number[], g: ScatterGeometry, zero: boolean) {
    this.#zero = zero;
    this.outputShape = outShape;
    this.variableNames = zero ? ['Value', 'Sel'] : ['Value', 'Sel', 'Src'];
    this.dispatch = dispatch1D(g.B * g.rowSize, WG);
    this.shaderKey = `earshot_patch_scatter_${zero ? 'zero' : 'src'}`;
  }

  static uniforms(g: ScatterGeometry): ProgramUniform[] {
    return i32s(g.B, g.Bv, g.Bs, g.rowSize, g.posStride, g.nPos, g.headStride, g.nHead);
  }

  getUserCode(): string {
    return /* wgsl */ `
      fn main(index : i32) {
        if (index >= uniforms.size) { return; }
        let b = index / uniforms.rowSize;
        let i = index - b * uniforms.rowSize;
        let pos = (i / uniforms.posStride) % uniforms.nPos;
        let head = (i / uniforms.headStride) % uniforms.nHead;
        let selRow = b * (uniforms.nPos + uniforms.nHead);
        let chosen = Sel[selRow + pos] != 0 && Sel[selRow + uniforms.nPos + head] != 0;
        let bv = select(b, 0, uniforms.Bv == 1);
        var out = Value[bv * uniforms.rowSize + i];
        if (chosen) {
          ${this.#zero ? 'out = 0.0;' : 'let bs = select(b, 0, uniforms.Bs == 1); out = Src[bs * uniforms.rowSize + i];'}
        }
        result[index] = out;
      }
    `;
  }
}
