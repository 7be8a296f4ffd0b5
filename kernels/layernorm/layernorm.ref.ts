/** Plain-loop LayerNorm over the last axis in float64: x [rows, d], γ and β [d]. */
export function layerNormRef(x: Float32Array, gamma: Float32Array, beta: Float32Array, rows: number, d: number, eps: number): Float32Array {
  const y = new Float32Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[r * d + i];
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[r * d + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / d + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = (x[r * d + i] - mean) * inv * gamma[i] + beta[i];
  }
  return y;
}
