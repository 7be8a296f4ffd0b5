/** Plain-loop patch scatter (see patch-scatter.wgsl.ts): rows of `value` with chosen positions × heads from `source`. */
import type { ScatterGeometry } from './patch-scatter.wgsl.ts';

export function patchScatterRef(value: Float32Array, source: Float32Array | null, sel: Int32Array, g: ScatterGeometry): Float32Array {
  const out = new Float32Array(g.B * g.rowSize);
  for (let b = 0; b < g.B; b++) {
    for (let i = 0; i < g.rowSize; i++) {
      const pos = Math.floor(i / g.posStride) % g.nPos;
      const head = Math.floor(i / g.headStride) % g.nHead;
      const row = b * (g.nPos + g.nHead);
      const chosen = sel[row + pos] !== 0 && sel[row + g.nPos + head] !== 0;
      const v = value[(g.Bv === 1 ? 0 : b) * g.rowSize + i];
      out[b * g.rowSize + i] = chosen ? (source ? source[(g.Bs === 1 ? 0 : b) * g.rowSize + i] : 0) : v;
    }
  }
  return out;
}
