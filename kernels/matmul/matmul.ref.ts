/** Plain-loop reference for the linear kernel: y = act(x·W + bias), x [M, K], W [K, N]. */
export function matmulRef(x: Float32Array, w: Float32Array, bias: Float32Array | null, M: number, K: number, N: number, gelu = false): Float32Array {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = bias ? bias[n] : 0;
      for (let k = 0; k < K; k++) acc += x[m * K + k] * w[k * N + n];
      y[m * N + n] = gelu ? geluRef(acc) : acc;
    }
  }
  return y;
}

/** Exact GELU in float64: 0.5·x·(1 + erf(x/√2)). */
export function geluRef(x: number): number {
  return 0.5 * x * (1 + erfRef(x / Math.SQRT2));
}

/** erf to ~1e-15 (series for small |x|, continued fraction for the tail). */
export function erfRef(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1))
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 60; n++) {
      term *= (-ax * ax) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(−x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + …)))) for large x
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + n / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}
