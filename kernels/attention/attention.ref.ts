/**
 * Plain-loop attention in float64, in the hook layout: q [Bq, T, H, dh], k [Bk, Smax, H, dh], v [Bv, Smax, H, dh]
 * (first S rows used), batch 1 broadcasting. Returns z [B, T, H, dh] and the pattern [B, H, T, S].
 * With `causal`, query t sees keys j ≤ S − T + t.
 */
export interface AttentionRefInput {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  Bq: number;
  Bk: number;
  Bv: number;
  T: number;
  S: number;
  Smax: number;
  H: number;
  dh: number;
  causal: boolean;
}

export function attentionRef(a: AttentionRefInput): { z: Float32Array; pattern: Float32Array } {
  const { q, k, v, Bq, Bk, Bv, T, S, Smax, H, dh, causal } = a;
  const B = Math.max(Bq, Bk, Bv);
  const z = new Float64Array(B * T * H * dh);
  const pattern = new Float32Array(B * H * T * S);
  const scale = 1 / Math.sqrt(dh);
  const scores = new Float64Array(S);
  for (let b = 0; b < B; b++) {
    const bq = Bq === 1 ? 0 : b;
    const bk = Bk === 1 ? 0 : b;
    const bv = Bv === 1 ? 0 : b;
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const n = causal ? Math.min(S, S - T + t + 1) : S;
        let m = -Infinity;
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let i = 0; i < dh; i++) s += q[((bq * T + t) * H + h) * dh + i] * k[((bk * Smax + j) * H + h) * dh + i];
          scores[j] = s * scale;
          m = Math.max(m, scores[j]);
        }
        let l = 0;
        for (let j = 0; j < n; j++) l += Math.exp(scores[j] - m);
        for (let j = 0; j < n; j++) {
          const p = Math.exp(scores[j] - m) / l;
          pattern[((b * H + h) * T + t) * S + j] = p;
          for (let i = 0; i < dh; i++) z[((b * T + t) * H + h) * dh + i] += p * v[((bv * Smax + j) * H + h) * dh + i];
        }
      }
    }
  }
  return { z: Float32Array.from(z), pattern };
}
