/**
 * Plain-loop reference of one conv-stem layer in float64: GELU(conv1d(x, W, stride, pad 1) + b) (+ pos).
 * x [B, Cin, F] (channels-first) or [B, F, Cin] (channels-last); W [3, Cin, Cout]; out [B, P, Cout].
 */
import { geluRef } from '../matmul/matmul.ref.ts';

export function convStemRef(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array,
  pos: Float32Array | null,
  B: number,
  Cin: number,
  F: number,
  Cout: number,
  stride: number,
  layout: 'channels-first' | 'channels-last',
): Float32Array {
  const P = Math.floor((F - 1) / stride) + 1;
  const y = new Float32Array(B * P * Cout);
  const at = (b: number, ci: number, f: number) => (f < 0 || f >= F ? 0 : layout === 'channels-first' ? x[(b * Cin + ci) * F + f] : x[(b * F + f) * Cin + ci]);
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < P; p++) {
      for (let co = 0; co < Cout; co++) {
        let acc = bias[co];
        for (let k = 0; k < 3; k++) for (let ci = 0; ci < Cin; ci++) acc += at(b, ci, p * stride + k - 1) * w[(k * Cin + ci) * Cout + co];
        y[(b * P + p) * Cout + co] = geluRef(acc) + (pos ? pos[p * Cout + co] : 0);
      }
    }
  }
  return y;
}
