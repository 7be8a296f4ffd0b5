/**
 * Writes a decoder step's keys or values into the preallocated cache, in place:
 * cache[b, offset + t, …] = fresh[b, t, …], cache [B, Smax, H, dh], fresh [B, T, H, dh].
 * Run with `runProgramInto` (the output binding is the cache's own buffer), so a step
 * allocates nothing for its KV and the attention kernel reads the first offset + T rows.
 */
import { dispatch1D, i32s, type ProgramUniform, type WebGPUProgram } from '../webgpu.ts';

const WG = 256;

export class KVWriteProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = 'earshot_kv_write';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  variableNames = ['Fresh'];
  uniforms = 'freshSize : i32, rowsFresh : i32, rowsCache : i32, rowSize : i32, offset : i32,';
  workgroupSize: [number, number, number] = [WG, 1, 1];

  constructor(cacheShape: number[], freshSize: number) {
    this.outputShape = cacheShape;
    this.dispatch = dispatch1D(freshSize, WG);
  }

  /** rowSize = H·dh; T fresh rows per batch row; the cache holds Smax rows per batch row. */
  static uniforms(freshSize: number, T: number, Smax: number, rowSize: number, offset: number): ProgramUniform[] {
    return i32s(freshSize, T, Smax, rowSize, offset);
  }

  getUserCode(): string {
    return /* wgsl */ `
      fn main(index : i32) {
        if (index >= uniforms.freshSize) { return; }
        let perBatch = uniforms.rowsFresh * uniforms.rowSize;
        let b = index / perBatch;
        let rest = index - b * perBatch;
        result[b * uniforms.rowsCache * uniforms.rowSize + uniforms.offset * uniforms.rowSize + rest] = Fresh[index];
      }
    `;
  }
}
